"""Read a repro pack safely: unpack, extract or verify it in one streaming, bounded pass.

Inputs: a `.tar.zst` from anyone. Outputs: an unpacked folder with its `Manifest`; a `VerifyReport`.
Rules:
- Reading is streaming and bounded: decompressed bytes are capped by `Limits` and by what the manifest
  declares, zstd windows are capped, tar meta headers are capped, memory does not grow with the pack.
- Nothing from a pack is trusted: links, devices, fifos, absolute or `..` names, names that normalise
  differently, duplicates, names outside the layout and empty folders are refused. Files are written with
  O_CREAT|O_EXCL|O_NOFOLLOW under folders this module created; tarfile's extraction code is never used.
- `unpack` extracts into a private folder inside the destination and moves the result into place only
  when every member checked out; on any failure the destination is left as it was found. A member's hash
  is known only at its end, so a member that fails it was written first (up to its declared size):
  `verify_first=True` checks the whole pack in a pass that writes nothing before the pass that writes,
  and `only=` writes just the members a command needs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import zstandard

from runner.errors import PackError
from runner.pack import manifest as mf
from runner.pack.files import Digester, DirWriter
from runner.pack.layout import BLOCK, CHUNK, MANIFEST, SIGNATURE, Limits, layout_problem
from runner.pack.manifest import Manifest, MemberDigest
from runner.pack.stream import Ahead, CappedReader, Forward, Refused, TrailedReader

if TYPE_CHECKING:
    from runner.privacy.crypto import Keyring

__all__ = ["UnpackedPack", "VerifyReport", "extract", "read_manifest", "unpack", "verify"]

_MAX_SIGNATURE = 64 * 1024
_MAX_META_HEADER = 64 * 1024  # a pax or GNU long-name header larger than this is not from a real pack
_PER_MEMBER_OVERHEAD = 8 * BLOCK  # header, pax header, padding
_SLACK = 4 << 20  # directory entries and end-of-archive padding
_LIMITS = Limits()


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
    manifest_sha256: str | None = None  # of the exact manifest.yaml bytes, which a signature covers


class _StrictTarInfo(tarfile.TarInfo):
    """Refuses tar meta headers that would make tarfile buffer unbounded data or read sparse maps."""

    _META = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in self._META and self.size > _MAX_META_HEADER:
            raise Refused(f"tar meta header of {self.size} bytes is larger than {_MAX_META_HEADER}")
        if self.type in (tarfile.XGLTYPE, tarfile.GNUTYPE_SPARSE):
            raise Refused("global pax headers and sparse members are not allowed")
        result: tarfile.TarInfo = super()._proc_member(tf)  # type: ignore[misc]
        return result

    def _proc_gnusparse_00(self, *args: Any) -> None:
        raise Refused("sparse members are not allowed")

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


class _Scanner:
    """One streaming pass over a pack; `member` names where it is, for error messages."""

    def __init__(self, pack: Path, limits: Limits) -> None:
        self.pack = pack
        self.limits = limits
        self.member = MANIFEST
        self.checked = self.content_bytes = 0
        self.signature: bytes | None = None
        self.manifest_sha256: str | None = None

    @property
    def where(self) -> str:
        """The current member's name, safe to print on one line (names come from the pack)."""
        name = self.member if self.member.isprintable() else repr(self.member)
        return name if len(name) <= 120 else name[:117] + "..."

    def run(self, writer: DirWriter | None, manifest_only: bool = False) -> Manifest:
        if not self.pack.is_file():
            raise PackError(f"{self.pack}: no such pack file; check the path")
        try:
            return self._run(writer, manifest_only)
        except Refused as e:
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

    def _run(self, writer: DirWriter | None, manifest_only: bool) -> Manifest:
        limits = self.limits
        dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_size)
        with (
            open(self.pack, "rb") as raw,
            TrailedReader(raw, self.pack.stat().st_size) as source,
            dctx.stream_reader(cast(IO[bytes], source), read_size=CHUNK, read_across_frames=True) as zr,
            contextlib.nullcontext(zr) if manifest_only else Ahead(zr) as ahead,
        ):
            capped = CappedReader(ahead, limits.max_manifest_bytes + _SLACK)
            # tarfile reading a forward-only file (typeshed wants a real file as fileobj).
            stream = Forward(capped)
            tar = tarfile.TarFile(fileobj=cast(IO[bytes], stream), mode="r", tarinfo=_StrictTarInfo)
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isreg():
                raise Refused(f"the first member must be {MANIFEST}; this is not a repro pack")
            if first.size > limits.max_manifest_bytes:
                raise Refused(f"{first.size} bytes is larger than the {limits.max_manifest_bytes} byte limit")
            text = self._read_manifest(tar, first, writer)
            self.manifest_sha256 = hashlib.sha256(text).hexdigest()
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
            digester = Digester()
            try:
                self._members_loop(tar, writer, members, seen, digester)
            except BaseException as e:
                failure = digester.close()
                if failure and not isinstance(e, KeyboardInterrupt):
                    self.member = failure[0]  # an earlier member went bad first: that is the one to name
                    raise Refused(failure[1]) from e
                raise
            failure = digester.close()
            self.checked += digester.checked
            if failure:
                self.member = failure[0]
                raise Refused(failure[1])
            self.member = "(end of archive)"
            while chunk := stream.read(CHUNK):
                if chunk.count(0) != len(chunk):
                    raise Refused("data after the end of the tar archive")
            absent = sorted(set(members) - set(seen.values()))  # keys are casefolded names
            if absent:
                self.member = absent[0]
                raise Refused("listed in the manifest but missing from the pack")
            self.member = "(pack trailer)"
            ahead.close()  # done with the decompressor: the rest of the stream is hashed here
            if source.finish() != source.expected:
                raise Refused("sha256 of the compressed stream does not match: the pack file was altered")
        return manifest

    def _members_loop(
        self,
        tar: tarfile.TarFile,
        writer: DirWriter | None,
        members: dict[str, MemberDigest],
        seen: dict[str, str],
        digester: Digester,
    ) -> None:
        count, folders = 1, {n[:i] for n in members for i, c in enumerate(n) if c == "/"}
        while (ti := tar.next()) is not None:
            # Stream mode would otherwise keep every TarInfo (and getmembers() would read the whole pack).
            cast(Any, tar).members.clear()
            self.member = ti.name
            count += 1
            if count > self.limits.max_members:
                raise Refused(f"more than {self.limits.max_members} members")
            self._check_entry(ti, seen, folders)
            if ti.isdir():
                if writer and writer.only is None:
                    writer.mkdir(ti.name)
                continue
            expected = members.get(ti.name)
            if expected is None and ti.name == SIGNATURE:
                if ti.size > _MAX_SIGNATURE:
                    raise Refused(f"{ti.size} bytes is larger than the {_MAX_SIGNATURE} byte limit")
                self.signature = b"".join(self._chunks(tar, ti))
                if writer and writer.wants(ti.name):
                    with writer.create(ti.name) as out:
                        out.write(self.signature)
                continue
            if expected is None:
                raise Refused("member is not listed in the manifest's integrity section")
            if ti.size != expected.size:
                raise Refused(f"size {ti.size} differs from the {expected.size} bytes the manifest declares")
            dst = functools.partial(writer.create, ti.name) if writer and writer.wants(ti.name) else None
            sha = hashlib.sha256()
            for chunk in self._chunks(tar, ti):
                digester.put(ti.name, sha, dst, chunk)
            digester.end(ti.name, sha, dst, expected)
            if digester.failure:
                return  # the caller reports it

    def _check_manifest(self, manifest: Manifest) -> dict[str, MemberDigest]:
        limits = self.limits
        if manifest.integrity is None:
            raise Refused("no integrity section; the pack was not written by a pack builder")
        members = dict(manifest.integrity.members)
        if mf.root_digest(replace(manifest, integrity=None), members) != manifest.integrity.root:
            raise Refused("root digest does not match: the manifest or its member list was edited")
        for name, digest in members.items():
            problem = layout_problem(name) or (
                "the manifest cannot list itself" if name == MANIFEST else None
            )
            if problem:
                raise Refused(f"integrity lists {name!r}: {problem}")
            if digest.size > limits.max_member_bytes:
                raise Refused(
                    f"integrity lists {name} at {digest.size} bytes, over the {limits.max_member_bytes} limit"
                )
        if len(members) + 1 > limits.max_members:
            raise Refused(f"integrity lists more than {limits.max_members} members")
        total = sum(d.size for d in members.values())
        if total > limits.max_total_bytes:
            raise Refused(f"members add up to {total} bytes, over the {limits.max_total_bytes} byte limit")
        missing = sorted(manifest.referenced_members() - set(members))
        if missing:
            raise Refused(f"the manifest points at {missing[0]}, which integrity does not list")
        self.checked = 1
        self.content_bytes = total
        return members

    def _check_entry(self, ti: tarfile.TarInfo, seen: dict[str, str], folders: set[str]) -> None:
        if ti.issym() or ti.islnk():
            raise Refused("links are not allowed in a pack")
        if ti.isdev():
            raise Refused("devices and fifos are not allowed in a pack")
        if not (ti.isreg() or ti.isdir()) or ti.type not in (
            tarfile.REGTYPE,
            tarfile.AREGTYPE,
            tarfile.DIRTYPE,
        ):
            raise Refused(f"member type {ti.type!r} is not allowed; only files and folders")
        problem = layout_problem(ti.name, is_dir=ti.isdir(), folders=folders)
        if problem:
            raise Refused(problem)
        folded = ti.name.casefold()
        if folded in seen:
            raise Refused(f"duplicate of {seen[folded]}")
        seen[folded] = ti.name

    def _chunks(self, tar: tarfile.TarFile, ti: tarfile.TarInfo) -> Iterator[memoryview]:
        """A member's data, straight from the stream (what extractfile does, without its buffers and
        copies); tarfile skips the block padding itself when asked for the next member."""
        left, stream = ti.size, cast(Forward, tar.fileobj)
        while left:
            chunk = stream.view(min(left, CHUNK))
            if not chunk:
                raise Refused(f"truncated: {left} of {ti.size} bytes missing")
            left -= len(chunk)
            yield chunk

    def _read_manifest(self, tar: tarfile.TarFile, ti: tarfile.TarInfo, writer: DirWriter | None) -> bytes:
        text = b"".join(self._chunks(tar, ti))
        if writer:
            with writer.create(ti.name) as dst:
                dst.write(text)
        return text


