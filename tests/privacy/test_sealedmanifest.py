"""A pack recorded with payload encryption: no patch, baseline, bundle, argv or env secret readable in any
member; the plain manifest verifies without the key; the keyring brings back the full manifest."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import zstandard

from runner.pack.read import read_manifest, unpack
from runner.privacy import crypto
from runner.privacy.sealedmanifest import MARKER
from runner.replay.workspace import apply_patch, restore
from tests.gitrepo import git, make_repo, write
from tests.helpers.secret_corpus import corpus, history_secret

SECRETS = corpus()
IN_TREE = SECRETS[0]  # committed in the base tree: only the bundle holds it
IN_BASELINE = SECRETS[1]  # uncommitted at session start: the dirty baseline
IN_PATCH = SECRETS[2]  # written by the agent: the patch
IN_ARGV = SECRETS[3]  # on the agent's command line
IN_HISTORY = history_secret()  # added then removed before the base commit


def _members(pack: Path) -> dict[str, bytes]:
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(pack.read_bytes()), read_across_frames=True)
    with tarfile.open(fileobj=io.BytesIO(raw.read()), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _runner(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(Path.cwd()), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, env=full, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_encrypted_recording_hides_every_secret_and_round_trips(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"app.py": "print('hi')\n", "old.py": IN_HISTORY.context + "\n"})
    git(repo, "rm", "-q", "old.py")
    write(repo, {"settings.py": IN_TREE.context + "\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "settings")
    write(repo, {"local.env": IN_BASELINE.context + "\n"})  # dirty at session start
    keys = tmp_path / "acme.keys"
    crypto.save_keyring(crypto.new_keyring("acme"), keys)
    out = tmp_path / "p.tar.zst"
    agent = f"echo '{IN_PATCH.context}' >> app.py"
    proc = _runner(
        "record", "--out", str(out), "--no-http", "--check", "true", "--",
        "sh", "-c", agent, "--api-key", IN_ARGV.value,
        cwd=repo, env={"RUNNER_ENCRYPT_PAYLOADS": "1", "RUNNER_KEYRING": str(keys), "MY_SETTING": IN_ARGV.value},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "settings.py" in proc.stderr and "RUNNER_ENCRYPT_PAYLOADS" in proc.stderr  # the bundle scan

    members = _members(out)
    assert {"patches/0001.diff", "workspace/baseline.diff", "workspace/base.bundle"} <= set(members)
    for name, data in members.items():
        for planted in (IN_TREE, IN_BASELINE, IN_PATCH, IN_ARGV, IN_HISTORY):
            assert planted.value.encode() not in data, (name, planted.kind)
        assert b"print('hi')" not in data, name  # patch and baseline context lines too
    assert not members["workspace/base.bundle"].startswith(b"# v2 git bundle")
    manifest = members["manifest.yaml"].decode()
    assert "sh" not in [line.strip("- ").strip() for line in manifest.splitlines()]
    assert MARKER in manifest and "privacy/manifest.bin" in manifest

    verified = _runner("verify", str(out), cwd=tmp_path)  # no key needed
    assert verified.returncode == 0, verified.stdout + verified.stderr
    plain, _ = read_manifest(out)
    assert plain.agent.command is not None and set(plain.agent.command.argv) == {MARKER}

    full = unpack(out, tmp_path / "u", keyring=crypto.load_keyring(keys)).manifest
    assert full.agent.command is not None
    assert full.agent.command.argv[:2] == ("sh", "-c") and full.agent.command.argv[2].startswith("echo ")
    assert full.agent.command.argv[3] == "--api-key" and full.agent.command.argv[4].startswith("REDACTED_")
    checks = [s for s in full.steps if getattr(s, "argv", None)]
    assert checks and checks[0].argv[-1] == "true"  # type: ignore[union-attr]
    ws = restore(tmp_path / "u/workspace/base.bundle", full.git.checkout, tmp_path / "ws",
                 tmp_path / "u/workspace/baseline.diff")  # fmt: skip
    assert IN_BASELINE.value in (ws.path / "local.env").read_text()  # originals back with the key
    assert apply_patch(ws, tmp_path / "u/patches/0001.diff").tier != "failed"
    assert IN_PATCH.value in (ws.path / "app.py").read_text()

    revealed = _runner(
        "inspect", str(out), "--reveal", "--key", str(keys), "--out", str(tmp_path / "r"), cwd=tmp_path
    )
    assert revealed.returncode == 0, revealed.stdout + revealed.stderr
    text = (tmp_path / "r/manifest.yaml").read_text()
    assert MARKER not in text and IN_ARGV.value in text  # the sealed argv, placeholders restored
