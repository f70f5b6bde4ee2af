"""Keyrings, sealing, encrypted payloads, rotation: a wrong key or a flipped bit is a PrivacyError."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
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


def cli(*args: object) -> tuple[int, str]:
    from typer.testing import CliRunner

    from runner.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    """The one error line of `output` (`verify` prints its integrity line before checking signatures)."""
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def test_keys_new_into_a_missing_folder_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    code, out = cli("keys", "new", "--tenant", "acme", "--out", tmp_path / "missing" / "acme.keys")
    assert code == 2
    assert "mkdir -m 700" in one_error_line(out)
    assert not (tmp_path / "missing").exists()


def signed_pack(tmp_path: Path) -> tuple[Path, Path]:
    keys = tmp_path / "acme.keys"
    assert cli("keys", "new", "--tenant", "acme", "--out", keys)[0] == 0
    pack = make_pack(tmp_path, steps=[command("c1", ["true"])])
    code, out = cli("sign", pack, "--key", keys)
    assert code == 0, out
    return pack, Path(f"{keys}.pub")


@pytest.mark.parametrize(
    "damage",
    [
        "three-byte-key",
        "three-byte-file",
        "empty-keys",
        "bad-id",
        "keys-not-a-list",
        "deep",
    ],
)
def test_a_malformed_public_key_file_is_one_line_and_exit_2(tmp_path: Path, damage: str) -> None:
    pack, pub = signed_pack(tmp_path)
    data = json.loads(pub.read_text())
    if damage == "three-byte-key":
        data["keys"][0]["ed25519"] = "YWJj"  # base64 of b"abc"
    elif damage == "empty-keys":
        data["keys"] = []
    elif damage == "bad-id":
        data["keys"][0]["id"] = "../x"
    elif damage == "keys-not-a-list":
        data["keys"] = 7
    text = json.dumps(data)
    if damage == "three-byte-file":
        text = "abc"
    elif damage == "deep":
        text = "[" * 100_000 + "]" * 100_000
    pub.write_text(text)
    code, out = cli("verify", pack, "--pubkey", pub)
    assert code == 2 and str(pub) in one_error_line(out), out


def test_a_keyring_with_a_malformed_key_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acme.keys"
    crypto.save_keyring(crypto.new_keyring("acme"), path)
    data = json.loads(path.read_text())
    data["keys"][0]["id"] = "zz"
    path.write_text(json.dumps(data))
    with pytest.raises(PrivacyError, match="key id must be 16"):
        crypto.load_keyring(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o606])
def test_a_keyring_readable_by_others_is_refused_with_the_chmod_to_run(tmp_path: Path, mode: int) -> None:
    keys = tmp_path / "acme.keys"
    assert cli("keys", "new", "--tenant", "acme", "--out", keys)[0] == 0
    keys.chmod(mode)
    pack = make_pack(tmp_path, steps=[command("c1", ["true"])])
    for args in (("sign", pack, "--key", keys), ("keys", "rotate", keys), ("verify", pack, "--pubkey", keys)):
        code, out = cli(*args)
        assert code == 2 and f"chmod 600 {keys}" in one_error_line(out), (args, out)
    keys.chmod(0o600)
    assert cli("sign", pack, "--key", keys)[0] == 0
    assert cli("verify", pack, "--pubkey", f"{keys}.pub")[0] == 0  # the public half may be world-readable


def test_building_and_reading_packs_without_keys_does_not_import_cryptography() -> None:
    """Checked on `sys.modules` in a fresh interpreter, never on time."""
    probe = (
        "import sys, runner.pack.build, runner.pack.read, runner.privacy.sign\n"
        "print('cryptography' in {m.split('.')[0] for m in sys.modules})"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=repo, check=True
    )
    assert done.stdout.split() == ["False"]
