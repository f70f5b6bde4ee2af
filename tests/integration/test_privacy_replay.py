"""A redacted pack (and one with encrypted payloads) still replays as reproduced, in Docker.

The demo-fix session is rebuilt with planted secrets: an API key in a step's environment and printed by
it, a recorded bearer token, an email in the prompt sent to the model and in its answer, and a command
that prints a live token of the same kind as, but another value than, the recorded one.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard

from packs.build import build
from runner.engine import images
from runner.pack import summary as pack
from runner.privacy import crypto
from tests.integration.test_replay import ROOT, runner

pytestmark = pytest.mark.docker

API_KEY = "sk-proj-" + "Rk7Tq2Wz9Lm4" * 4
BEARER = "sk-proj-" + "Bx3Vn8Pq5Js1" * 4
EMAIL = "jane.doe@example-corp.com"
RECORDED_TOKEN = "ghp_" + "R3c0rd3d" * 5
LIVE_TOKEN = "ghp_" + "x" * 36


def _plant(src: Path) -> None:
    (src / "repo/prompt.txt").write_text((src / "repo/prompt.txt").read_text() + f"Reply to {EMAIL}.\n")
    line = json.loads((src / "cassette.jsonl").read_text())
    req = line["request"]
    req["headers"] = [[k, f"Bearer {BEARER}" if k == "authorization" else v] for k, v in req["headers"]]
    body = json.loads(req["body"]["text"])
    body["messages"][1]["content"] = (src / "repo/prompt.txt").read_text()
    req["body"]["text"] = json.dumps(body)
    answer = json.loads(line["response"]["body"]["text"])
    answer["choices"][0]["message"]["content"] += f"\n# reviewed by {EMAIL}"
    line["response"]["body"]["text"] = json.dumps(answer, indent=2)
    (src / "cassette.jsonl").write_text(json.dumps(line) + "\n")
    stdout = src / "expected/ask-model.stdout"
    stdout.write_text(stdout.read_text() + f"# reviewed by {EMAIL}\n")
    (src / "expected/show-key.stdout").write_text(f"using {API_KEY}\n")
    (src / "expected/mint.stdout").write_text(f"minted {RECORDED_TOKEN}\n")
    spec = yaml.safe_load((src / "session.yaml").read_text())
    extra = [
        {"id": "show-key", "run": ["python3", "-c", "import os; print('using', os.environ['OPENAI_API_KEY'])"],
         "env": {"OPENAI_API_KEY": API_KEY}, "stdout": "expected/show-key.stdout"},
        {"id": "mint", "run": ["python3", "-c", f"print('minted', {LIVE_TOKEN!r})"], "stdout": "expected/mint.stdout"},
    ]  # fmt: skip
    spec["steps"] = [
        {**s, "env": {"OPENAI_API_KEY": API_KEY}} if s["id"] == "ask-model" else s for s in spec["steps"]
    ]
    spec["steps"][1:1] = extra
    (src / "session.yaml").write_text(yaml.safe_dump(spec))
    (src / "repo/settings.py").write_text(f'OPENAI_API_KEY = "{API_KEY}"\n')  # committed: in the bundle


@pytest.fixture(scope="module")
def secret_packs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("privacy")
    src = work / "demo-secrets"
    shutil.copytree(ROOT / "packs/src/demo-fix", src)
    _plant(src)
    (work / "masked").mkdir()
    (work / "encrypted").mkdir()
    keys = work / "acme.keys"
    crypto.save_keyring(crypto.new_keyring("acme"), keys)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNNER_KEYRING", str(keys))
        masked = build(src, work / "masked")  # what every recorder gets: no privacy option at all
        mp.setenv("RUNNER_ENCRYPT_PAYLOADS", "1")
        encrypted = build(src, work / "encrypted")
    return masked, encrypted, keys


def test_planted_secrets_are_not_readable_outside_the_git_bundle(
    secret_packs: tuple[Path, Path, Path],
) -> None:
    masked, _, _ = secret_packs
    for name, data in _members(masked):
        if name != "workspace/base.bundle":
            assert not any(s.encode() in data for s in (API_KEY, BEARER, EMAIL, RECORDED_TOKEN)), name


def test_encrypted_pack_hides_patches_bundle_and_command_lines_and_verifies_without_the_key(
    secret_packs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    masked, encrypted, _ = secret_packs
    assert dict(_members(masked))["workspace/base.bundle"].startswith(b"# v2 git bundle")
    members = dict(_members(encrypted))
    sealed = [n for n in members if n.startswith("patches/")] + ["workspace/base.bundle"]
    assert len(sealed) > 1
    for name in sealed:
        assert not members[name].startswith((b"# v2 git bundle", b"diff --git")), name
    for name, data in members.items():
        assert not any(s.encode() in data for s in (API_KEY, BEARER, EMAIL, RECORDED_TOKEN)), name
        assert b"def median" not in data and b"os.environ['OPENAI_API_KEY']" not in data, name
    assert b"<encrypted>" in members["manifest.yaml"]
    proc = runner("verify", str(encrypted), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _members(path: Path) -> list[tuple[str, bytes]]:
    from tests.packfactory import raw_members

    assert (
        zstandard.ZstdDecompressor()
        .stream_reader(io.BytesIO(path.read_bytes()), read_across_frames=True)
        .read()
    )
    return raw_members(path)


def test_a_redacted_pack_replays_as_reproduced(
    secret_packs: tuple[Path, Path, Path], docker_client: Any, tmp_path: Path
) -> None:
    masked, _, _ = secret_packs
    images.ensure(docker_client)
    assert pack.inspect(masked).manifest.privacy.redaction_policy == "default-v1"
    proc = runner("replay", str(masked), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)["packs"][0]
    assert doc["verdict"] == "reproduced"
    assert doc["cassettes"] == {"served": 1, "misses": [], "unused": 0}


def test_encrypted_payloads_replay_only_with_the_key(
    secret_packs: tuple[Path, Path, Path], docker_client: Any, tmp_path: Path
) -> None:
    _, encrypted, keys = secret_packs
    images.ensure(docker_client)
    proc = runner("replay", str(encrypted), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--key" in proc.stdout + proc.stderr
    proc = runner("replay", str(encrypted), "--key", str(keys), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["packs"][0]["verdict"] == "reproduced"
