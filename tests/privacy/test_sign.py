"""Signing and offline verification through the CLI: any change to a signed pack fails `verify --pubkey`."""

from __future__ import annotations

import base64
import hashlib
import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.pack import build as pack_build
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.privacy import crypto, sign
from runner.privacy.mask import PrivacyOptions
from tests.packfactory import command, make_pack, raw_members, repack

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture()
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    keys = tmp_path / "acme.keys"
    code, out = run("keys", "new", "--tenant", "acme", "--out", keys)
    assert code == 0, out
    p = make_pack(tmp_path, steps=[command("c1", ["pytest"], stdout=b"1 passed\n")])
    code, out = run("sign", p, "--key", keys)
    assert code == 0, out
    return p, keys, Path(f"{keys}.pub")


def test_a_signed_pack_verifies_offline(signed: tuple[Path, Path, Path]) -> None:
    p, _, pub = signed
    code, out = run("verify", p, "--pubkey", pub)
    assert code == 0, out
    assert "signature ok" in out
    names = [n for n, _ in raw_members(p)]
    assert names[0] == "manifest.yaml" and names[-1] == "signature.json"
    statement = json.loads(dict(raw_members(p))["signature.json"])
    assert statement["payloadType"] == "application/vnd.in-toto+json"


def test_an_unsigned_pack_fails_verify_with_pubkey(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    _, _, pub = signed
    plain = make_pack(tmp_path, name="plain.tar.zst")
    code, out = run("verify", plain, "--pubkey", pub)
    assert code == 2 and "not signed" in out


def test_another_tenants_key_is_refused(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    p, _, _ = signed
    other = tmp_path / "other.keys"
    crypto.save_keyring(crypto.new_keyring("other"), other)
    code, out = run("verify", p, "--pubkey", f"{other}.pub")
    assert code == 2 and "does not hold" in out


def rebuild(p: Path, out: Path, edit: dict[str, bytes], manifest_edit: object = None) -> None:
    """A copy of `p` with members replaced and the old signature.json carried over, hashes all consistent."""
    members = dict(raw_members(p))
    signature = members.pop("signature.json")
    m = pack_summary.inspect(p).manifest
    if manifest_edit is not None:
        m = manifest_edit(m)  # type: ignore[operator]
    with pack_build.PackBuilder() as b:
        for name, data in members.items():
            if name != "manifest.yaml":
                b.add_bytes(name, edit.get(name, data))
        b.build(m, out, privacy=PrivacyOptions(policy=None), signer=lambda _: signature)


def test_changing_a_member_and_resealing_the_hashes_fails(
    tmp_path: Path, signed: tuple[Path, Path, Path]
) -> None:
    p, _, pub = signed
    forged = tmp_path / "forged.tar.zst"
    rebuild(p, forged, {"traces.jsonl": b""})
    assert pack_read.verify(forged).ok  # a consistent pack ...
    code, out = run("verify", forged, "--pubkey", pub)
    assert code == 2 and "changed after it was signed" in out  # ... that is not the one signed


def test_changing_the_manifest_fails(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    from dataclasses import replace

    p, _, pub = signed
    forged = tmp_path / "forged.tar.zst"
    rebuild(p, forged, {}, lambda m: replace(m, agent=replace(m.agent, name="someone-else")))
    code, out = run("verify", forged, "--pubkey", pub)
    assert code == 2 and "changed after it was signed" in out


def test_changing_the_signature_fails(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    p, _, pub = signed
    envelope = json.loads(dict(raw_members(p))["signature.json"])
    sig = bytearray(__import__("base64").b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 1
    envelope["signatures"][0]["sig"] = __import__("base64").b64encode(bytes(sig)).decode()
    forged = tmp_path / "forged.tar.zst"
    members = dict(raw_members(p))
    members.pop("signature.json")
    with pack_build.PackBuilder() as b:
        for name, data in members.items():
            if name != "manifest.yaml":
                b.add_bytes(name, data)
        b.build(pack_summary.inspect(p).manifest, forged, privacy=PrivacyOptions(policy=None),
                signer=lambda _: json.dumps(envelope).encode())  # fmt: skip
    code, out = run("verify", forged, "--pubkey", pub)
    assert code == 2 and "does not verify" in out


def test_flipping_any_byte_of_the_file_fails(signed: tuple[Path, Path, Path]) -> None:
    p, _, pub = signed
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x10
    p.write_bytes(bytes(data))
    code, _ = run("verify", p, "--pubkey", pub)
    assert code == 2


def test_rotation_keeps_old_signatures_valid(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    p, keys, pub = signed
    code, out = run("keys", "rotate", keys)
    assert code == 0 and len(json.loads(out)["key_ids"]) == 2
    assert run("verify", p, "--pubkey", pub)[0] == 0
    assert run("sign", p, "--key", keys)[0] == 0  # re-signing replaces the signature, with the newest key
    code, out = run("verify", p, "--pubkey", pub)
    assert code == 0 and crypto.load_keyring(keys).newest.id in out


def test_signing_at_build_time(tmp_path: Path) -> None:
    ring = crypto.new_keyring("acme")
    crypto.save_keyring(ring, tmp_path / "k")
    p = make_pack(tmp_path, privacy=PrivacyOptions(keyring=ring, sign=True))
    code, out = run("verify", p, "--pubkey", tmp_path / "k.pub")
    assert code == 0, out


def test_inspect_reveal_through_the_cli(tmp_path: Path) -> None:
    keys = tmp_path / "acme.keys"
    crypto.save_keyring(ring := crypto.new_keyring("acme"), keys)
    secret = "ghp_" + "Z9" * 18
    p = make_pack(
        tmp_path,
        files={"prompts/0001-user.txt": f"push with {secret}\n".encode()},
        privacy=PrivacyOptions(keyring=ring),
    )
    code, out = run("inspect", p, "--json")
    assert code == 0 and secret not in out
    code, out = run("inspect", p, "--reveal", "--key", keys, "--json")
    assert code == 0
    assert [s["value"] for s in json.loads(out)["secrets"]] == [secret]
    code, out = run("inspect", p, "--reveal")
    assert code == 2 and "--key" in out


# --- what `verify` says, and the exact bytes a signature covers -------------------------------------


def run_split(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def with_manifest(p: Path, out: Path, edit: object) -> Path:
    """A copy of `p` whose manifest.yaml bytes are `edit(bytes)`, everything else (signature too) as is."""
    return repack(p, out, lambda ms: [(n, edit(d) if n == "manifest.yaml" else d) for n, d in ms])  # type: ignore[operator]


def test_verify_says_an_unsigned_pack_is_not_signed(tmp_path: Path) -> None:
    code, out, err = run_split("verify", make_pack(tmp_path))
    assert code == 0 and err == ""
    assert out.count("\n") == 1 and out.startswith("ok ") and ": intact, 4 members, " in out
    assert out.rstrip().endswith(" bytes; not signed")


def test_verify_without_pubkey_says_the_signature_was_not_checked(tmp_path: Path) -> None:
    garbage = repack(
        make_pack(tmp_path), tmp_path / "g.tar.zst", lambda ms: [*ms, ("signature.json", b"{garbage")]
    )
    code, out, _ = run_split("verify", garbage)
    assert code == 0 and out.count("\n") == 1
    assert "signature present but not checked (pass --pubkey" in out and "signature ok" not in out


def test_verify_with_pubkey_prints_nothing_but_the_error_for_a_bad_signature(
    tmp_path: Path, signed: tuple[Path, Path, Path]
) -> None:
    _, _, pub = signed
    garbage = repack(
        make_pack(tmp_path), tmp_path / "g.tar.zst", lambda ms: [*ms, ("signature.json", b"{garbage")]
    )
    code, out, err = run_split("verify", garbage, "--pubkey", pub)
    assert code == 2 and out == ""  # no "ok" before the signature check has passed
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "signature.json is malformed" in lines[0] and str(garbage) in lines[0]


def test_verify_with_pubkey_prints_one_line_when_all_passed(signed: tuple[Path, Path, Path]) -> None:
    p, _, pub = signed
    code, out, err = run_split("verify", p, "--pubkey", pub)
    assert code == 0 and err == "" and out.count("\n") == 1
    assert out.startswith(f"ok {p}: intact,") and "; signature ok: key " in out


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("a comment", lambda d: b"# approved by security\n" + d),
        ("a trailing comment", lambda d: d + b"# hi\n"),
        (
            "other quoting",
            lambda d: d.replace(b"created_at: '2025-11-24T13:42:17Z'", b'created_at: "2025-11-24T13:42:17Z"'),
        ),
    ],
)
def test_a_signed_manifest_cannot_change_a_byte(
    tmp_path: Path, signed: tuple[Path, Path, Path], name: str, edit: object
) -> None:
    p, _, pub = signed
    forged = with_manifest(p, tmp_path / "forged.tar.zst", edit)
    assert forged.read_bytes() != p.read_bytes() and pack_read.verify(forged).ok, (
        name
    )  # intact, same root ...
    code, out, err = run_split("verify", forged, "--pubkey", pub)
    assert code == 2 and out == ""  # ... but not the bytes that were signed
    assert "manifest.yaml differs from the bytes that were signed" in err


def test_a_duplicate_key_in_a_signed_manifest_is_refused(
    tmp_path: Path, signed: tuple[Path, Path, Path]
) -> None:
    p, _, pub = signed
    forged = with_manifest(p, tmp_path / "forged.tar.zst", lambda d: d + b"format_version: 1\n")
    for args in (["verify", forged], ["verify", forged, "--pubkey", pub], ["inspect", forged]):
        code, _, err = run_split(*args)
        assert code == 2 and "duplicate key 'format_version', first given at line 1" in err
        assert len(err.strip().splitlines()) == 1


def test_an_empty_folder_entry_cannot_ride_along(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    p, _, pub = signed
    folder = tarfile.TarInfo("env/extra")
    folder.type = tarfile.DIRTYPE
    forged = repack(p, tmp_path / "forged.tar.zst", lambda ms: [*ms[:-1], folder, ms[-1]])  # type: ignore[list-item]
    code, out, err = run_split("verify", forged, "--pubkey", pub)
    assert code == 2 and out == "" and "env/extra: folder entry holding no member the manifest lists" in err
    # A folder that holds listed members adds nothing and stays accepted (tar tools write them).
    parent = tarfile.TarInfo("env")
    parent.type = tarfile.DIRTYPE
    tarred = repack(p, tmp_path / "tarred.tar.zst", lambda ms: [ms[0], parent, *ms[1:]])  # type: ignore[list-item]
    assert run_split("verify", tarred, "--pubkey", pub)[0] == 0


def test_the_signature_names_the_manifest_bytes_as_written(signed: tuple[Path, Path, Path]) -> None:
    p, _, _ = signed
    members = dict(raw_members(p))
    envelope = json.loads(members["signature.json"])
    subjects = {
        s["name"]: s["digest"]["sha256"] for s in json.loads(base64.b64decode(envelope["payload"]))["subject"]
    }
    assert subjects["manifest.yaml"] == hashlib.sha256(members["manifest.yaml"]).hexdigest()


def test_a_signature_without_the_manifest_bytes_asks_to_sign_again(
    tmp_path: Path, signed: tuple[Path, Path, Path]
) -> None:
    # What an older runner wrote: subjects are the members only.
    p, keys, pub = signed
    ring = crypto.load_keyring(keys)
    manifest = pack_summary.inspect(p).manifest
    body = sign.statement(manifest, "2025-11-24T13:42:17Z")
    body["subject"] = [s for s in body["subject"] if s["name"] != "manifest.yaml"]
    payload = json.dumps(body).encode()
    sig = ring.newest.signer().sign(sign._pae(sign.PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": sign.PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": ring.newest.id, "tenant": "acme", "sig": base64.b64encode(sig).decode()}],
    }
    old = repack(
        p, tmp_path / "old.tar.zst", lambda ms: [*ms[:-1], ("signature.json", json.dumps(envelope).encode())]
    )
    code, out, err = run_split("verify", old, "--pubkey", pub)
    assert (
        code == 2
        and out == ""
        and "does not cover the manifest's exact bytes" in err
        and "runner sign" in err
    )
