"""Build a repro pack from staged bytes and files: stream it through zstd, hash it, end it with the trailer.

Inputs: bytes and files from the recorder, a `Manifest`. Outputs: a pack file and the manifest as written.
Rules:
- A pack is a zstd stream holding one tar stream, then the trailer (see `layout`). `manifest.yaml` is the
  first member, so a reader learns every member's name, size and sha256 before it reads any other byte.
  See docs/pack-format.md. Tar headers carry fixed metadata: the same content gives the same pack bytes.
- `build` first runs the privacy pass (runner.privacy.mask.protect: redaction on by default, sealing,
  encryption, audit), so the hashes are those of what is written; `signature.json`, if any, is written
  last and is the one member outside `integrity` (it signs the root digest).
- The builder reads what is added once, hashes it and hands it to its `Spool`, which compresses it on
  worker threads while the next members are added (files are not copied; bytes are held in memory up to
  `_HOLD`, then staged in a private folder). `build` runs the privacy pass (what it rewrites is held or
  staged and compressed the same way), writes the manifest's frame,
  copies the spooled groups whose members all stand as they were spooled, then reads, checks (size and
  sha256) and compresses the other members again (those sharing a group with a rewritten one). It refuses
  any source that changed since it was added, and writes to a temp file next to the destination, fsyncs
  it, renames it, fsyncs the folder: a crash never leaves a half-written pack under the final name.
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
from typing import IO

import zstandard

from runner.errors import PackError
from runner.pack import manifest as mf
from runner.pack.layout import (
    BLOCK,
    MANIFEST,
    SIGNATURE,
    Limits,
    TrailedWriter,
    chunks,
    layout_problem,
    padding,
    tar_header,
)
from runner.pack.manifest import Artifact, Integrity, Manifest, MemberDigest
from runner.pack.spool import Spool
from runner.privacy.mask import PrivacyOptions, is_json, protect, scanned
from runner.privacy.prescan import Prescan

__all__ = ["DEFAULT_LEVEL", "PackBuilder", "resign"]

DEFAULT_LEVEL = 3
_FINE_TICK_NS = 100_000_000  # files modified this recently are hashed again at build ...
_COARSE_TICK_NS = 2_000_000_000  # ... or this, where timestamps have whole seconds only
_LIMITS = Limits()
_ARTIFACTS = "artifacts/sha256/"
_HOLD = 256 << 20  # bytes members held in memory, at most; the others are written to the staging folder


@dataclass(frozen=True)
class _Source:
    path: Path
    stat: tuple[int, ...]  # _fingerprint when added
    recheck: bool  # hash again at build: the timestamps alone cannot prove it unchanged
    data: bytes | None = None  # bytes held in memory instead (nothing at `path` then)


def _fingerprint(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class PackBuilder:
    """Collect members (bytes in memory up to 256 MiB, then in a private staging folder; files where they
    are), then `build` a pack.

    `privacy` is what `build` protects the pack with unless told otherwise (None: as $RUNNER_* says); the
    redaction pass starts on what is added with it, so give the options here when they are known. Use as
    a context manager (the staging folder is removed on exit):

        with PackBuilder(privacy=PrivacyOptions()) as b:
            b.add_bytes("patches/0001.diff", diff)
            digest = b.add_artifact(log_path, media_type="text/plain", name="pytest.log", span_id=sid)
            b.build(manifest, Path("session.tar.zst"))
    """

    def __init__(
        self,
        level: int = DEFAULT_LEVEL,
        staging_dir: Path | None = None,
        privacy: PrivacyOptions | None = None,
    ) -> None:
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
        self._spool = Spool(self.staging, level)  # members compressed as they are added
        self._held = 0  # bytes of the members held in memory (see _HOLD)
        self._privacy = privacy  # what `build` protects with by default (None: as $RUNNER_* says)
        self._prescan: Prescan | None = None  # the privacy pass run as members are added
        self._prescan_off = False

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

    def _stage(
        self, member: str, data: bytes, sha256: str | None = None, inspect: bool = False
    ) -> MemberDigest:
        self._forget(member)
        path = self.staging / member
        if self._held + len(data) <= _HOLD:  # bytes cannot change: holding them is enough
            self._held += len(data)
            self._sources[member] = _Source(path, (), recheck=False, data=data)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            # Only this builder writes in its staging folder: the stat fingerprint is enough at build time.
            self._sources[member] = _Source(path, _fingerprint(path.stat()), recheck=False)
        inspect = inspect and self._inspecting() and scanned(member)
        self._members[member] = self._spool.add(member, len(data), (data,), sha256, inspect)
        return self._members[member]

    def _forget(self, member: str) -> None:
        source = self._sources.pop(member, None)
        if source is not None and source.data is not None:
            self._held -= len(source.data)

    def _options(self) -> PrivacyOptions:
        if self._privacy is None:
            self._privacy = PrivacyOptions.from_env()
        return self._privacy

    def _inspecting(self) -> bool:
        """Whether the privacy pass runs ahead on what is added (set up at the first member, with the options
        `build` uses by default, unless they turn redaction off)."""
        if self._prescan is None and not self._prescan_off:
            options = self._options()
            self._prescan_off = options.policy is None
            if not self._prescan_off:
                self._prescan = Prescan(options)
                self._spool.inspect = self._prescan.inspect
                self._prescan.compress = self._spool.compress_ahead
        return self._prescan is not None

    def _untouched_under(self, options: PrivacyOptions) -> Callable[[str, MemberDigest], bool] | None:
        """Whether the pass with `options` leaves a member as it is, by the verdicts of the pass run ahead
        (see `Prescan.extra_values`); None when they do not carry over."""
        extra = None if self._prescan is None else self._prescan.extra_values(options)
        if extra is None:
            return None
        self._spool.judge()  # every verdict in; the last members may still be compressing

        def untouched(member: str, digest: MemberDigest) -> bool:
            if not self._spool.verdicts.get((member, digest.sha256), False):
                return False
            if not extra:
                return True
            return not is_json(member) and not any(value in self.member_bytes(member) for value in extra)

        return untouched

    def _add_path(self, src_path: Path, member: str | None) -> tuple[str, MemberDigest]:
        """Read `src_path` as `member` (None: an artifact, named by its hash) and record it: straight into
        the spool's job buffer, hashed there and inspected by the privacy pass run ahead, when it fits one
        (else by pieces; an artifact is then hashed first, read again if new). A member added already (the
        same artifact) is not kept twice."""
        view: memoryview | None = None
        try:
            with open(src_path, "rb", buffering=0) as f:
                before = os.fstat(f.fileno())
                room = len(tar_header(member or f"{_ARTIFACTS}{'0' * 64}", before.st_size))
                view = self._spool.read_into(f, before.st_size, room)
                if view is not None:
                    sha256 = hashlib.sha256(view).hexdigest()
                    member = member or f"{_ARTIFACTS}{sha256}"
                    digest = MemberDigest(sha256, len(view))
                elif member is None:
                    sha = hashlib.sha256()
                    for chunk in chunks(f):
                        sha.update(chunk)
                    member = f"{_ARTIFACTS}{sha.hexdigest()}"
                    digest = MemberDigest(sha.hexdigest(), f.tell())
                    if member not in self._members:
                        f.seek(0)
                        spooled = self._spool.add(member, before.st_size, chunks(f))
                        digest = digest if spooled == digest else MemberDigest("", -1)
                else:
                    digest = self._spool.add(member, before.st_size, chunks(f))
                after = os.fstat(f.fileno())
        except OSError as e:
            if view is not None:
                self._spool.drop()
            raise PackError(f"cannot read {src_path} to add it to the pack: {e.strerror}") from e
        changed = _fingerprint(before) != _fingerprint(after) or digest.size != after.st_size
        if view is not None:
            if changed or member in self._members:
                self._spool.drop()
            else:
                self._spool.commit(member, digest, inspect=self._inspecting() and scanned(member))
        if changed:
            raise PackError(f"{src_path} changed while it was being added to the pack; add it again")
        if member in self._members:
            return member, digest
        # Timestamps move in ticks (a few ms; whole seconds on some file systems): a file modified within a
        # tick of now could change again without its timestamps moving, so build() hashes it again.
        tick = _COARSE_TICK_NS if after.st_mtime_ns % 1_000_000_000 == 0 else _FINE_TICK_NS
        recent = time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) < tick
        self._sources[member] = _Source(Path(src_path), _fingerprint(after), recent)
        self._members[member] = digest
        return member, digest

    def add_bytes(self, member: str, data: bytes) -> MemberDigest:
        self._claim(member)
        return self._stage(member, data, inspect=True)

    def member_bytes(self, member: str) -> bytes:
        """The current content of a member added to this builder, checked as `build` checks it (the stat
        fingerprint; the hash too when the file was modified within a timestamp tick of being added)."""
        source, expected = self._sources[member], self._members[member]
        if source.data is not None:
            return source.data
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
        del self._members[member]
        self._forget(member)
        self._folded.discard(member.casefold())
        if new not in self._members:
            self._claim(new)
            self._stage(new, data, sha256)
        return new

    @staticmethod
    def _rewritten_name(member: str, sha256: str) -> str:
        return f"{_ARTIFACTS}{sha256}" if member.startswith(_ARTIFACTS) else member

    def add_file(self, member: str, src_path: Path) -> MemberDigest:
        """Add `src_path` as `member` without copying it. It is hashed now and read again by `build`,
        which refuses it if it changed in between (stat fingerprint; hash again when recently modified)."""
        self._claim(member)
        return self._add_path(src_path, member)[1]

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
                self._stage(member, data_or_path, digest.sha256, inspect=True)
        else:
            member, digest = self._add_path(data_or_path, None)
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
        runs (`runner.privacy.mask.protect`) with `privacy`, by default the builder's: the `default-v1`
        redaction policy, with the keyring named by $RUNNER_KEYRING when set, unless the builder was given
        others; `privacy=PrivacyOptions(policy=None)` turns it off. Hashes are computed after it.
        `signer(final manifest)` (or `privacy.sign` with a keyring) gives the bytes of `signature.json`,
        written last and outside `integrity`. `progress(done, total)` is called with content bytes as written.
        """
        if not manifest.artifacts:
            manifest = replace(manifest, artifacts=self.artifacts)
        options = self._options() if privacy is None else privacy
        self._spool.send()  # the last members, whose job would otherwise wait for what follows
        mf.prepare()  # while the last members compress (the pass below waits for them)
        ahead = self._prescan if self._prescan is not None and self._prescan.matches(options) else None
        manifest = protect(self, manifest, options, self._untouched_under(options), ahead)
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
        # The manifest's frame, then the spooled groups still standing (their frames copied), then the
        # other members compressed again, then the end: a zstd stream may hold any number of frames.
        with TrailedWriter(raw) as hashed:
            cctx = zstandard.ZstdCompressor(level=self.level, write_checksum=True)
            hashed.write(
                cctx.compress(
                    tar_header(MANIFEST, len(manifest_text)) + manifest_text + padding(len(manifest_text))
                )
            )
            done = len(manifest_text)
            covered: set[str] = set()
            for group in self._spool.usable(members):  # while the last ones may still be compressing
                for name in group.members:
                    self._check_unchanged(name)
                covered.update(group.members)
                self._spool.copy(group, hashed.write)
                done += group.size
                if progress:
                    progress(done, total)
            rest = [name for name in members if name not in covered]
            if rest:
                again = Spool(self.staging, self.level)
                try:
                    for name in rest:
                        self._spool_again(again, name, members[name])
                        done += members[name].size
                        if progress:
                            progress(done, total)
                    again.flush()
                    for group in again.groups:  # each member in them checked against its digest
                        again.copy(group, hashed.write)
                finally:
                    again.close()
            end = b"\0" * (2 * BLOCK)
            if signature is not None:
                end = tar_header(SIGNATURE, len(signature)) + signature + padding(len(signature)) + end
            hashed.write(cctx.compress(end))
            hashed.end()

    def _changed(self, name: str) -> PackError:
        return PackError(f"{self._sources[name].path} ({name}) changed after it was added; add it again")

    def _check_unchanged(self, name: str) -> None:
        """Refuse a member whose source changed since it was added (its spooled copy is what was added)."""
        source = self._sources[name]
        if source.data is not None:
            return
        try:
            if _fingerprint(os.stat(source.path)) != source.stat:
                raise self._changed(name)
        except OSError as e:
            raise PackError(f"cannot read {source.path} for {name}: {e.strerror or e}") from e

    def _spool_again(self, spool: Spool, name: str, expected: MemberDigest) -> None:
        """Read a member's source into `spool`, refusing it unless it is still what was added."""
        source = self._sources[name]
        try:
            if source.data is not None:
                digest = spool.add(name, expected.size, (source.data,))
            else:
                with open(source.path, "rb", buffering=0) as f:
                    if _fingerprint(os.fstat(f.fileno())) != source.stat:
                        raise self._changed(name)
                    digest = spool.add(name, expected.size, chunks(f))
        except OSError as e:
            raise PackError(f"cannot read {source.path} for {name}: {e.strerror or e}") from e
        if digest != expected:
            raise self._changed(name)


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
        with PackBuilder(staging_dir=Path(tmp), privacy=PrivacyOptions(policy=None)) as builder:
            for name in manifest.integrity.members:
                builder.add_file(name, folder / name)
            return builder.build(manifest, pack_path, signer=signer)
