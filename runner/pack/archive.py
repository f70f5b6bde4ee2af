"""Repro packs on disk: build one from staged files, and read one (unpack, verify, inspect) safely.

Inputs: files and bytes from the recorder (build); a `.tar.zst` from anyone (unpack, verify, inspect).
Outputs: a pack file; an unpacked folder with its `Manifest`; a `VerifyReport`; a `PackSummary`.
Rules:
- A pack is a zstd stream holding one tar stream, then a trailer (a zstd skippable frame) with the
  sha256 of the compressed bytes. `manifest.yaml` is the first member, so a reader learns every
  member's name, size and sha256 before it reads any other byte. See docs/pack-format.md.
- Reading is streaming and bounded: decompressed bytes are capped by `Limits` and by what the manifest
  declares, zstd windows are capped, tar meta headers are capped, memory does not grow with the pack.
- Nothing from a pack is trusted: links, devices, fifos, absolute or `..` names, names that normalise
  differently, duplicates and names outside the layout are refused. Files are written with
  O_CREAT|O_EXCL|O_NOFOLLOW under folders this module created; tarfile's extraction code is never used.
- `unpack` extracts into a private folder inside the destination and moves the result into place only
  when every member checked out; on any failure the destination is left as it was found.
- `build` first runs the privacy pass (runner.privacy.mask.protect: redaction on by default, sealing,
  encryption, audit), so the hashes are those of what is written; `signature.json`, if any, is written
  last and is the one member outside `integrity` (it signs the root digest).
- The builder hashes what is added at once and does not copy files: `build` reads them again, refusing
  any that changed, and writes to a temp file next to the destination, fsyncs it, renames it, fsyncs
  the folder: a crash never leaves a half-written pack under the final name.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import posixpath
import queue
import re
import shlex
import shutil
import struct
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, cast

import zstandard
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from runner.errors import PackError
from runner.pack import manifest as mf
from runner.pack.manifest import Artifact, Integrity, Manifest, MemberDigest
from runner.privacy.crypto import Keyring
from runner.privacy.mask import PrivacyOptions, open_payloads, protect
from runner.privacy.sign import sign_manifest

__all__ = [
    "DEFAULT_LEVEL",
    "SIGNATURE",
    "Limits",
    "PackBuilder",
    "PackSummary",
    "UnpackedPack",
    "VerifyReport",
    "extract",
    "inspect",
    "layout_problem",
    "render_summary",
    "resign",
    "summary_dict",
    "unpack",
    "verify",
]

DEFAULT_LEVEL = 3
MANIFEST = "manifest.yaml"
SIGNATURE = "signature.json"  # signs the root digest, so it cannot be one of the members the root covers
_MAX_SIGNATURE = 64 * 1024
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_MAX_META_HEADER = 64 * 1024  # a pax or GNU long-name header larger than this is not from a real pack
_PER_MEMBER_OVERHEAD = 8 * _BLOCK  # header, pax header, padding
_FINE_TICK_NS = 100_000_000  # files modified this recently are hashed again at build ...
_COARSE_TICK_NS = 2_000_000_000  # ... or this, where timestamps have whole seconds only
_SLACK = 4 << 20  # directory entries and end-of-archive padding
# The pack ends with a zstd skippable frame (ignored by zstd tools) holding the sha256 of every byte before
# it: the compressed encoding has redundant bits that decode to the same content, and those must not pass.
_TRAILER_MAGIC = 0x184D2A5E
_TRAILER_TAG = b"RPK1sha256"
_TRAILER_SIZE = 8 + len(_TRAILER_TAG) + 32

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
)
_DIR_LAYOUT = re.compile(
    rf"prompts|patches|artifacts|artifacts/sha256|cassettes|workspace|privacy|env(?:/{_SEG})*"
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


@dataclass(frozen=True)
class UnpackedPack:
    path: Path
    manifest: Manifest

    def artifact(self, sha256: str) -> Path:
        """The file of an indexed artifact, e.g. a command step's expected stdout."""
        if not any(a.sha256 == sha256 for a in self.manifest.artifacts):
            raise PackError(f"{self.path}: no artifact with sha256 {sha256} in the manifest")
        return self.path / "artifacts" / "sha256" / sha256


@dataclass(frozen=True)
class VerifyReport:
    pack: Path
    ok: bool
    problem: str | None = None  # one line, names the pack and the first bad member
    member: str | None = None
    members_checked: int = 0
    content_bytes: int = 0
    signature: bytes | None = None  # the content of signature.json, checked by runner.privacy.sign


