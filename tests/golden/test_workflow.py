"""The CI workflow of README "Golden packs in CI": valid against the published GitHub workflow schema (the
copy check-jsonschema ships, so no network), sharded as it says, and every `runner` line in it a real
command with real options."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from runner.cli import app

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "golden.yml"


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_workflow_passes_the_workflow_schema_and_a_broken_copy_does_not(tmp_path: Path) -> None:
    proc = _lint(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "golden.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert _lint(broken).returncode != 0


def test_the_matrix_has_as_many_shards_as_it_replays() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    shards = doc["jobs"]["replay"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(doc["env"]["SHARDS"]) + 1))
    steps = doc["jobs"]["report"]["steps"]
    assert any(s.get("uses", "").startswith("marocchino/sticky-pull-request-comment") for s in steps)
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in steps)


def _runner_lines() -> list[list[str]]:
    text = WORKFLOW.read_text()
    found = []
    for line in re.findall(r"(?m)^\s*(?:run: )?(runner \S.*)$", text):
        for part in line.split("&&"):
            words = part.split()
            if words and words[0] == "runner":
                found.append(words[1:])
    return found


@pytest.mark.parametrize("words", _runner_lines(), ids=lambda w: " ".join(w[:2]))
def test_every_runner_command_in_the_workflow_exists_with_its_options(words: list[str]) -> None:
    command = words[:2] if words[0] == "golden" else words[:1]
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    for option in (w for w in words[len(command) :] if w.startswith("--") and w != "--"):
        assert option in result.output, f"runner {' '.join(command)} has no {option}"
