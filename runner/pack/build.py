"""Build a repro pack from staged bytes and files: stream it through zstd, hash it, end it with the trailer.

Inputs: bytes and files from the recorder, a `Manifest`. Outputs: a pack file and the manifest as written.
Rules:
- A pack is a zstd stream holding one tar stream, then the trailer (see `layout`). `manifest.yaml` is the
  first member, so a reader learns every member's name, size and sha256 before it reads any other byte.
  See docs/pack-format.md. Tar headers carry fixed metadata: the same content gives the same pack bytes.
- `build` first runs the privacy pass (runner.privacy.mask.protect: redaction on by default, sealing,
  encryption, audit), so the hashes are those of what is written; `signature.json`, if any, is written
  last and is the one member outside `integrity` (it signs the root digest).
- The builder hashes what is added at once and does not copy files. The privacy pass reads each member
  once and hands it, redacted, to `precompress`, which compresses it into a spool frame (`spool`) while
  the pass goes on; `build` writes the manifest's frame, then copies that one, then reads and compresses
  what the pass did not hand over (the bundle; every member when sealing rewrote some after it). It
  refuses any source that changed since it was added, and writes to a temp file next to the
  destination, fsyncs it, renames it, fsyncs the folder: a crash never leaves a half-written pack under
  the final name.
- `resign` writes a pack again with a new signature, members copied as they are.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, cast

import zstandard

from runner.errors import PackError
from runner.pack import manifest as mf
from runner.pack.layout import (
    BLOCK,
    MANIFEST,
    SIGNATURE,
    Limits,
    chunks,
    layout_problem,
    padding,
    tar_header,
    trailer,
)
from runner.pack.manifest import Artifact, Integrity, Manifest, MemberDigest
from runner.pack.spool import Spool
from runner.privacy.mask import PrivacyOptions, protect

__all__ = ["DEFAULT_LEVEL", "PackBuilder", "resign"]

DEFAULT_LEVEL = 3
_FINE_TICK_NS = 100_000_000  # files modified this recently are hashed again at build ...
_COARSE_TICK_NS = 2_000_000_000  # ... or this, where timestamps have whole seconds only
_LIMITS = Limits()
_ARTIFACTS = "artifacts/sha256/"


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
        self._spool = Spool(self.staging, level)  # members the privacy pass compressed already

    def __enter__(self) -> PackBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spool.close()
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

    def _stage(self, member: str, data: bytes, sha256: str | None = None) -> MemberDigest:
        path = self.staging / member
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # Only this builder writes in its staging folder: the stat fingerprint is enough at build time.
        self._sources[member] = _Source(path, _fingerprint(path.stat()), recheck=False)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        self._members[member] = MemberDigest(sha256=digest, size=len(data))
        return self._members[member]

    def _hash_file(self, src_path: Path) -> tuple[MemberDigest, _Source]:
        sha, size = hashlib.sha256(), 0
        try:
            with open(src_path, "rb", buffering=0) as f:
                before = os.fstat(f.fileno())
                for chunk in chunks(f):
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
        """The current content of a member added to this builder, checked as `build` checks it (the stat
        fingerprint; the hash too when the file was modified within a timestamp tick of being added)."""
        source, expected = self._sources[member], self._members[member]
        changed = PackError(f"{source.path} ({member}) changed after it was added; add it again")
        try:
            with open(source.path, "rb") as f:
                if _fingerprint(os.fstat(f.fileno())) != source.stat:
                    raise changed
                data = f.read()
        except OSError as e:
            raise PackError(f"cannot read {source.path} ({member}): {e.strerror}") from e
        if len(data) != expected.size or (
            source.recheck and hashlib.sha256(data).hexdigest() != expected.sha256
        ):
            raise changed
        return data

    def rewrite_in_place(self, member: str, data: bytes) -> None:
        """Replace a member's content keeping its name (sealing a payload)."""
        self._stage(member, data)

    def rewrite(self, member: str, data: bytes, sha256: str | None = None) -> str:
        """Replace a member's content (the redaction pass) and return its name: an artifact moves to the name
        of its new hash (joining an existing blob with that content); other members keep theirs. `sha256`
        is the new content's, when the caller has it already."""
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        new = self._rewritten_name(member, sha256)
        if new == member:
            self._stage(member, data, sha256)
            return member
        del self._members[member], self._sources[member]
        self._folded.discard(member.casefold())
        if new not in self._members:
            self._claim(new)
            self._stage(new, data, sha256)
        return new

    @staticmethod
    def _rewritten_name(member: str, sha256: str) -> str:
        return f"{_ARTIFACTS}{sha256}" if member.startswith(_ARTIFACTS) else member

    def precompress(self, member: str, data: bytes, sha256: str | None = None) -> None:
        """Compress `data` now as what `member` holds at build: its current content, or, with `sha256`,
        the content a `rewrite` to come gives it (an artifact then under its new name). Called in a
        deterministic order from one thread; `build` copies these entries, in that order, instead of
        reading and compressing the members again, provided each still has that name, size and hash."""
        name = self._rewritten_name(member, sha256) if sha256 else member
        self._spool.add(name, data, sha256 or self._members[member].sha256)

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
        self._spool.close()  # what an earlier build spooled: this one spools afresh
        manifest = protect(self, manifest, options)
        if signer is None and options.sign and options.keyring is not None:
            from runner.privacy.sign import sign_manifest

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
        # The manifest's frame, then the members the privacy pass compressed already (their own frame,
        # copied), then the others in a frame compressed here: a zstd stream may hold several frames.
        hashed = _HashingWriter(raw)
        frames = _Frames(zstandard.ZstdCompressor(level=self.level, threads=-1, write_checksum=True), hashed)
        frames.write(tar_header(MANIFEST, len(manifest_text)))
        frames.write(manifest_text + padding(len(manifest_text)))
        done = len(manifest_text)
        spooled = self._spool.entries if self._spool.usable(members) else {}
        for name in spooled:
            self._read_member(name, members[name])  # refuses a source that changed since it was spooled
        if spooled:
            self._spool.copy(frames.copy)
            done += sum(d.size for d in spooled.values())
            if progress:
                progress(done, total)
        for name, expected in members.items():
            if name not in spooled:
                self._read_member(name, expected, frames)
                done += expected.size
                if progress:
                    progress(done, total)
        if signature is not None:
            frames.write(tar_header(SIGNATURE, len(signature)) + signature + padding(len(signature)))
        frames.write(b"\0" * (2 * BLOCK))
        frames.end()
        raw.write(trailer(hashed.sha.digest()))

    def _read_member(self, name: str, expected: MemberDigest, frames: _Frames | None = None) -> None:
        """Check that a member's source is unchanged; with `frames`, read it and write its tar entry."""
        source = self._sources[name]
        changed = PackError(f"{source.path} ({name}) changed after it was added; add it again")
        sha, size = hashlib.sha256() if source.recheck and frames else None, 0
        try:
            if frames is None:
                if _fingerprint(os.stat(source.path)) != source.stat:
                    raise changed
                return
            frames.write(tar_header(name, expected.size))
            with open(source.path, "rb", buffering=0) as f:
                if _fingerprint(os.fstat(f.fileno())) != source.stat:
                    raise changed
                for chunk in chunks(f):
                    if sha:
                        sha.update(chunk)
                    size += len(chunk)
                    frames.write(chunk)
                    if size > expected.size:
                        break
        except OSError as e:
            raise PackError(f"cannot read {source.path} for {name}: {e.strerror or e}") from e
        if size != expected.size or (sha and sha.hexdigest() != expected.sha256):
            raise changed
        frames.write(padding(size))


