"""A registry made through the CLI, three versions, and golden packs recorded under chosen config versions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from runner.cli import app
from runner.pack import manifest as mf
from tests.packfactory import make_pack, patch

PRINCIPAL = "alice <alice@example.com>"

# Three versions: only the temperature differs, so `config diff` has one line to show.
VERSION = """
description: temperature {t}
model: gpt-4o-mini
seed: 7
temperature: {t}
top_p: 1
prompts: {{system: You fix failing tests.}}
tools: [{{name: run_tests, parameters: {{type: object}}}}]
safety: {{shell: deny-network}}
features: {{fast_path: true}}
"""

TASK = """
name: fix-add
seed: 424242
temperature: 0
input: {prompt: fix add}
expect:
  patch_contains: a + b
  max_model_calls: 0
"""

FIXED = "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-    return a - b\n+    return a + b\n"
BROKEN = "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-    return a - b\n+    return a * b\n"


def cli(*args: str, principal: str = PRINCIPAL) -> Result:
    return CliRunner().invoke(app, list(args), env={"RUNNER_PRINCIPAL": principal, "COLUMNS": "200"})


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A registry with versions 1, 2, 3 pushed through the CLI (temperatures 0, 0.2, 0.4)."""
    root = tmp_path / "registry"
    assert cli("config", "init", str(root)).exit_code == 0
    for n, t in enumerate(("0", "0.2", "0.4"), 1):
        file = tmp_path / f"v{n}.yaml"
        file.write_text(VERSION.format(t=t))
        result = cli("config", "push", str(file), "--registry", str(root), "-m", f"try temperature {t}")
        assert result.exit_code == 0, result.output
        assert f"as version {n}" in result.output
    return root


def golden_pack(root: Path, version: int, *, diff: str = FIXED, recorded_as: str | None = None) -> Path:
    """A pack at ROOT/golden/vN/fix-add.tar.zst recorded under `recorded_as` (default: N)."""
    folder = root / "golden" / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    agent = mf.Agent(name="fixer", config_version=recorded_as or str(version))
    return make_pack(folder, steps=[patch("fix", diff)], name="fix-add.tar.zst", agent=agent)


def gate(root: Path) -> None:
    """Configure the golden gate (task + per-version pack) and commit it as a registry owner would."""
    (root / "golden").mkdir(exist_ok=True)
    (root / "golden" / "fix-add.yaml").write_text(TASK)
    (root / "registry.yaml").write_text(
        "format: 1\ngate:\n  tasks: [golden/fix-add.yaml]\n  packs: ['golden/v{version}/fix-add.tar.zst']\n"
    )
    git(root, "add", "registry.yaml", "golden/fix-add.yaml")
    git(root, "-c", "user.name=owner", "-c", "user.email=o@x", "commit", "-qm", "gate on the golden set")
