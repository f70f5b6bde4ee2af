"""What may be in a repro pack and how its container ends: the rules both the builder and the reader apply.

Inputs: member names. Outputs: the reason a name cannot be a member (`layout_problem`), the reserved member
names, the tar block and I/O chunk sizes (`chunks` reads a file by chunks into a buffer kept per thread,
so no page of a fresh buffer is faulted in per chunk), a member's tar header and padding as builders
write them (fixed metadata: the same content gives the same pack bytes), the trailer (`trailer`; a
builder writes through a `TrailedWriter`, which hashes what it writes, starts its writing to disk as it
goes, and ends with it), and the `Limits` a reader applies.
Rules: names are relative, in normal form, free of control characters and inside the layout of
docs/pack-format.md. The pack ends with a zstd skippable frame (ignored by zstd tools) holding the sha256
of every byte before it: the compressed encoding has redundant bits that decode to the same content, and
those must not pass.
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import re
import struct
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Protocol

__all__ = [
    "BLOCK",
    "CHUNK",
    "MANIFEST",
    "SIGNATURE",
    "TRAILER_SIZE",
    "TRAILER_TAG",
    "WRITEBACK",
    "Limits",
    "TrailedWriter",
    "chunks",
    "layout_problem",
    "padding",
    "start_writeback",
    "tar_header",
    "trailer",
    "trailer_digest",
]

MANIFEST = "manifest.yaml"
SIGNATURE = "signature.json"  # signs the root digest, so it cannot be one of the members the root covers
CHUNK = 1 << 20
BLOCK = 512  # tarfile.BLOCKSIZE
TRAILER_MAGIC = 0x184D2A5E
TRAILER_TAG = b"RPK1sha256"
TRAILER_SIZE = 8 + len(TRAILER_TAG) + 32
WRITEBACK = 4 << 20  # bytes a pack's writer writes between two starts of their writeback

_buffers = threading.local()

_SEG = r"(?!\.\.?(?:/|$))[A-Za-z0-9_.+=@-]+"
_FILE_LAYOUT = re.compile(
    r"manifest\.yaml|signature\.json|traces\.jsonl"
    r"|prompts/[0-9]{4,}-[A-Za-z0-9_.-]+\.(?:txt|json)"
    r"|patches/[0-9]{4,}\.diff"
    r"|artifacts/sha256/[0-9a-f]{64}"
    rf"|env/(?:{_SEG}/)*{_SEG}"
    r"|cassettes/[A-Za-z0-9_.-]+\.jsonl"
    r"|workspace/base\.bundle|workspace/baseline\.diff"
    r"|privacy/[a-z0-9_-]+\.(?:bin|json)"
    r"|agent/files/[0-9]{4,}-[A-Za-z0-9_.+=@-]+"
)
_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL_OR_BACKSLASH = re.compile(r"[\x00-\x1f\x7f\\]")
_DIR_LAYOUT = re.compile(
    rf"prompts|patches|artifacts|artifacts/sha256|cassettes|workspace|privacy|agent|agent/files|env(?:/{_SEG})*"
)


@dataclass(frozen=True)
class Limits:
    """Caps applied while reading a pack; raise them for unusually large sessions."""

    max_total_bytes: int = 16 << 30
    max_member_bytes: int = 8 << 30
    max_members: int = 100_000
    max_manifest_bytes: int = 16 << 20
    # zstd window: bounds decoder memory whatever a frame header asks for. Levels 1..19 need at most 8 MiB.
    max_window_size: int = 1 << 25


def layout_problem(name: str, is_dir: bool = False, folders: Collection[str] | None = None) -> str | None:
    """Why `name` cannot be a member of a pack, or None when it can. A folder entry must be in `folders` (the
    folders of the listed members) when given: an empty one would ride along outside the root digest."""
    if not name or name.startswith("/") or _DRIVE.match(name):
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' component"
    if _CONTROL_OR_BACKSLASH.search(name):
        return "backslash or control character in name"
    if posixpath.normpath(name) != name:
        return "name is not in normal form"
    pattern = _DIR_LAYOUT if is_dir else _FILE_LAYOUT
    if len(name) > 1024 or not pattern.fullmatch(name):
        return "not part of the pack layout (see docs/pack-format.md)"
    if is_dir and folders is not None and name not in folders:
        return "folder entry holding no member the manifest lists"
    return None


@functools.cache
def start_writeback() -> Callable[[int], object] | None:
    """A function that starts writing a file's dirty pages to disk and returns at once: libc's
    `sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)` (Linux; the kernel skips pages already on their way
    and reports nothing worth acting on), None where there is none. Databases write large files the same
    way (RocksDB's `bytes_per_sync`); durability still comes from the fsync at the end."""
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError, TypeError):  # no such function here; on Windows, no CDLL(None)
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return lambda fd: call(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE


def trailer(digest: bytes) -> bytes:
    return struct.pack("<II", TRAILER_MAGIC, len(TRAILER_TAG) + len(digest)) + TRAILER_TAG + digest


class TrailedWriter:
    """Writes a pack's compressed pieces to `f` and hashes them, a piece's hash on a thread of its own while
    it is written (both release the GIL); `end` writes the trailer. A piece must not change once given.
    Every `WRITEBACK` bytes, the file's writing to disk is started (`start_writeback`) without waiting for
    it, so the fsync that ends a pack has little left to wait for."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f, self._sha = f, hashlib.sha256()
        self._hashing: Future[None] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="runner-pack-hash")
        self._unsent = 0  # bytes written since the last start of their writeback
        try:
            self._fd: int | None = f.fileno()
        except (OSError, ValueError):  # not a file of the system's (io.UnsupportedOperation is both)
            self._fd = None

    def __enter__(self) -> TrailedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown()

    def write(self, data: bytes | memoryview) -> int:
        self._hashed()
        self._hashing = self._pool.submit(self._sha.update, data)
        n = self._f.write(data)
        self._unsent += n
        if self._unsent >= WRITEBACK and self._fd is not None and (start := start_writeback()) is not None:
            self._f.flush()
            start(self._fd)
            self._unsent = 0
        return n

    def end(self) -> None:
        self._hashed()
        self._f.write(trailer(self._sha.digest()))

    def _hashed(self) -> None:
        if self._hashing is not None:
            self._hashing.result()


def trailer_digest(tail: bytes) -> bytes:
    """The digest held by the last TRAILER_SIZE bytes of a pack; ValueError saying why they are no trailer."""
    head = trailer(b"\0" * 32)[: 8 + len(TRAILER_TAG)]
    if tail[: len(head)] != head:
        if TRAILER_TAG[:3] in tail:
            raise ValueError("this pack's container is a newer version; use a runner release that reads it")
        raise ValueError("no pack trailer at the end: the file is truncated or was not written by runner")
    return tail[len(head) :]


def tar_header(name: str, size: int) -> bytes:
    """The pax header of a member as written: mode 0644, mtime 0, no owner names. A short ASCII name and a
    size under 8 GiB need no pax record: that ustar block is filled in here, as tarfile writes it (ten times
    faster; every artifact's header is made twice, to reserve its room and to write it)."""
    if len(name) <= 100 and name.isascii() and 0 <= size < 8**11:
        block = bytearray(_USTAR)
        block[: len(name)] = name.encode("ascii")
        block[124:136] = b"%011o\0" % size
        block[148:155] = b"%06o\0" % sum(block)  # the checksum, counted with its own field as spaces
        return bytes(block)
    return _tarfile_header(name, size)


def _tarfile_header(name: str, size: int) -> bytes:
    import tarfile  # a long or non-ASCII name, or 8 GiB and more: a pax record first

    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = 0o644
    ti.mtime = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


# A ustar block for an empty name and size: mode 0644, owner 0, mtime 0, a regular file, the checksum field
# blank (spaces, as it is counted), no link, owner or group names, no device numbers, no prefix.
_USTAR = (
    b"\0" * 100 + b"0000644\0" + b"0000000\0" * 2 + b"00000000000\0" * 2 + b" " * 8 + b"0" + b"\0" * 100
) + (b"ustar\x0000" + b"\0" * 64 + b"\0" * 16 + b"\0" * 155 + b"\0" * 12)


def padding(size: int) -> bytes:
    """The zeros after `size` bytes of member content, up to the next tar block."""
    return b"\0" * (-size % BLOCK)


class _ReadsInto(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def chunks(f: _ReadsInto) -> Iterator[memoryview]:
    """The rest of `f`, chunk by chunk, read into this thread's own buffer: a chunk is valid until the next
    one is read, so use one of these at a time per thread."""
    buf: memoryview | None = getattr(_buffers, "chunk", None)
    if buf is None:
        buf = _buffers.chunk = memoryview(bytearray(CHUNK))
    while n := f.readinto(buf):
        yield buf[:n]
