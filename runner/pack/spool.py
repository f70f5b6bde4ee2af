"""Members compressed as they are added: their tar entries, in jobs compressed into zstd frames on worker
threads while the builder goes on reading (zstd and the redaction scan release the GIL).

Input: members as a builder gets them, in a deterministic order, from one thread: content by pieces
(`add`), or a file read straight into the job being filled (`read_into`, then `commit` or `drop`).
Output: `groups`, each the frames holding the whole tar entries of some consecutive members, with those
members' digests; `usable` picks the groups whose members are all still those members of the pack, each
as soon as its frames are in, `copy` passes a group's frames on as they are; `verdicts`, what `inspect`
said of members, when asked (`judge` waits for those alone: a job is inspected before it is compressed).
Rules:
- A job fills a buffer of `JOB` bytes and ends at the end of a member once it holds `FILL` bytes, before a
  file read whole would not fit, or when the buffer is full (a member added by pieces goes on in the next
  job). A group is the jobs its members span, so a group can be copied or not without cutting a member.
  Each job is one frame (a member's own job, below, three): the pack's level, the content checksum on. The
  same members added in the same order give the same bytes, whatever the timing. A member given as one
  bytes object of `OWN` bytes or more is a job and a group of its own, compressed from those bytes where
  they lie (bytes cannot change; copying them into a buffer would hold the interpreter's lock, which the
  redaction threads need). Its job is three frames, its tar header, its content and its padding, so that
  the content's frame can be made ahead: `compress_ahead` (the privacy pass run ahead calls it, on a
  worker, for a member it rewrites) keeps it under the content's sha256 until that content is added, or
  the spool is flushed.
- What is compressed is what was hashed: `add` hashes what it appends (or takes the caller's hash of
  bytes, which cannot change), `read_into` returns the bytes the caller hashes. A member whose content
  does not match the size its header announced, or whose reading failed, breaks its group: that group is
  never used.
- `inspect(name, sha256, content)`, when set, runs on the worker before the job is compressed, for each
  member added with `inspect=True` whose content lies in that one job; its answer is kept under the
  member's name and sha256 (an exception counts as False). False means the member may well be
  rewritten: the job is then not compressed at all (its group is not copied; `build` compresses what
  stands of it later). The buffer is used again only once the job is done.
- Memory stays bounded: at most one job per worker in flight and one being filled (a new job waits for
  room before it is filled; the last, sent by `send`, `judge` or `flush`, does not wait); frames go to a
  temp file in the folder given (unlinked at once, so nothing is left whatever happens) in order.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import zstandard

from runner.errors import PackError
from runner.pack.layout import BLOCK, padding, tar_header
from runner.pack.manifest import MemberDigest

__all__ = ["FILL", "JOB", "Group", "Spool"]

JOB = 16 << 20  # a job's buffer; frames this size compress about as well as one stream of the whole
FILL = 8 << 20  # a job ends at the first member's end past this
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux's
OWN = 1 << 20  # a member given as one bytes object this big is a job of its own, not copied into a buffer

Inspect = Callable[[str, str, memoryview], bool]
_Buffer = bytearray | mmap.mmap
_Verdicts = dict[tuple[str, str], bool]


@dataclass
class Group:
    """Consecutive members' tar entries, compressed: `frames` are (offset, length) in the spool's file."""

    members: dict[str, MemberDigest] = field(default_factory=dict)
    frames: list[tuple[int, int]] = field(default_factory=list)
    broken: bool = False  # an entry is not whole, or a job was left uncompressed: never copy this group

    @property
    def size(self) -> int:
        return sum(d.size for d in self.members.values())


@dataclass
class _Read:
    """A file read into the job being filled, after `room` bytes for its header at `at`."""

    at: int
    room: int
    size: int


class Spool:
    """Tar entries compressed as members are added; see the module docstring."""

    def __init__(self, folder: Path, level: int, workers: int | None = None) -> None:
        self._folder = folder
        self._level = level
        self._workers = workers or os.cpu_count() or 1
        self.inspect: Inspect | None = None
        self.verdicts: dict[tuple[str, str], bool] = {}  # (name, sha256) -> what `inspect` said
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()  # each worker's compressor
        self._file: IO[bytes] | None = None
        self._free: list[_Buffer] = []  # buffers of jobs done, used again
        self._buf: _Buffer | None = None
        self._fill = 0
        self._jobs = 0  # jobs submitted so far: a member whose add saw none is whole in one buffer
        self._look: list[tuple[str, str, int, int]] = []  # members of the job being filled to inspect
        self._read: _Read | None = None
        self._inflight: deque[tuple[Future[bytes | None], Future[_Verdicts], _Buffer | None, Group]] = deque()
        self._group = Group()
        self.groups: list[Group] = []  # complete groups, in order (`flush` completes the last one)
        self._ahead: dict[str, bytes] = {}  # sha256 -> the content's frame, made by `compress_ahead`

    def add(
        self,
        name: str,
        size: int,
        pieces: Iterable[bytes | memoryview],
        sha256: str | None = None,
        inspect: bool = False,
    ) -> MemberDigest:
        """Append member `name`'s tar entry: a header announcing `size` bytes, then `pieces`. Returns the
        digest of the pieces (`sha256` when the caller hashed them already: bytes, which cannot change);
        the entry counts only when the pieces hold `size` bytes (else the group is broken)."""
        if name in self._group.members:  # added again (rewritten): a group holds one entry per name
            self._end_group()
        one = pieces[0] if isinstance(pieces, tuple | list) and len(pieces) == 1 else None
        if isinstance(one, bytes) and len(one) == size >= OWN:
            return self._add_own(name, one, sha256, inspect)
        group, sha, n = self._group, None if sha256 else hashlib.sha256(), 0
        whole = False
        try:
            self._put(tar_header(name, size))
            jobs, start = self._jobs, self._fill
            for piece in pieces:
                n += len(piece)
                if n > size:
                    break
                if sha is not None:
                    sha.update(piece)
                self._put(piece)
            if n != size:
                return MemberDigest(sha256="", size=n)
            end = self._fill
            self._put(padding(size))
            whole = True
        finally:
            if not whole:
                group.broken = True
        digest = MemberDigest(sha256=sha.hexdigest() if sha is not None else str(sha256), size=size)
        self._record(name, digest, inspect and jobs == self._jobs, start, end)
        return digest

    def _add_own(self, name: str, data: bytes, sha256: str | None, inspect: bool) -> MemberDigest:
        """A member given as one bytes object of `OWN` bytes or more: a group and a job of its own, which
        holds `data` itself (bytes cannot change: nothing is copied under the interpreter's lock)."""
        digest = MemberDigest(sha256 or hashlib.sha256(data).hexdigest(), len(data))
        self._end_group()
        self._group.members[name] = digest
        look = [(name, digest.sha256, 0, len(data))] if inspect and self.inspect is not None else []
        self._wait_for_room()
        around = (tar_header(name, len(data)), padding(len(data)), self._ahead.pop(digest.sha256, None))
        self._send(memoryview(data), look, None, around)
        self._end_group()
        return digest

    def compress_ahead(self, data: bytes, sha256: str) -> int:
        """Compress `data` (of that sha256) now, on the calling thread, when it would be a job of its own:
        added later, it takes this frame instead of compressing again (the same bytes). Returns the size of
        the frame kept (0: none, `data` is under `OWN`)."""
        if len(data) < OWN:
            return 0
        frame = self._compressor().compress(data)
        self._ahead[sha256] = frame
        return len(frame)

    def _compressor(self) -> zstandard.ZstdCompressor:
        """This thread's compressor: every frame at the pack's level, with its content checksum."""
        cctx: zstandard.ZstdCompressor | None = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = self._local.cctx = zstandard.ZstdCompressor(level=self._level, write_checksum=True)
        return cctx

    def read_into(self, f: io.RawIOBase, size: int, room: int) -> memoryview | None:
        """Read file `f`, `size` bytes expected (a byte more if it grew), straight into the job being filled,
        after `room` bytes for its tar header (the header's length for the name `commit` will give).
        Returns what was read, valid until `commit` or `drop` (one of them must follow); None when the
        file would not fit in a job (add it by pieces)."""
        need = room + size + 1 + BLOCK
        if need > JOB:
            return None
        if self._buf is not None and JOB - self._fill < need:
            self._end_group()
        if self._buf is None:
            self._buf, self._fill = self._new_buffer(), 0
        at, view = self._fill + room, memoryview(self._buf)
        got = 0
        while got <= size and (n := f.readinto(view[at + got : at + size + 1])):
            got += n
        self._read = _Read(self._fill, room, got)
        return view[at : at + got]

    def commit(self, name: str, digest: MemberDigest, inspect: bool = False) -> None:
        """Keep the file `read_into` read as member `name` (`digest` being the caller's hash of it)."""
        read, self._read = self._read, None
        assert read is not None and self._buf is not None and digest.size == read.size
        header = tar_header(name, read.size)
        if len(header) != read.room:
            raise ValueError(f"the header of {name!r} takes {len(header)} bytes, not {read.room}")
        if name in self._group.members:
            raise ValueError(f"{name!r} is in the group being filled already")
        self._buf[read.at : read.at + read.room] = header
        start = read.at + read.room
        self._fill = start + read.size
        self._put(padding(read.size))
        self._record(name, digest, inspect, start, start + read.size)

    def drop(self) -> None:
        """Forget what `read_into` read (the member was added already, or it changed)."""
        self._read = None

    def _record(self, name: str, digest: MemberDigest, inspect: bool, start: int, end: int) -> None:
        self._group.members[name] = digest
        if inspect and self.inspect is not None:
            self._look.append((name, digest.sha256, start, end))
        if self._fill >= FILL:
            self._submit(end_group=True)

    def send(self) -> None:
        """Send the job being filled to the workers now (the last members added), without waiting for it."""
        self._end_group()

    def judge(self) -> None:
        """Send what is pending and wait for `inspect`'s answers alone: `verdicts` is then complete while the
        last jobs may still be compressing."""
        self._end_group()
        for _, judged, _, _ in self._inflight:
            self.verdicts.update(judged.result())

    def flush(self) -> None:
        """Compress what is pending and wait for every frame: `groups` and `verdicts` are then complete."""
        self._end_group()
        while self._inflight:
            self._collect()
        self._free = []  # the next job, if any, takes a new buffer: memory goes back meanwhile
        self._ahead.clear()  # frames made ahead of content that was never added

    def usable(self, members: Mapping[str, MemberDigest]) -> Iterator[Group]:
        """The groups to copy, in order, each as soon as its frames are in (the last jobs may still be
        compressing while the first groups are copied): whole, each member still that member of `members`,
        none already in an earlier group taken (content rewritten, then rewritten back). Once exhausted,
        every frame is in, as after `flush`."""
        self._end_group()
        taken: set[str] = set()
        for group in self.groups:
            while any(entry[3] is group for entry in self._inflight):
                self._collect()
            if group.broken or not all(members.get(n) == d for n, d in group.members.items()):
                continue
            if taken.isdisjoint(group.members):
                taken.update(group.members)
                yield group
        self.flush()

    def copy(self, group: Group, write: Callable[[memoryview], object]) -> None:
        """Pass a group's frames to `write`, as they are: views of the spool's file mapped in memory (no
        copy, no allocation), each valid as long as it is referenced."""
        assert self._file is not None  # a group has frames, so the file exists
        offset, length = group.frames[-1]
        try:
            self._file.flush()
            mapped = memoryview(mmap.mmap(self._file.fileno(), offset + length, access=mmap.ACCESS_READ))
        except (OSError, ValueError) as e:  # ValueError: the file is shorter than its frames say
            raise self._error(e) from e
        for offset, length in group.frames:
            write(mapped[offset : offset + length])

    def close(self) -> None:
        if self._pool is not None:
            for future, _, _, _ in self._inflight:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        self._inflight.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buf, self._fill, self._free, self._look, self._read = None, 0, [], [], None
        self._group, self.groups = Group(), []
        self.verdicts.clear()
        self._ahead.clear()

    def _new_buffer(self) -> _Buffer:
        """A job's buffer: one done with, else a new one; on Linux a private mapping whose pages the kernel
        makes in one call (`bytearray(JOB)` faults its 4,096 pages in one by one, then writes zeros over
        them: 8 against 4 ms here, on the thread that feeds the workers)."""
        self._wait_for_room()
        if self._free:
            return self._free.pop()
        if _POPULATE:
            return mmap.mmap(-1, JOB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)
        return bytearray(JOB)

    def _put(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._buf is None:
                self._buf, self._fill = self._new_buffer(), 0
            k = min(len(view), JOB - self._fill)
            self._buf[self._fill : self._fill + k] = view[:k]
            self._fill += k
            view = view[k:]
            if self._fill == JOB:
                self._submit(end_group=False)

    def _end_group(self) -> None:
        if self._buf is not None and self._fill:
            self._submit(end_group=True)
        elif self._group.members or self._group.broken:  # its last job was submitted full
            self.groups.append(self._group)
            self._group = Group()

    def _submit(self, end_group: bool) -> None:
        assert self._buf is not None
        buf, fill, group, look = self._buf, self._fill, self._group, self._look
        self._buf, self._fill, self._look = None, 0, []
        self._send(memoryview(buf)[:fill], look, buf, None)
        if end_group:
            self.groups.append(group)
            self._group = Group()

    def _send(
        self,
        data: memoryview,
        look: list[tuple[str, str, int, int]],
        buf: _Buffer | None,
        around: tuple[bytes, bytes, bytes | None] | None,
    ) -> None:
        """Send a job to the workers: `data` (a buffer's filled part, used again once the job is done, or
        one member's bytes with its tar header and padding `around` them, and its content's frame when made
        ahead). Nothing waits here: the next job waits for room (`_wait_for_room`) before it is filled or
        sent."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="runner-pack")
        judged = Future[_Verdicts]()
        future = self._pool.submit(self._work, data, look, judged, around)
        self._inflight.append((future, judged, buf, self._group))
        self._jobs += 1

    def _wait_for_room(self) -> None:
        """Wait while more jobs than workers are in flight: memory stays bounded."""
        while len(self._inflight) > self._workers:
            self._collect()

    def _work(
        self,
        data: memoryview,
        look: list[tuple[str, str, int, int]],
        judged: Future[_Verdicts],
        around: tuple[bytes, bytes, bytes | None] | None,
    ) -> bytes | None:
        verdicts = {}
        try:
            for name, sha256, start, end in look:
                try:
                    verdicts[(name, sha256)] = bool(
                        self.inspect and self.inspect(name, sha256, data[start:end])
                    )
                except Exception:  # the pass itself will look at the member, and say what is wrong
                    verdicts[(name, sha256)] = False
        finally:
            judged.set_result(verdicts)  # before compressing: `judge` waits for this alone
        if not all(verdicts.values()):
            return None
        cctx = self._compressor()
        if around is None:
            return cctx.compress(data)
        head, tail, content = around
        frames = [cctx.compress(head), cctx.compress(data) if content is None else content]
        return b"".join([*frames, cctx.compress(tail)] if tail else frames)

    def _collect(self) -> None:
        future, judged, buf, group = self._inflight.popleft()
        frame = future.result()
        if buf is not None:
            self._free.append(buf)
        self.verdicts.update(judged.result())
        if frame is None:
            group.broken = True
            return
        try:
            if self._file is None:
                self._folder.mkdir(parents=True, exist_ok=True)  # a builder's staging folder is made lazily
                fd, path = tempfile.mkstemp(dir=self._folder, prefix=".spool-")
                os.unlink(path)  # nothing to clean up whatever happens: the file goes with its descriptor
                self._file = os.fdopen(fd, "w+b")
            group.frames.append((self._file.tell(), len(frame)))
            self._file.write(frame)
        except OSError as e:
            raise self._error(e) from e

    def _error(self, e: OSError | ValueError) -> PackError:
        why = getattr(e, "strerror", None) or e
        return PackError(
            f"cannot write the pack's members to a temp file in {self._folder}: {why}; "
            "check that folder has space (set TMPDIR to another)"
        )
