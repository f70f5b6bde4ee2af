"""Files written from a pack: created under a folder this process made, never through a link.

Inputs: a root folder and member names already checked by `layout.layout_problem`. Outputs: new files
opened for writing. Rules: every folder is opened with O_NOFOLLOW|O_DIRECTORY from the root down and every
file with O_CREAT|O_EXCL|O_NOFOLLOW, so a link planted in the tree is never followed and nothing is
overwritten; with `only`, members outside it are not written (the reader still checks them). A
`Digester` hashes member data and writes it on a worker thread while the reader decompresses; that
thread creates each file too (a create costs more than decompressing a small member). A `DirWriter` may
be used from several threads.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from runner.pack.layout import MANIFEST
from runner.pack.manifest import MemberDigest

__all__ = ["Digester", "DirWriter", "Opener"]

Opener = Callable[[], IO[bytes]]  # creates the file a member is written to


class DirWriter:
    """Creates files under a folder it owns, never following a link; with `only`, just those members.

    Folders stay open while it writes (a few hundred at most), so a file costs one open; `close` them."""

    _DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    _MAX_OPEN = 256

    def __init__(self, root: Path, only: frozenset[str] | None = None) -> None:
        self.root = root
        self.only = only
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()  # a folder's descriptor is not closed while a file opens in it

    def wants(self, name: str) -> bool:
        """Whether `name` is written (a member left out is still read and checked, then dropped)."""
        return self.only is None or name in self.only or name == MANIFEST

    def _dir(self, parts: list[str]) -> int:
        """The open folder `parts` under the root, made when missing."""
        key = "/".join(parts)
        fd = self._fds.get(key)
        if fd is not None:
            return fd
        if len(self._fds) >= self._MAX_OPEN:
            self._close()
        if not parts:
            fd = os.open(self.root, self._DIR_FLAGS)
        else:
            parent = self._dir(parts[:-1])
            with contextlib.suppress(FileExistsError):
                os.mkdir(parts[-1], 0o755, dir_fd=parent)
            fd = os.open(parts[-1], self._DIR_FLAGS, dir_fd=parent)
        self._fds[key] = fd
        return fd

    def mkdir(self, name: str) -> None:
        with self._lock:
            self._dir(name.split("/"))

    def create(self, name: str) -> IO[bytes]:
        *parents, base = name.split("/")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with self._lock:
            fd = os.open(base, flags, 0o644, dir_fd=self._dir(parents))
        return os.fdopen(fd, "wb")

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)


class Digester:
    """Hashes member data and writes it, in order, on one worker thread while the caller decompresses:
    two stages on the cores there are (hashlib, zstd and file writes release the GIL).

    At most a few chunks are in flight. A member's file is created (its `Opener` called) on the worker,
    when its first chunk or its end comes. The first member (in pack order) whose hash does not match or
    whose file cannot be created or written is kept in `failure`; after that the worker only drains its
    queue.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=4)
        self.failure: tuple[str, str] | None = None
        self.checked = 0
        self._thread = threading.Thread(target=self._work, name="pack-write", daemon=True)
        self._thread.start()

    def put(self, name: str, sha: Any, dst: Opener | None, chunk: bytes | memoryview) -> None:
        self._queue.put((name, sha, dst, chunk, None))

    def end(self, name: str, sha: Any, dst: Opener | None, expected: MemberDigest) -> None:
        self._queue.put((name, sha, dst, None, expected))

    def close(self) -> tuple[str, str] | None:
        """Wait for the worker (it closes the file of a member cut short); return the first failure."""
        self._queue.put(None)
        self._thread.join()
        return self.failure

    def _work(self) -> None:
        out: IO[bytes] | None = None  # the current member's file, created at its first chunk or end
        try:
            while (item := self._queue.get()) is not None:
                name, sha, dst, chunk, expected = item
                if self.failure:
                    continue
                try:
                    if dst and out is None:
                        out = dst()
                    if chunk is not None:
                        sha.update(chunk)
                        if out:
                            out.write(chunk)
                        continue
                    done, out = out, None
                    if done:
                        done.close()
                    if sha.hexdigest() != expected.sha256:
                        self.failure = (name, "sha256 does not match the manifest: the member was altered")
                    else:
                        self.checked += 1
                except OSError as e:
                    self.failure = (name, f"cannot write the member: {e}")
        finally:
            if out:
                with contextlib.suppress(OSError):  # a failure is being reported already
                    out.close()
