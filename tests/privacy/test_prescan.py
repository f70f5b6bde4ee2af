"""The pass run ahead (`runner.privacy.prescan`): members redacted as a builder gets them are taken by the
build only when they are what the build itself would make, within a bound on what is kept in memory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.redact import Redactor
from runner.pack import build as pack
from runner.pack import manifest
from runner.pack import spool as spool_module
from runner.privacy import prescan
from runner.privacy.mask import PrivacyOptions
from tests.packfactory import make_manifest, raw_members

SECRET = "sk-" + "A1b2C3d4" * 4
KEY = PrivacyOptions(redaction_key=b"k" * 32)
_PLACEHOLDER = re.compile(rb"REDACTED_openai-key_[0-9a-f]{16}")


def _build(
    tmp_path: Path, name: str, ahead: PrivacyOptions, at_build: PrivacyOptions | None = None
) -> dict[str, bytes]:
    with pack.PackBuilder(privacy=ahead) as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        b.add_bytes("env/pip-freeze.txt", b"pytest==8.3.1\n")
        b.add_bytes("traces.jsonl", f'{{"prompt": "use {SECRET}"}}\n'.encode())
        for i in range(4):
            b.add_artifact(
                f"run {i}: key {SECRET} used\n".encode() * 100, media_type="text/plain", name=f"{i}"
            )
        b.build(make_manifest(), tmp_path / name, privacy=at_build)
    return dict(raw_members(tmp_path / name))


def _kept(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    taken: list[str] = []
    take = prescan.Prescan.take

    def taking(self: prescan.Prescan, name: str, sha256: str) -> object:
        got = take(self, name, sha256)
        if got is not None:
            taken.append(name)
        return got

    monkeypatch.setattr(prescan.Prescan, "take", taking)
    return taken


def test_a_build_with_another_key_makes_its_own_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = _kept(monkeypatch)
    other = PrivacyOptions(redaction_key=b"o" * 32)
    members = _build(tmp_path, "other.tar.zst", KEY, other)
    assert taken == []  # redacted ahead under KEY: not what this build makes
    texts = b"".join(members.values())
    assert SECRET.encode() not in texts
    assert Redactor(b"o" * 32).placeholder(SECRET, "openai-key").encode() in texts
    assert Redactor(b"k" * 32).placeholder(SECRET, "openai-key").encode() not in texts
    assert members == _build(tmp_path, "plain.tar.zst", other)


def test_without_a_key_the_build_takes_the_one_the_pass_ahead_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = _kept(monkeypatch)
    members = _build(tmp_path, "p.tar.zst", PrivacyOptions())
    assert len(taken) == 5  # the four logs and the traces
    placeholders = {m.group(0) for data in members.values() for m in _PLACEHOLDER.finditer(data)}
    assert len(placeholders) == 1  # one secret, one placeholder, whichever side made it
    assert SECRET.encode() not in b"".join(members.values())


@pytest.mark.parametrize("early", [0, 3000])
def test_past_the_memory_bound_members_are_left_to_the_build_and_the_pack_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, early: int
) -> None:
    monkeypatch.setattr(spool_module, "FILL", 1)  # a job per member: each inspected on its own
    taken = _kept(monkeypatch)
    unbounded = _build(tmp_path, "unbounded.tar.zst", KEY)
    assert len(taken) == 5
    taken.clear()
    monkeypatch.setattr(prescan, "EARLY", early)
    assert _build(tmp_path, "bounded.tar.zst", KEY) == unbounded
    assert len(taken) == (0 if early == 0 else 1)  # a 2.9 KB log fits, the next would not


def test_the_audit_counts_each_secret_once_whichever_side_redacted_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ahead = _build(tmp_path, "ahead.tar.zst", KEY)
    monkeypatch.setattr(prescan.Prescan, "inspect", lambda self, name, sha256, data: False)
    plain = _build(tmp_path, "plain.tar.zst", KEY)
    assert ahead == plain
    audit = manifest.load(ahead["manifest.yaml"]).privacy.extra["audit"]
    assert audit["redactions"] == {"openai-key": 4 * 100 + 1}
