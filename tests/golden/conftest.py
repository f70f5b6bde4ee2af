"""A real repository with a failing test, an agent script that reads its golden task, and three task files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitrepo import make_repo

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}

# The agent reads its task from the file and the variables `golden run` hands over, and "fixes" calc.py:
# a prompt with "fix" gets the right body, any other prompt a wrong one.
AGENT = """
import json, os, pathlib
task = json.loads(pathlib.Path(os.environ["RUNNER_TASK_FILE"]).read_text())
assert task["prompt"] == os.environ["RUNNER_TASK_PROMPT"], "the file and the variable disagree"
assert os.environ["RUNNER_TASK_SEED"] == str(task["seed"]) and os.environ["RUNNER_TASK_TEMPERATURE"] == "0"
body = "a + b" if "fix" in task["prompt"] else "a * b"
pathlib.Path("calc.py").write_text(f"def add(a, b):\\n    return {body}\\n")
"""

TASKS = {
    "fix-add": """
name: fix-add
seed: 1337
temperature: 0
input:
  failing_test: test_calc.py::test_add
  prompt: fix add so the test passes
expect:
  patch_contains: a + b
  patch_not_contains: a - b
  tests_pass: true
  files_changed: [calc.py]
  max_model_calls: 0
  max_duration_s: 300
  agent_exit_code: 0
""",
    "wrong-text": """
name: wrong-text
seed: 1337
temperature: 0
input:
  failing_test: test_calc.py::test_add
  prompt: fix add so the test passes
expect:
  patch_contains: operator.add
  tests_pass: true
""",
    "tests-fail": """
name: tests-fail
seed: 1337
temperature: 0
input:
  failing_test: test_calc.py::test_add
  prompt: change add somehow
expect:
  patch_contains: return
  tests_pass: true
""",
}


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, env={**ENV, "COLUMNS": "200"},
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


@pytest.fixture
def golden_setup(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """(repository, agent script, task files by name)."""
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {
            "calc.py": "def add(a, b):\n    return a - b\n",
            "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
            ".gitignore": "__pycache__/\n.pytest_cache/\n",
        },
    )
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    tasks = {}
    for name, text in TASKS.items():
        tasks[name] = tasks_dir / f"{name}.yaml"
        tasks[name].write_text(text.lstrip())
    return repo, agent, tasks
