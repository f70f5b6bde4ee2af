"""The decompressed stream of a pack as its reader sees it: hashed up to the trailer, decompressed ahead on a
thread, capped, forward-only.

Inputs: the pack file, opened; the zstd decompressor reading it. Outputs: the layers a reader stacks on it:
`TrailedReader` (the compressed bytes up to the trailer, hashed), `Ahead` (the decompressed bytes, a few
chunks ahead of the reader), `CappedReader` (refuses to go past a byte count), `Forward` (the file tarfile
reads, handing out views of the chunks). Any reason to refuse the pack is a `Refused`.
Rules: memory stays bounded whatever the pack holds: `Ahead` holds at most `depth` chunks, the cap is
checked on every read, and no layer buffers more than a chunk. `Ahead` decompresses on its own thread while
the reader parses headers and hands member data on (zstd releases the GIL); an error on that thread is
raised by the reader's next read, and `close` stops the thread before the file under it is closed.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import tarfile
import threading
from typing import IO, Any

from runner.pack import layout
from runner.pack.layout import CHUNK

__all__ = ["Ahead", "CappedReader", "Forward", "Refused", "TrailedReader"]


class Refused(Exception):
    """A reason to refuse the pack; the reader turns it into a PackError naming the pack and member."""


class TrailedReader:
    """Reads the compressed stream up to the trailer, hashing it; `expected` is the trailer's digest."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self._left = size - layout.TRAILER_SIZE
        self.sha = hashlib.sha256()
        if self._left < 0:
            raise Refused("too short to be a repro pack")
        f.seek(self._left)
        tail = f.read(layout.TRAILER_SIZE)
        f.seek(0)
        try:
            self.expected = layout.trailer_digest(tail)
        except ValueError as e:
            raise Refused(str(e)) from e

    def __enter__(self) -> TrailedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(self._left if n < 0 else min(n, self._left))
        self._left -= len(data)
        self.sha.update(data)
        return data

    def finish(self) -> bytes:
        """Hash whatever the decoder left unread and return the digest of the whole stream."""
        while self.read(CHUNK):
            pass
        return self.sha.digest()


class Ahead:
    """Reads `f` chunk by chunk on a worker thread, at most `depth` chunks ahead of `read`."""

    def __init__(self, f: Any, depth: int = 4) -> None:
        self._f = f
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._buf = memoryview(b"")
        self._ended = False  # the end of the stream (or an error) was handed out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pack-decompress", daemon=True)
        self._thread.start()

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data: bytes = self._f.read(CHUNK)
                self._chunks.put(data)
                if not data:
                    return
        except BaseException as e:  # handed to the reader, which raises it where it reads
            self._chunks.put(e)

    def read(self, n: int = -1) -> memoryview:
        """Up to `n` bytes (fewer at the end of a chunk), as a view of the chunk; empty at the end."""
        if not self._buf and not self._ended:
            item = self._chunks.get()
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            self._ended = not item
            self._buf = memoryview(item)
        out, self._buf = (self._buf, memoryview(b"")) if n < 0 else (self._buf[:n], self._buf[n:])
        return out

    def close(self) -> None:
        """Stop the thread (it ends its current chunk first) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            # A thread waiting to hand over a chunk gets the room to do so, then sees the stop.
            with contextlib.suppress(queue.Empty):
                self._chunks.get(timeout=0.1)


class CappedReader:
    """Counts decompressed bytes and refuses to go past `cap`, so a bomb stops early."""

    def __init__(self, f: Any, cap: int) -> None:
        self._f = f
        self.cap = cap
        self.count = 0

    def read(self, n: int = -1) -> bytes | memoryview:
        want = CHUNK if n is None or n < 0 else n
        data: bytes | memoryview = self._f.read(min(want, self.cap - self.count + 1))
        self.count += len(data)
        if self.count > self.cap:
            raise Refused(f"decompressed data goes past {self.cap} bytes, more than the manifest declares")
        return data


class Forward:
    """The decompressed stream as the forward-only file tarfile reads headers from (`tell`, `seek` ahead),
    and member data from, as views of the decompressor's chunks: no byte is copied on its way to the hash
    and the file (tarfile's own stream reader joins and slices its buffer on every read)."""

    def __init__(self, f: CappedReader) -> None:
        self._f = f
        self._buf = memoryview(b"")
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise tarfile.ReadError("the tar stream would have to go back; it is damaged")
        while self._pos < pos and self.view(pos - self._pos):
            pass
        return self._pos

    def view(self, n: int) -> memoryview:
        """Up to `n` bytes (fewer at the end of a chunk or of the stream), without copying them."""
        if not self._buf:
            self._buf = memoryview(self._f.read(CHUNK))
        out, self._buf = self._buf[:n], self._buf[n:]
        self._pos += len(out)
        return out

    def read(self, n: int = -1) -> bytes:
        parts, want = [], CHUNK if n < 0 else n
        while want and (part := self.view(want)):
            parts.append(part)
            want -= len(part)
        return b"".join(parts)
