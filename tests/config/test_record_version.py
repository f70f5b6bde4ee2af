"""`runner record --config-version V` puts V in the manifest (agent.config_version) and `runner inspect`
shows it, so a pack can be traced to the configuration it ran under and gate that version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runner.pack import read as pack_read
from tests.gitrepo import make_repo

ROOT = Path(__file__).resolve().parents[2]


def test_record_stores_the_config_version_and_inspect_shows_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "v3.tar.zst"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    agent = "open('a.txt', 'w').write('two\\n')"
    argv = [sys.executable, "-m", "runner", "record", "--out", str(out), "--no-http", "--config-version", "3"]
    proc = subprocess.run(
        [*argv, "--", sys.executable, "-c", agent], cwd=repo, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    manifest, _ = pack_read.read_manifest(out)
    assert manifest.agent.config_version == "3"
    shown = subprocess.run(
        [sys.executable, "-m", "runner", "inspect", str(out)], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert "config 3" in shown.stdout
