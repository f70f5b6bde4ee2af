"""Members compressed during the redaction pass: the pack reads as if each were compressed at write time."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import zstandard

from proxy.redact import Redactor
from runner.errors import PackError
from runner.pack import build as pack
from runner.pack import read as pack_read
from runner.pack import spool as spool_module
from runner.pack.manifest import Manifest, MemberDigest
from runner.pack.spool import Spool
from runner.privacy import mask
from runner.privacy.mask import PrivacyOptions
from tests.packfactory import make_manifest, raw_members

SECRET = "sk-" + "A1b2C3d4" * 4
KEY = PrivacyOptions(redaction_key=b"k" * 32)
SHA_X = hashlib.sha256(b"x\n").hexdigest()
PLACEHOLDER = Redactor(b"k" * 32).placeholder(SECRET, "openai-key")


def _build(tmp_path: Path, out: str, signer: object = None) -> tuple[Path, Path]:
    src = tmp_path / f"{out}.log"
    src.write_bytes(f"line one\nkey {SECRET} used\n".encode() * 50)
    with pack.PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        (tmp_path / f"{out}.txt").write_bytes(b"pytest==8\n")
        b.add_file("env/pip-freeze.txt", tmp_path / f"{out}.txt")
        b.add_artifact(src, media_type="text/plain", name="a.log")
        # An artifact whose redacted content is another one's: one blob.
        b.add_artifact(f"token {SECRET}\n".encode(), media_type="text/plain", name="b.log")
        b.add_artifact(f"token {PLACEHOLDER}\n".encode(), media_type="text/plain", name="c.log")
        b.add_artifact(b"no secret here\n" * 100, media_type="text/plain", name="d.log")
        b.build(make_manifest(), tmp_path / out, privacy=KEY, signer=signer)  # type: ignore[arg-type]
    return tmp_path / out, src


def _frames(path: Path) -> int:
    data, count = path.read_bytes(), 0
    while data[:4] == b"\x28\xb5\x2f\xfd":  # zstd frames, up to the trailer (a skippable frame)
        size = zstandard.frame_content_size(data)
        dctx = zstandard.ZstdDecompressor()
        reader = dctx.decompressobj()
        reader.decompress(data)
        data = reader.unused_data
        count += 1
        assert size != 0
    return count


def test_spooled_members_read_back_as_members_compressed_at_write_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spooled, _ = _build(tmp_path, "spooled.tar.zst")
    monkeypatch.setattr(Spool, "usable", lambda self, members: False)
    plain, _ = _build(tmp_path, "plain.tar.zst")
    assert _frames(spooled) == 3  # manifest, the spooled members, the rest (bundle, end of archive)
    assert _frames(plain) == 1
    assert dict(raw_members(spooled)) == dict(raw_members(plain))
    assert raw_members(spooled)[0][0] == "manifest.yaml"
    out = pack_read.unpack(spooled, tmp_path / "out")
    blobs = [p.read_bytes() for p in (tmp_path / "out/artifacts/sha256").iterdir()]
    assert len(blobs) == 3 and not any(SECRET.encode() in b for b in blobs)
    assert len({a.path for a in out.manifest.artifacts}) == 3


def test_spooled_build_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert (
        _build(tmp_path / "a", "p.tar.zst")[0].read_bytes()
        == _build(tmp_path / "b", "p.tar.zst")[0].read_bytes()
    )


def test_a_file_changed_after_it_was_spooled_is_refused(tmp_path: Path) -> None:
    def change(manifest: Manifest) -> bytes:  # runs between the redaction pass and the write
        (tmp_path / "p.tar.zst.txt").write_bytes(b"changed")
        return b"{}"

    with pytest.raises(PackError, match="changed after it was added"):
        _build(tmp_path, "p.tar.zst", signer=change)
    assert not (tmp_path / "p.tar.zst").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_the_spool_is_used_only_while_every_entry_is_still_that_member(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 3)
    assert not spool.usable({})
    spool.add("env/a.txt", b"a", "1" * 64)
    spool.add("env/a.txt", b"a", "1" * 64)  # a name is spooled once
    assert list(spool.entries) == ["env/a.txt"]
    assert spool.usable({"env/a.txt": MemberDigest("1" * 64, 1), "env/b.txt": MemberDigest("2" * 64, 1)})
    assert not spool.usable({"env/a.txt": MemberDigest("2" * 64, 1)})  # rewritten since (sealed)
    assert not spool.usable({"env/b.txt": MemberDigest("2" * 64, 1)})
    chunks: list[bytes] = []
    spool.copy(chunks.append)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(b"".join(chunks))[512:513] == b"a"
    with pytest.raises(RuntimeError, match="finished"):
        spool.add("env/b.txt", b"b", "2" * 64)
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_the_pass_reads_a_bounded_number_of_bytes_ahead_of_the_compression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mask, "_AHEAD", 250)  # bytes: three members of 100 in flight at most
    events: list[str] = []
    read, spool = pack.PackBuilder.member_bytes, pack.PackBuilder.precompress

    def reading(self: pack.PackBuilder, member: str) -> bytes:
        events.append("read")
        return read(self, member)

    def compressing(self: pack.PackBuilder, member: str, data: bytes, sha256: str | None = None) -> None:
        events.append("compress")
        spool(self, member, data, sha256)

    monkeypatch.setattr(pack.PackBuilder, "member_bytes", reading)
    monkeypatch.setattr(pack.PackBuilder, "precompress", compressing)
    with pack.PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        b.add_bytes("env/pip-freeze.txt", b"pytest==8\n")
        for i in range(20):
            b.add_artifact(b"%02d" % i * 50, media_type="text/plain", name=f"{i}.log")  # 100 bytes
        b.build(make_manifest(), tmp_path / "p.tar.zst", privacy=KEY)
    ahead = [events[: i + 1].count("read") - events[: i + 1].count("compress") for i in range(len(events))]
    assert events.count("compress") == 21 and max(ahead) == 3


def test_a_full_temp_folder_is_a_pack_error_and_leaves_no_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module.tempfile, "mkstemp", full)
    with pytest.raises(PackError, match="No space left on device; check that folder has space"):
        _build(tmp_path, "p.tar.zst")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tar.zst.log", "p.tar.zst.txt"]  # the sources


def test_a_builder_can_build_twice(tmp_path: Path) -> None:
    with pack.PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        b.add_bytes("env/pip-freeze.txt", b"pytest==8\n")
        b.add_artifact(f"token {SECRET}\n".encode(), media_type="text/plain", name="b.log")
        first = b.build(make_manifest(), tmp_path / "a.tar.zst", privacy=KEY)
        b.add_bytes("env/uv.lock", b"x\n")
        second = b.build(make_manifest(artifacts=first.artifacts), tmp_path / "b.tar.zst", privacy=KEY)
    assert first.integrity and second.integrity
    assert second.integrity.members == {**first.integrity.members, "env/uv.lock": MemberDigest(SHA_X, 2)}
    assert dict(raw_members(tmp_path / "b.tar.zst"))["env/uv.lock"] == b"x\n"