@dataclass(frozen=True)
class PackSummary:
    pack: Path
    manifest: Manifest
    pack_bytes: int
    content_bytes: int  # sum of member sizes, manifest included

    @property
    def ratio(self) -> float:
        return self.content_bytes / self.pack_bytes if self.pack_bytes else 0.0


def layout_problem(name: str, is_dir: bool = False) -> str | None:
    """Why `name` cannot be a member of a pack, or None when it can."""
    if not name or name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' component"
    if "\\" in name or any(ord(c) < 0x20 or c == "\x7f" for c in name):
        return "backslash or control character in name"
    if posixpath.normpath(name) != name:
        return "name is not in normal form"
    pattern = _DIR_LAYOUT if is_dir else _FILE_LAYOUT
    if len(name) > 1024 or not pattern.fullmatch(name):
        return "not part of the pack layout (see docs/pack-format.md)"
    return None


# --- building -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    path: Path
    stat: tuple[int, ...]  # _fingerprint when added
    recheck: bool  # hash again at build: the timestamps alone cannot prove it unchanged


def _fingerprint(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class PackBuilder:
    """Collect members (bytes in a private staging folder, files where they are), then `build` a pack.

    Use as a context manager (the staging folder is removed on exit):

        with PackBuilder() as b:
            b.add_bytes("patches/0001.diff", diff)
            digest = b.add_artifact(log_path, media_type="text/plain", name="pytest.log", span_id=sid)
            b.build(manifest, Path("session.tar.zst"))
    """

    def __init__(self, level: int = DEFAULT_LEVEL, staging_dir: Path | None = None) -> None:
        if not 1 <= level <= 19:
            raise PackError(f"zstd level {level} is out of range; use 1..19 (default {DEFAULT_LEVEL})")
        self.level = level
        self._own_staging = staging_dir is None
        self.staging = Path(tempfile.mkdtemp(prefix="runner-pack-")) if staging_dir is None else staging_dir
        self._members: dict[str, MemberDigest] = {}
        self._sources: dict[str, _Source] = {}  # where build() reads each member from
        self._artifacts: list[Artifact] = []
        self._artifact_set: set[Artifact] = set()
        self._folded: set[str] = set()  # casefolded member names
        self._folded_dirs: set[str] = set()  # casefolded folders holding them

    def __enter__(self) -> PackBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_staging:
            shutil.rmtree(self.staging, ignore_errors=True)

    @property
    def members(self) -> dict[str, MemberDigest]:
        return dict(self._members)

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return tuple(self._artifacts)

    def _claim(self, member: str) -> None:
        problem = layout_problem(member) or (
            "written by build()" if member in (MANIFEST, SIGNATURE) else None
        )
        if problem:
            raise PackError(f"cannot add member {member!r}: {problem}")
        if member in self._members:
            raise PackError(f"member {member!r} was already added to this pack")
        # What readers refuse, the builder refuses first: names equal but for case, a file where a folder is.
        folded = member.casefold()
        parents = {folded.rsplit("/", i)[0] for i in range(1, folded.count("/") + 1)}
        if folded in self._folded or folded in self._folded_dirs or parents & self._folded:
            raise PackError(f"cannot add member {member!r}: it clashes with a member already added")
        self._folded.add(folded)
        self._folded_dirs.update(parents)

    def _stage(self, member: str, data: bytes) -> MemberDigest:
        path = self.staging / member
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # Only this builder writes in its staging folder: the stat fingerprint is enough at build time.
        self._sources[member] = _Source(path, _fingerprint(path.stat()), recheck=False)
        self._members[member] = MemberDigest(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        return self._members[member]

    def _hash_file(self, src_path: Path) -> tuple[MemberDigest, _Source]:
        sha, size = hashlib.sha256(), 0
        try:
            with open(src_path, "rb") as f:
                before = os.fstat(f.fileno())
                while chunk := f.read(_CHUNK):
                    sha.update(chunk)
                    size += len(chunk)
                after = os.fstat(f.fileno())
        except OSError as e:
            raise PackError(f"cannot read {src_path} to add it to the pack: {e.strerror}") from e
        if _fingerprint(before) != _fingerprint(after) or size != after.st_size:
            raise PackError(f"{src_path} changed while it was being added to the pack; add it again")
        # Timestamps move in ticks (a few ms; whole seconds on some file systems): a file modified within a
        # tick of now could change again without its timestamps moving, so build() hashes it again.
        tick = _COARSE_TICK_NS if after.st_mtime_ns % 1_000_000_000 == 0 else _FINE_TICK_NS
        recent = time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) < tick
        return MemberDigest(sha256=sha.hexdigest(), size=size), _Source(
            Path(src_path), _fingerprint(after), recent
        )

    def add_bytes(self, member: str, data: bytes) -> MemberDigest:
        self._claim(member)
        return self._stage(member, data)

    def member_bytes(self, member: str) -> bytes:
        """The current content of a member added to this builder."""
        source = self._sources[member]
        try:
            data = source.path.read_bytes()
        except OSError as e:
            raise PackError(f"cannot read {source.path} ({member}): {e.strerror}") from e
        if hashlib.sha256(data).hexdigest() != self._members[member].sha256:
            raise PackError(f"{source.path} ({member}) changed after it was added; add it again")
        return data

    def rewrite_in_place(self, member: str, data: bytes) -> None:
        """Replace a member's content keeping its name (sealing a payload)."""
        self._stage(member, data)

    def rewrite(self, member: str, data: bytes) -> str:
        """Replace a member's content (the redaction pass) and return its name: an artifact moves to the name
        of its new hash (joining an existing blob with that content); other members keep theirs."""
        if not member.startswith("artifacts/sha256/"):
            self._stage(member, data)
            return member
        del self._members[member], self._sources[member]
        self._folded.discard(member.casefold())
        new = f"artifacts/sha256/{hashlib.sha256(data).hexdigest()}"
        if new not in self._members:
            self._claim(new)
            self._stage(new, data)
        return new

    def add_file(self, member: str, src_path: Path) -> MemberDigest:
        """Add `src_path` as `member` without copying it. It is hashed now and read again by `build`,
        which refuses it if it changed in between (stat fingerprint; hash again when recently modified)."""
        self._claim(member)
        digest, source = self._hash_file(src_path)
        self._sources[member] = source
        self._members[member] = digest
        return digest

    def add_artifact(
        self,
        data_or_path: bytes | Path,
        *,
        media_type: str = "application/octet-stream",
        name: str | None = None,
        span_id: str | None = None,
    ) -> str:
        """Store a blob once under artifacts/sha256/<hex>, index it, and return its sha256."""
        if isinstance(data_or_path, bytes):
            digest = MemberDigest(hashlib.sha256(data_or_path).hexdigest(), len(data_or_path))
            member = f"artifacts/sha256/{digest.sha256}"
            if member not in self._members:
                self._stage(member, data_or_path)
        else:
            digest, source = self._hash_file(data_or_path)
            member = f"artifacts/sha256/{digest.sha256}"
            if member not in self._members:
                self._sources[member] = source
                self._members[member] = digest
        entry = Artifact(member, digest.sha256, digest.size, media_type, span_id=span_id, name=name)
        if entry not in self._artifact_set:
            self._artifact_set.add(entry)
            self._artifacts.append(entry)
        return digest.sha256

    def build(
        self,
        manifest: Manifest,
        out_path: Path,
        progress: Callable[[int, int], None] | None = None,
        privacy: PrivacyOptions | None = None,
        signer: Callable[[Manifest], bytes] | None = None,
    ) -> Manifest:
        """Write the pack to `out_path` atomically and return the manifest as written (with integrity).

        An empty `manifest.artifacts` is filled from this builder's artifact index. Then the privacy pass
        runs (`runner.privacy.mask.protect`): by default the `default-v1` redaction policy, with the keyring
        named by $RUNNER_KEYRING when set; `privacy=PrivacyOptions(policy=None)` turns it off. Hashes are
        computed after it. `signer(final manifest)` (or `privacy.sign` with a keyring) gives the bytes of
        `signature.json`, written last and outside `integrity`. `progress(done, total)` is called with
        content bytes as they are written.
        """
        if not manifest.artifacts:
            manifest = replace(manifest, artifacts=self.artifacts)
        options = PrivacyOptions.from_env() if privacy is None else privacy
        manifest = protect(self, manifest, options)
        if signer is None and options.sign and options.keyring is not None:
            signer = functools.partial(sign_manifest, keyring=options.keyring)
        missing = sorted(manifest.referenced_members() - set(self._members))
        if missing:
            raise PackError(f"the manifest points at {missing[0]}, which was not added to the pack")
        members = dict(sorted(self._members.items()))
        body = replace(manifest, integrity=None)
        final = replace(manifest, integrity=Integrity(root=mf.root_digest(body, members), members=members))
        out_path = Path(out_path)
        # The recorder's mistakes surface here, not at replay on someone else's machine.
        mf.validate(final, source=f"{out_path}: {MANIFEST}")
        text = mf.dump(final).encode()
        signature = signer(final) if signer else None
        total = len(text) + sum(d.size for d in members.values())
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".partial")
            with os.fdopen(fd, "wb") as raw:
                self._write(raw, text, members, total, progress, signature)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, out_path)
            tmp = None
            dir_fd = os.open(out_path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise PackError(
                f"cannot write {out_path}: {e.strerror or e}; check the folder exists and has space"
            ) from e
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return final

    def _write(
        self,
        raw: IO[bytes],
        manifest_text: bytes,
        members: dict[str, MemberDigest],
        total: int,
        progress: Callable[[int, int], None] | None,
        signature: bytes | None = None,
    ) -> None:
        # Tar headers are written directly: tarfile's stream writer re-slices its buffer on every write.
        cctx = zstandard.ZstdCompressor(level=self.level, threads=-1, write_checksum=True)
        hashed = _HashingWriter(raw)
        with cctx.stream_writer(cast(IO[bytes], hashed), closefd=False) as zw:
            zw.write(_tar_header(MANIFEST, len(manifest_text)))
            zw.write(manifest_text + _padding(len(manifest_text)))
            done = len(manifest_text)
            for name, expected in members.items():
                zw.write(_tar_header(name, expected.size))
                source = self._sources[name]
                changed = PackError(f"{source.path} ({name}) changed after it was added; add it again")
                sha, size = hashlib.sha256() if source.recheck else None, 0
                try:
                    with open(source.path, "rb") as f:
                        if _fingerprint(os.fstat(f.fileno())) != source.stat:
                            raise changed
                        while (chunk := f.read(_CHUNK)) and size <= expected.size:
                            if sha:
                                sha.update(chunk)
                            size += len(chunk)
                            zw.write(chunk)
                except OSError as e:
                    raise PackError(f"cannot read {source.path} for {name}: {e.strerror}") from e
                if size != expected.size or (sha and sha.hexdigest() != expected.sha256):
                    raise changed
                zw.write(_padding(size))
                done += size
                if progress:
                    progress(done, total)
            if signature is not None:
                zw.write(_tar_header(SIGNATURE, len(signature)) + signature + _padding(len(signature)))
            zw.write(b"\0" * (2 * _BLOCK))
        raw.write(_trailer(hashed.sha.digest()))


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


class _HashingWriter:
    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()


def _trailer(digest: bytes) -> bytes:
    return struct.pack("<II", _TRAILER_MAGIC, len(_TRAILER_TAG) + len(digest)) + _TRAILER_TAG + digest


def _tar_reader(fileobj: object) -> tarfile.TarFile:
    """tarfile in stream mode over the zstd reader, with a large buffer (typeshed wants a real file here)."""
    opener: Any = tarfile.open
    tar: tarfile.TarFile = opener(fileobj=fileobj, mode="r|", bufsize=_CHUNK, tarinfo=_StrictTarInfo)
    return tar


def _tar_header(name: str, size: int) -> bytes:
    # Fixed metadata: the same content gives the same pack bytes.
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = 0o644
    ti.mtime = 0
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


# --- reading ------------------------------------------------------------------------------------


class _Refused(Exception):
    """A reason to refuse the pack; `_Scanner` turns it into a PackError naming the pack and member."""


class _StrictTarInfo(tarfile.TarInfo):
    """Refuses tar meta headers that would make tarfile buffer unbounded data or read sparse maps."""

    _META = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in self._META and self.size > _MAX_META_HEADER:
            raise _Refused(f"tar meta header of {self.size} bytes is larger than {_MAX_META_HEADER}")
        if self.type in (tarfile.XGLTYPE, tarfile.GNUTYPE_SPARSE):
            raise _Refused("global pax headers and sparse members are not allowed")
        result: tarfile.TarInfo = super()._proc_member(tf)  # type: ignore[misc]
        return result

    def _proc_gnusparse_00(self, *args: Any) -> None:
        raise _Refused("sparse members are not allowed")

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


class _CappedReader:
    """Counts decompressed bytes and refuses to go past `cap`, so a bomb stops early."""

    def __init__(self, f: Any, cap: int) -> None:
        self._f = f
        self.cap = cap
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        want = _CHUNK if n is None or n < 0 else n
        data: bytes = self._f.read(min(want, self.cap - self.count + 1))
        self.count += len(data)
        if self.count > self.cap:
            raise _Refused(f"decompressed data goes past {self.cap} bytes, more than the manifest declares")
        return data


class _TrailedReader:
    """Reads the compressed stream up to the trailer, hashing it; `expected` is the trailer's digest."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self._left = size - _TRAILER_SIZE
        self.sha = hashlib.sha256()
        if self._left < 0:
            raise _Refused("too short to be a repro pack")
        f.seek(self._left)
        trailer = f.read(_TRAILER_SIZE)
        f.seek(0)
        head = _trailer(b"\0" * 32)[: 8 + len(_TRAILER_TAG)]
        if trailer[: len(head)] != head:
            if _TRAILER_TAG[:3] in trailer:
                raise _Refused("this pack's container is a newer version; use a runner release that reads it")
            raise _Refused("no pack trailer at the end: the file is truncated or was not written by runner")
        self.expected = trailer[len(head) :]

    def __enter__(self) -> _TrailedReader:
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
        while self.read(_CHUNK):
            pass
        return self.sha.digest()


class _DirWriter:
    """Creates files under a folder it owns, never following a link."""

    _DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextlib.contextmanager
    def _dir(self, parts: list[str]) -> Iterator[int]:
        fd = os.open(self.root, self._DIR_FLAGS)
        try:
            for part in parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, self._DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            yield fd
        finally:
            os.close(fd)

    def mkdir(self, name: str) -> None:
        with self._dir(name.split("/")):
            pass

    def create(self, name: str) -> IO[bytes]:
        *parents, base = name.split("/")
        with self._dir(parents) as parent:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(base, flags, 0o644, dir_fd=parent)
        return os.fdopen(fd, "wb")


class _Scanner:
    """One streaming pass over a pack; `member` names where it is, for error messages."""

    def __init__(self, pack: Path, limits: Limits) -> None:
        self.pack = pack
        self.limits = limits
        self.member = MANIFEST
        self.checked = 0
        self.content_bytes = 0
        self.signature: bytes | None = None

    @property
    def where(self) -> str:
        """The current member's name, safe to print on one line (names come from the pack)."""
        name = self.member if self.member.isprintable() else repr(self.member)
        return name if len(name) <= 120 else name[:117] + "..."

    def run(self, writer: _DirWriter | None, manifest_only: bool = False) -> Manifest:
        if not self.pack.is_file():
            raise PackError(f"{self.pack}: no such pack file; check the path")
        try:
            return self._run(writer, manifest_only)
        except _Refused as e:
            raise PackError(
                f"{self.pack}: {self.where}: {e}; the pack is damaged or unsafe, ask for a new one"
            ) from e
        except PackError:
            raise
        except (zstandard.ZstdError, tarfile.TarError, EOFError, UnicodeError) as e:
            raise PackError(
                f"{self.pack}: {self.where}: corrupt or truncated pack ({e}); ask for a new one"
            ) from e
        except OSError as e:
            raise PackError(
                f"{self.pack}: {self.where}: cannot read the pack or write the member: {e}"
            ) from e

    def _run(self, writer: _DirWriter | None, manifest_only: bool) -> Manifest:
        limits = self.limits
        dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_size)
        with (
            open(self.pack, "rb") as raw,
            _TrailedReader(raw, self.pack.stat().st_size) as source,
            dctx.stream_reader(cast(IO[bytes], source), read_size=_CHUNK, read_across_frames=True) as zr,
        ):
            capped = _CappedReader(zr, limits.max_manifest_bytes + _SLACK)
            tar = _tar_reader(capped)
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isreg():
                raise _Refused(f"the first member must be {MANIFEST}; this is not a repro pack")
            if first.size > limits.max_manifest_bytes:
                raise _Refused(
                    f"{first.size} bytes is larger than the {limits.max_manifest_bytes} byte limit"
                )
            text = self._read_manifest(tar, first, writer)
            manifest = mf.load(text, source=f"{self.pack}: {MANIFEST}")
            members = self._check_manifest(manifest)
            self.content_bytes += len(text)
            if manifest_only:
                return manifest
            capped.cap = (
                capped.count
                + sum(d.size for d in members.values())
                + _PER_MEMBER_OVERHEAD * len(members)
                + _SLACK
            )
            seen: dict[str, str] = {MANIFEST: MANIFEST}
            digester = _Digester()
            try:
                self._members_loop(tar, writer, members, seen, digester)
            except BaseException as e:
                failure = digester.close()
                if failure and not isinstance(e, KeyboardInterrupt):
                    self.member = failure[0]  # an earlier member went bad first: that is the one to name
                    raise _Refused(failure[1]) from e
                raise
            failure = digester.close()
            self.checked += digester.checked
            if failure:
                self.member = failure[0]
                raise _Refused(failure[1])
            self.member = "(end of archive)"
            tail = tar.fileobj
            while chunk := tail.read(_CHUNK):
                if chunk.count(0) != len(chunk):
                    raise _Refused("data after the end of the tar archive")
            absent = sorted(set(members) - set(seen))
            if absent:
                self.member = absent[0]
                raise _Refused("listed in the manifest but missing from the pack")
            self.member = "(pack trailer)"
            if source.finish() != source.expected:
                raise _Refused("sha256 of the compressed stream does not match: the pack file was altered")
        return manifest

    def _members_loop(
        self,
        tar: tarfile.TarFile,
        writer: _DirWriter | None,
        members: dict[str, MemberDigest],
        seen: dict[str, str],
        digester: _Digester,
    ) -> None:
        count = 1
        while (ti := tar.next()) is not None:
            # Stream mode would otherwise keep every TarInfo (and getmembers() would read the whole pack).
            cast(Any, tar).members.clear()
            self.member = ti.name
            count += 1
            if count > self.limits.max_members:
                raise _Refused(f"more than {self.limits.max_members} members")
            self._check_entry(ti, seen)
            if ti.isdir():
                if writer:
                    writer.mkdir(ti.name)
                continue
            expected = members.get(ti.name)
            if expected is None and ti.name == SIGNATURE:
                if ti.size > _MAX_SIGNATURE:
                    raise _Refused(f"{ti.size} bytes is larger than the {_MAX_SIGNATURE} byte limit")
                self.signature = b"".join(self._chunks(tar, ti))
                if writer:
                    with writer.create(ti.name) as out:
                        out.write(self.signature)
                continue
            if expected is None:
                raise _Refused("member is not listed in the manifest's integrity section")
            if ti.size != expected.size:
                raise _Refused(f"size {ti.size} differs from the {expected.size} bytes the manifest declares")
            dst = writer.create(ti.name) if writer else None
            sha = hashlib.sha256()
            for chunk in self._chunks(tar, ti):
                digester.put(ti.name, sha, dst, chunk)
            digester.end(ti.name, sha, dst, expected)
            if digester.failure:
                return  # the caller reports it

    def _check_manifest(self, manifest: Manifest) -> dict[str, MemberDigest]:
        limits = self.limits
        if manifest.integrity is None:
            raise _Refused("no integrity section; the pack was not written by a pack builder")
        members = dict(manifest.integrity.members)
        if mf.root_digest(replace(manifest, integrity=None), members) != manifest.integrity.root:
            raise _Refused("root digest does not match: the manifest or its member list was edited")
        for name, digest in members.items():
            problem = layout_problem(name) or (
                "the manifest cannot list itself" if name == MANIFEST else None
            )
            if problem:
                raise _Refused(f"integrity lists {name!r}: {problem}")
            if digest.size > limits.max_member_bytes:
                raise _Refused(
                    f"integrity lists {name} at {digest.size} bytes, over the {limits.max_member_bytes} limit"
                )
        if len(members) + 1 > limits.max_members:
            raise _Refused(f"integrity lists more than {limits.max_members} members")
        total = sum(d.size for d in members.values())
        if total > limits.max_total_bytes:
            raise _Refused(f"members add up to {total} bytes, over the {limits.max_total_bytes} byte limit")
        missing = sorted(manifest.referenced_members() - set(members))
        if missing:
            raise _Refused(f"the manifest points at {missing[0]}, which integrity does not list")
        self.checked = 1
        self.content_bytes = total
        return members

    def _check_entry(self, ti: tarfile.TarInfo, seen: dict[str, str]) -> None:
        if ti.issym() or ti.islnk():
            raise _Refused("links are not allowed in a pack")
        if ti.isdev():
            raise _Refused("devices and fifos are not allowed in a pack")
        if not (ti.isreg() or ti.isdir()) or ti.type not in (
            tarfile.REGTYPE,
            tarfile.AREGTYPE,
            tarfile.DIRTYPE,
        ):
            raise _Refused(f"member type {ti.type!r} is not allowed; only files and folders")
        problem = layout_problem(ti.name, is_dir=ti.isdir())
        if problem:
            raise _Refused(problem)
        folded = ti.name.casefold()
        if folded in seen:
            raise _Refused(f"duplicate of {seen[folded]}")
        seen[folded] = ti.name

    def _chunks(self, tar: tarfile.TarFile, ti: tarfile.TarInfo) -> Iterator[bytes]:
        """A member's data, straight from the tar stream (what extractfile does, without two more buffers);
        tarfile skips the block padding itself when asked for the next member."""
        left = ti.size
        while left:
            chunk = tar.fileobj.read(min(left, _CHUNK))
            if not chunk:
                raise _Refused(f"truncated: {left} of {ti.size} bytes missing")
            left -= len(chunk)
            yield chunk

    def _read_manifest(self, tar: tarfile.TarFile, ti: tarfile.TarInfo, writer: _DirWriter | None) -> bytes:
        text = b"".join(self._chunks(tar, ti))
        if writer:
            with writer.create(ti.name) as dst:
                dst.write(text)
        return text