class _Frames:
    """The compressed stream of a pack being written: bytes compressed into the current frame, or
    frames compressed already copied as they are (which ends the current frame first)."""

    def __init__(self, cctx: zstandard.ZstdCompressor, out: _HashingWriter) -> None:
        self._out = out
        self._writer = cctx.stream_writer(cast(IO[bytes], out), closefd=False)
        self._open = False  # whether the current frame holds bytes: ending it writes them

    def write(self, data: bytes | memoryview) -> None:
        self._writer.write(data)
        self._open = True

    def copy(self, frame: bytes | memoryview) -> None:
        self.end()
        self._out.write(frame)

    def end(self) -> None:
        if self._open:
            self._writer.flush(zstandard.FLUSH_FRAME)
            self._open = False


class _HashingWriter:
    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        self.sha.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()


def resign(pack_path: Path, signer: Callable[[Manifest], bytes], limits: Limits = _LIMITS) -> Manifest:
    """Write `pack_path` again with a new `signature.json` (made by `signer` from its checked manifest).

    Members are copied as they are (encrypted ones stay encrypted); the root digest does not change.
    """
    from runner.pack.read import extract

    pack_path = Path(pack_path)
    with tempfile.TemporaryDirectory(dir=pack_path.parent, prefix=f".{pack_path.name}.") as tmp:
        folder = Path(tmp) / "pack"
        manifest = extract(pack_path, folder, limits).manifest
        assert manifest.integrity is not None  # the scanner refuses a pack without one
        with PackBuilder(staging_dir=Path(tmp)) as builder:
            for name in manifest.integrity.members:
                builder.add_file(name, folder / name)
            return builder.build(manifest, pack_path, privacy=PrivacyOptions(policy=None), signer=signer)
