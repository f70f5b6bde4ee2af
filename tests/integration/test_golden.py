"""Golden packs in Docker: `runner report` over three shards' run folders equals the unsharded run's report,
and `runner golden check --replay` grades tests_pass from a hermetic replay of a pack `golden run` kept."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from packs.build import build
from tests.gitrepo import make_repo
from tests.golden.conftest import AGENT, TASKS
from tests.integration.test_replay import runner

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def _comparable(report_json: str) -> list[dict[str, Any]]:
    """A JSON report without what differs between two replays of the same packs: times and folders."""
    packs: list[dict[str, Any]] = json.loads(report_json)["packs"]
    for p in packs:
        p.pop("run_dir"), p.pop("duration_s")
        for s in p["steps"]:
            s.pop("duration_s"), s.pop("log_dir")
    return packs


def _runs(markdown: str) -> str:
    return re.sub(r"(?:all|shard-\d)/([^/\s`]+)/\d{8}T\d{6}(?:-\d+)?", r"RUNS/\1/RUN", markdown)


def test_report_of_three_shards_equals_the_unsharded_run(own_images: Any, tmp_path: Path) -> None:
    packs = tmp_path / "golden"
    packs.mkdir()
    for name in ("demo-fix", "demo-diverge"):
        build(ROOT / "packs" / "src" / name, packs)
    shutil.copyfile(packs / "demo-fix.tar.zst", packs / "demo-fix-again.tar.zst")
    (packs / "zz-bad.tar.zst").write_bytes(b"not a pack")
    whole = runner("replay", "golden", "--runs-dir", "all", "--markdown", "replay.md", cwd=tmp_path)
    # A bad pack beside a diverged one: the gravest code wins (README, "Exit codes").
    assert whole.returncode == 2, whole.stdout + whole.stderr
    for i in (1, 2, 3):
        shard = runner("replay", "golden", "--shard", f"{i}/3", "--runs-dir", f"shard-{i}", cwd=tmp_path)
        assert shard.returncode in (0, 1, 2), shard.stderr
    merged_md = runner("report", "shard-1", "shard-2", "shard-3", "--markdown", "-", cwd=tmp_path)
    whole_md = runner("report", "all", "--markdown", "-", cwd=tmp_path)
    assert merged_md.returncode == whole_md.returncode == 2, merged_md.stderr
    # Equal up to the run folders' names (each report links to its own runs: shard-2/demo-fix/2026...).
    assert _runs(merged_md.stdout) == _runs(whole_md.stdout) == _runs((tmp_path / "replay.md").read_text())
    assert "| `zz-bad.tar.zst` | error |" in merged_md.stdout and "| diverged |" in merged_md.stdout
    merged = runner("report", "shard-3", "shard-1", "shard-2", "--json", "-", cwd=tmp_path)
    alone = runner("report", "all", "--json", "-", cwd=tmp_path)
    assert _comparable(merged.stdout) == _comparable(alone.stdout)
    assert [p["pack"] for p in _comparable(merged.stdout)] == sorted(p.name for p in packs.iterdir())


@pytest.fixture(scope="module")
def small_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PATH with a virtualenv holding pytest only, so the image replay builds from the snapshot is small."""
    venv = tmp_path_factory.mktemp("agent") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    cert = ["--cert", os.environ["SSL_CERT_FILE"]] if os.environ.get("SSL_CERT_FILE") else []
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *cert,
         f"pytest=={importlib.metadata.version('pytest')}"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return f"{venv / 'bin'}:{os.environ['PATH']}"


def test_golden_check_replay_grades_tests_from_the_hermetic_replay(
    own_images: Any, small_path: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {
        "calc.py": "def add(a, b):\n    return a - b\n",
        "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
        ".gitignore": "__pycache__/\n.pytest_cache/\n",
    })  # fmt: skip
    (tmp_path / "agent.py").write_text(AGENT)
    for name in ("fix-add", "tests-fail"):
        (tmp_path / f"{name}.yaml").write_text(TASKS[name].lstrip())
    env = {"PATH": small_path}
    run = runner("golden", "run", str(tmp_path / "fix-add.yaml"), str(tmp_path / "tests-fail.yaml"),
                 "--out", str(tmp_path / "out"), "--no-http", "--", "python", str(tmp_path / "agent.py"),
                 cwd=repo, env=env)  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    kept = tmp_path / "out" / "fix-add.tar.zst"
    ok = runner(
        "golden", "check", str(tmp_path / "fix-add.yaml"), str(kept), "--replay", cwd=tmp_path, env=env
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "the replay reproduced them" in ok.stdout
    aside = tmp_path / "out" / "failed" / "tests-fail.tar.zst"
    bad = runner(
        "golden", "check", str(tmp_path / "tests-fail.yaml"), str(aside), "--replay", cwd=tmp_path, env=env
    )
    assert bad.returncode == 1 and "FAILED tests_pass" in bad.stdout, bad.stdout + bad.stderr