def verify(pack_path: Path, limits: Limits = _LIMITS) -> VerifyReport:
    """Check every member hash, the root digest, missing and extra members; never raises for a bad pack."""
    s = _Scanner(Path(pack_path), limits)
    try:
        s.run(None)
    except PackError as e:
        return VerifyReport(s.pack, False, str(e), s.member, s.checked, s.content_bytes)
    return VerifyReport(s.pack, True, None, None, s.checked, s.content_bytes, s.signature, s.manifest_sha256)


def unpack(
    pack_path: Path,
    dest_dir: Path,
    limits: Limits = _LIMITS,
    keyring: Keyring | None = None,
    *,
    only: Collection[str] | None = None,
    verify_first: bool = False,
) -> UnpackedPack:
    """Extract a pack into `dest_dir` (absent or empty) after checking all of it; leave it untouched on failure.

    A pack with encrypted payloads needs the tenant's `keyring`: its members are decrypted (and their
    authentication checked) before anything is moved into place; without one, PrivacyError.
    `only` names the members to write (the manifest always is); the others are read and checked, not
    written. `verify_first` checks the whole pack in a pass that writes nothing before the pass that
    writes: a member's hash is known only at its end, so otherwise a member that fails it (a zstd bomb
    declaring gigabytes) is on disk before it is refused. It costs a second read of the pack."""
    return _extract(
        pack_path,
        dest_dir,
        limits,
        lambda folder, m: _open_payloads(folder, m, keyring),
        only=frozenset(only) if only is not None else None,
        verify_first=verify_first,
    )


