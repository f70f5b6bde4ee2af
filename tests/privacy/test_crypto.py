"""Keyrings, sealing, encrypted payloads, rotation: a wrong key or a flipped bit is a PrivacyError."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
import zstandard

from runner.errors import PrivacyError
from runner.pack import build as pack_build
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.privacy import access, crypto
from runner.privacy.mask import PrivacyOptions
from tests.packfactory import command, make_pack, raw_members

SECRET = "sk-proj-" + "Abc123" * 7
PROMPT = f"use the key {SECRET} to call the API\n".encode()


def test_seal_round_trips_and_binds_the_member_name() -> None:
    ring = crypto.new_keyring("acme")
    blob = crypto.seal(ring, b"payload", "prompts/0001-user.txt")
    assert crypto.open_sealed(ring, blob, "prompts/0001-user.txt") == b"payload"
    with pytest.raises(PrivacyError, match="decryption failed"):
        crypto.open_sealed(ring, blob, "prompts/0002-user.txt")


@pytest.mark.parametrize("position", [8, 20, 30, -1])
def test_a_flipped_bit_anywhere_is_reported(position: int) -> None:
    ring = crypto.new_keyring("acme")
    blob = bytearray(crypto.seal(ring, b"payload" * 10, "x"))
    blob[position] ^= 0x01
    with pytest.raises(PrivacyError):
        crypto.open_sealed(ring, bytes(blob), "x")


def test_a_wrong_keyring_names_the_missing_key() -> None:
    blob = crypto.seal(crypto.new_keyring("acme"), b"payload", "x")
    with pytest.raises(PrivacyError, match="holds no key"):
        crypto.open_sealed(crypto.new_keyring("other"), blob, "x")


def test_keyring_files_round_trip_private_and_public(tmp_path: Path) -> None:
    ring = crypto.new_keyring("acme")
    pub = crypto.save_keyring(ring, tmp_path / "acme.keys")
    assert stat.S_IMODE((tmp_path / "acme.keys").stat().st_mode) == 0o600
    assert crypto.load_keyring(tmp_path / "acme.keys").keys == ring.keys
    public = crypto.load_public_keys(pub)
    assert public.keys == {ring.newest.id: ring.newest.public_bytes()}
    assert "aead" not in pub.read_text() and "signing_seed" not in pub.read_text()
    (tmp_path / "bad.keys").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PrivacyError, match="not a runner-keyring/1 file"):
        crypto.load_keyring(tmp_path / "bad.keys")


def test_rotation_new_packs_use_the_newest_key_and_old_packs_still_open(tmp_path: Path) -> None:
    ring = crypto.new_keyring("acme")
    old = make_pack(
        tmp_path,
        name="old.tar.zst",
        files={"prompts/0001-user.txt": PROMPT},
        privacy=PrivacyOptions(keyring=ring),
    )
    rotated = crypto.rotate(ring)
    new = make_pack(
        tmp_path,
        name="new.tar.zst",
        files={"prompts/0001-user.txt": PROMPT},
        privacy=PrivacyOptions(keyring=rotated),
    )
    assert pack_summary.inspect(old).manifest.privacy.key_ids == (ring.keys[0].id,)
    assert pack_summary.inspect(new).manifest.privacy.key_ids == (rotated.keys[1].id,)
    assert [s.value for s in access.reveal(old, rotated)] == [SECRET]
    assert [s.value for s in access.reveal(new, rotated)] == [SECRET]
    with pytest.raises(PrivacyError, match="holds no key"):
        access.reveal(new, ring)  # the old keyring never had the new key
    # The redaction key does not rotate: one secret keeps one placeholder across rotations.
    assert access.reveal(old, rotated)[0].token == access.reveal(new, rotated)[0].token


def encrypted_pack(tmp_path: Path, ring: crypto.Keyring) -> Path:
    return make_pack(
        tmp_path,
        files={"prompts/0001-user.txt": PROMPT},
        steps=[command("c1", ["pytest"], stdout=b"3 passed\n")],
        privacy=PrivacyOptions(keyring=ring, encrypt_payloads=True),
    )


def test_encrypted_payloads_are_ciphertext_and_open_with_the_key(tmp_path: Path) -> None:
    ring = crypto.new_keyring("acme")
    p = encrypted_pack(tmp_path, ring)
    members = dict(raw_members(p))
    for name in (
        "prompts/0001-user.txt",
        "traces.jsonl",
        *[n for n in members if n.startswith("artifacts/")],
    ):
        assert crypto.is_sealed(members[name]), name
    assert b"3 passed" not in zstandard.ZstdDecompressor().stream_reader(io.BytesIO(p.read_bytes())).read()
    m = pack_summary.inspect(p).manifest
    assert m.privacy.encrypted_payloads and m.privacy.key_ids == (ring.newest.id,)
    assert pack_read.verify(p).ok  # integrity covers the ciphertext: no key needed to check a pack
    with pytest.raises(PrivacyError, match="payloads are encrypted"):
        pack_read.unpack(p, tmp_path / "nokey")
    assert not (tmp_path / "nokey").exists()
    u = pack_read.unpack(p, tmp_path / "u", keyring=ring)
    step = u.manifest.steps[0]
    assert u.artifact(step.expect.stdout).read_bytes() == b"3 passed\n"  # type: ignore[union-attr]
    assert SECRET not in (u.path / "prompts/0001-user.txt").read_text()
    with pytest.raises(PrivacyError, match="holds no key"):
        pack_read.unpack(p, tmp_path / "wrong", keyring=crypto.new_keyring("acme"))


def test_a_flipped_ciphertext_bit_in_a_pack_is_reported_as_such(tmp_path: Path) -> None:
    """Rebuild the pack around an altered ciphertext (so integrity matches): the AEAD still refuses it."""
    ring = crypto.new_keyring("acme")
    p = encrypted_pack(tmp_path, ring)
    staged = tmp_path / "staged"
    u = pack_read.extract(p, staged)
    target = staged / "prompts/0001-user.txt"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x80
    target.write_bytes(bytes(data))
    with pack_build.PackBuilder() as b:
        assert u.manifest.integrity is not None
        for name in u.manifest.integrity.members:
            b.add_file(name, staged / name)
        b.build(u.manifest, tmp_path / "forged.tar.zst", privacy=PrivacyOptions(policy=None))
    with pytest.raises(PrivacyError, match=r"prompts/0001-user\.txt: decryption failed"):
        pack_read.unpack(tmp_path / "forged.tar.zst", tmp_path / "u", keyring=ring)


def test_encrypting_without_a_keyring_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="need a keyring"):
        make_pack(tmp_path, privacy=PrivacyOptions(encrypt_payloads=True))