class _Digester:
    """Hashes and writes member data on a worker thread, in order, while the caller decompresses.

    At most a few chunks are in flight. The first member whose hash does not match (or whose file cannot
    be written) is kept in `failure`; after that the worker only drains the queue.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=4)
        self.failure: tuple[str, str] | None = None
        self.checked = 0
        self._unfinished: IO[bytes] | None = None  # a file whose member was cut short by an error
        self._thread = threading.Thread(target=self._work, name="pack-digest", daemon=True)
        self._thread.start()

    def put(self, name: str, sha: Any, dst: IO[bytes] | None, chunk: bytes) -> None:
        self._unfinished = dst
        self._queue.put((name, sha, dst, chunk, None))

    def end(self, name: str, sha: Any, dst: IO[bytes] | None, expected: MemberDigest) -> None:
        self._unfinished = None
        self._queue.put((name, sha, dst, None, expected))

    def close(self) -> tuple[str, str] | None:
        """Wait for the worker; close what it did not; return the first failure."""
        self._queue.put(None)
        self._thread.join()
        if self._unfinished:
            self._unfinished.close()
        return self.failure

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            name, sha, dst, chunk, expected = item
            if self.failure:
                continue
            try:
                if chunk is not None:
                    sha.update(chunk)
                    if dst:
                        dst.write(chunk)
                    continue
                if dst:
                    dst.close()
                if sha.hexdigest() != expected.sha256:
                    self.failure = (name, "sha256 does not match the manifest: the member was altered")
                else:
                    self.checked += 1
            except OSError as e:
                self.failure = (name, f"cannot write the member: {e}")


def verify(pack_path: Path, limits: Limits = Limits()) -> VerifyReport:
    """Check every member hash, the root digest, missing and extra members; never raises for a bad pack."""
    pack_path = Path(pack_path)
    scanner = _Scanner(pack_path, limits)
    try:
        scanner.run(None)
    except PackError as e:
        return VerifyReport(pack_path, False, str(e), scanner.member, scanner.checked, scanner.content_bytes)
    return VerifyReport(
        pack_path, True, None, None, scanner.checked, scanner.content_bytes, scanner.signature
    )


def unpack(
    pack_path: Path, dest_dir: Path, limits: Limits = Limits(), keyring: Keyring | None = None
) -> UnpackedPack:
    """Extract a pack into `dest_dir` (absent or empty) after checking all of it; leave it untouched on failure.

    A pack with encrypted payloads needs the tenant's `keyring`: its members are decrypted (and their
    authentication checked) before anything is moved into place; without one, PrivacyError."""
    return _extract(pack_path, dest_dir, limits, lambda folder, m: open_payloads(folder, m, keyring))


def extract(pack_path: Path, dest_dir: Path, limits: Limits = Limits()) -> UnpackedPack:
    """`unpack` leaving every member as stored: encrypted payloads stay encrypted (archiving, re-signing)."""
    return _extract(pack_path, dest_dir, limits, None)


def _extract(
    pack_path: Path, dest_dir: Path, limits: Limits, finish: Callable[[Path, Manifest], None] | None
) -> UnpackedPack:
    pack_path, dest_dir = Path(pack_path), Path(dest_dir)
    if dest_dir.is_symlink() or (dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir()))):
        raise PackError(f"cannot unpack {pack_path} into {dest_dir}: it exists and is not an empty folder")
    # The topmost folder this call creates: removed again on failure, so a refusal leaves no trace.
    created = next((p for p in (*reversed(dest_dir.parents), dest_dir) if not p.exists()), None)
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".unpacking-"))
    try:
        manifest = _Scanner(pack_path, limits).run(_DirWriter(partial))
        if finish:
            finish(partial, manifest)
        for entry in partial.iterdir():
            os.rename(entry, dest_dir / entry.name)
        partial.rmdir()
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            for entry in dest_dir.iterdir():  # dest was empty: all of this came from the moves above
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        raise
    return UnpackedPack(path=dest_dir, manifest=manifest)


def inspect(pack_path: Path, limits: Limits = Limits()) -> PackSummary:
    """Read only the manifest (the first member) and summarise the pack; member hashes are not checked."""
    pack_path = Path(pack_path)
    scanner = _Scanner(pack_path, limits)
    manifest = scanner.run(None, manifest_only=True)
    return PackSummary(pack_path, manifest, pack_path.stat().st_size, scanner.content_bytes)


def render_summary(summary: PackSummary) -> RenderableType:
    """The human form of `runner inspect`: session, agent, model, steps, artifacts and sizes."""
    m = summary.manifest
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    env = m.environment
    env_text = {
        "image": lambda: env.image.reference if env.image else "",
        "dockerfile": lambda: (
            f"{env.dockerfile.path} FROM {env.dockerfile.base_digest}" if env.dockerfile else ""
        ),
        "snapshot": lambda: f"python {env.snapshot.python} on {env.snapshot.os}" if env.snapshot else "",
    }[env.kind]()
    rows = [
        ("pack", f"{summary.pack}  (format {m.format_version})"),
        ("session", f"{m.session.id}  {m.session.created_at}"),
        (
            "agent",
            " ".join(
                x
                for x in (
                    m.agent.name,
                    m.agent.commit,
                    m.agent.config_version and f"config {m.agent.config_version}",
                )
                if x
            ),
        ),
        (
            "git",
            f"{m.git.base_commit[:12]} {m.git.branch or ''}{' (dirty)' if m.git.dirty else ''} {m.git.remote or ''}",
        ),
        ("environment", f"{env.kind}: {env_text}"),
    ]
    if m.llm:
        params = ("revision", "seed", "temperature", "top_p", "max_tokens")
        rows.append(
            (
                "llm",
                f"{m.llm.provider}/{m.llm.model}  "
                + "  ".join(f"{k}={getattr(m.llm, k)}" for k in params if getattr(m.llm, k) is not None),
            )
        )
    p = m.privacy
    privacy = f"redacted with {p.redaction_policy}" if p.redaction_policy else "not redacted"
    if p.key_ids:
        privacy += f", originals sealed with key {', '.join(p.key_ids)}"
    if p.encrypted_payloads:
        privacy += ", payloads encrypted"
    rows.append(("privacy", privacy))
    rows.append(("cassettes", ", ".join(f"{c.path} ({c.count} recorded)" for c in m.cassettes) or "none"))
    rows.append(
        (
            "size",
            f"{_human(summary.pack_bytes)} packed, {_human(summary.content_bytes)} unpacked, ratio {summary.ratio:.2f}",
        )
    )
    for label, value in rows:
        head.add_row(label, Text(value, overflow="fold"))
    steps = Table(title="steps", title_justify="left", expand=False)
    for col in ("#", "id", "kind", "what", "expect"):
        steps.add_column(col)
    for i, step in enumerate(m.steps, 1):
        if isinstance(step, mf.PatchStep):
            steps.add_row(
                str(i), step.id, "patch", Text(step.patch + (f"  ({step.reason})" if step.reason else "")), ""
            )
        else:
            what = shlex.join(step.argv) + (f"  (in {step.cwd})" if step.cwd != "." else "")
            steps.add_row(
                str(i),
                step.id,
                "command",
                Text(what),
                f"exit {step.expect.exit_code}, {len(step.expect.outputs)} outputs",
            )
    arts = Table(title="artifacts", title_justify="left")
    for col in ("sha256", "size", "media type", "name", "span"):
        arts.add_column(col)
    for a in m.artifacts:
        arts.add_row(a.sha256[:12], _human(a.size), a.media_type, Text(a.name or ""), a.span_id or "")
    return Group(head, steps, arts)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def summary_dict(summary: PackSummary) -> dict[str, Any]:
    """The JSON form of `runner inspect --json`."""
    return {
        "pack": str(summary.pack),
        "pack_bytes": summary.pack_bytes,
        "content_bytes": summary.content_bytes,
        "compression_ratio": round(summary.ratio, 3),
        "manifest": mf.to_dict(summary.manifest),
    }


def resign(pack_path: Path, signer: Callable[[Manifest], bytes], limits: Limits = Limits()) -> Manifest:
    """Write `pack_path` again with a new `signature.json` (made by `signer` from its checked manifest).

    Members are copied as they are (encrypted ones stay encrypted); the root digest does not change.
    """
    pack_path = Path(pack_path)
    with tempfile.TemporaryDirectory(dir=pack_path.parent, prefix=f".{pack_path.name}.") as tmp:
        folder = Path(tmp) / "pack"
        manifest = extract(pack_path, folder, limits).manifest
        assert manifest.integrity is not None  # the scanner refuses a pack without one
        with PackBuilder(staging_dir=Path(tmp)) as builder:
            for name in manifest.integrity.members:
                builder.add_file(name, folder / name)
            return builder.build(manifest, pack_path, privacy=PrivacyOptions(policy=None), signer=signer)