def _open_payloads(folder: Path, manifest: Manifest, keyring: Keyring | None) -> Manifest:
    """`unseal.open_payloads`, imported (with hyperscan and cryptography) only for a pack with something
    to open: encrypted payloads, or sealed originals to put back with a keyring."""
    if keyring is None and not manifest.privacy.encrypted_payloads:
        return manifest
    from runner.privacy.unseal import open_payloads

    return open_payloads(folder, manifest, keyring)


def extract(pack_path: Path, dest_dir: Path, limits: Limits = _LIMITS) -> UnpackedPack:
    """`unpack` leaving every member as stored: encrypted payloads stay encrypted (archiving, re-signing)."""
    return _extract(pack_path, dest_dir, limits, None)


def _extract(
    pack_path: Path,
    dest_dir: Path,
    limits: Limits,
    finish: Callable[[Path, Manifest], Manifest] | None,
    *,
    only: frozenset[str] | None = None,
    verify_first: bool = False,
) -> UnpackedPack:
    pack_path, dest_dir = Path(pack_path), Path(dest_dir)
    if dest_dir.is_symlink() or (dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir()))):
        raise PackError(f"cannot unpack {pack_path} into {dest_dir}: it exists and is not an empty folder")
    if verify_first:
        _Scanner(pack_path, limits).run(None)
    # The topmost folder this call creates: removed again on failure, so a refusal leaves no trace.
    created = next((p for p in (*reversed(dest_dir.parents), dest_dir) if not p.exists()), None)
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".unpacking-"))
    try:
        writer = DirWriter(partial, only)
        try:
            manifest = _Scanner(pack_path, limits).run(writer)
        finally:
            writer.close()
        if finish:
            manifest = finish(partial, manifest)  # the full manifest, when the pack sealed part of it
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


def read_manifest(pack_path: Path, limits: Limits = _LIMITS) -> tuple[Manifest, int]:
    """The checked manifest (the first member) and the content bytes it declares; member hashes unchecked."""
    scanner = _Scanner(Path(pack_path), limits)
    return scanner.run(None, manifest_only=True), scanner.content_bytes
