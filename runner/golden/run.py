"""`golden run`: turn golden tasks into kept repro packs by recording an agent on each task's input.

Inputs: `GoldenTask`s, the agent's argv, the output folder, the default repository, `RecordOptions`.
Outputs: per task a `TaskRun`; the pack lands in `OUT/<name>.tar.zst` when every expectation held, else in
`OUT/failed/<name>.tar.zst` beside `OUT/failed/<name>.json` (the expectations and why they failed).
Rules:
- Each task gets a fresh workspace: a clone of its repository at its commit in a private temporary folder,
  so tasks never see each other's edits and the caller's checkout is never touched. `input.files` are
  written into it (they become the pack's dirty baseline, not the agent's patch).
- The agent gets the task through environment variables (`TASK_ENV` below, docs/golden.md) and the file
  `.runner/task.json` in the workspace (ignored through the clone's `.git/info/exclude`, so it is in no
  patch). It runs with the workspace as its working directory, through `runner.recorder.record_command`,
  the task's checks recorded as command steps after it; the SDK's default seed is the task's seed.
- Only files under OUT that carry a task's name are written or replaced; a pack moves into place whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from runner import gitcmd
from runner.errors import UsageError
from runner.golden.expect import GoldenResult, check_pack
from runner.golden.task import GoldenTask
from runner.recorder import RecordOptions, record_command

__all__ = ["TASK_ENV", "TASK_FILE", "TaskRun", "run_task", "task_env"]

TASK_FILE = ".runner/task.json"
# The variables the agent receives; the README and docs/golden.md list the same names.
TASK_ENV = (
    "RUNNER_TASK_NAME",
    "RUNNER_TASK_PROMPT",
    "RUNNER_TASK_FAILING_TEST",
    "RUNNER_TASK_SEED",
    "RUNNER_TASK_TEMPERATURE",
    "RUNNER_TASK_FILE",
)


@dataclass(frozen=True)
class TaskRun:
    task: str
    kept: bool
    pack: Path  # where the pack is now
    result: GoldenResult
    agent_exit_code: int | None


def task_env(task: GoldenTask, task_file: Path) -> dict[str, str]:
    return {
        "RUNNER_TASK_NAME": task.name,
        "RUNNER_TASK_PROMPT": task.input.prompt,
        "RUNNER_TASK_FAILING_TEST": task.input.failing_test or "",
        "RUNNER_TASK_SEED": str(task.seed),
        "RUNNER_TASK_TEMPERATURE": f"{task.temperature:g}",
        "RUNNER_TASK_FILE": str(task_file),
    }


def run_task(
    task: GoldenTask,
    agent: Sequence[str],
    out_dir: Path,
    *,
    repo: Path,
    options: RecordOptions | None = None,
) -> TaskRun:
    """Record `agent` on `task` in a fresh workspace, check the expectations, keep or set aside the pack."""
    source = task.input.repo or repo
    if not source.is_dir() or gitcmd.run(source, "rev-parse", "--git-dir", check=False).returncode != 0:
        raise UsageError(f"{task.source}: input.repo: {source} is not a git repository")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"runner-golden-{task.name}-") as scratch:
        ws = _workspace(task, source, Path(scratch) / "workspace")
        partial = out_dir / f".{task.name}.recording.tar.zst"
        opts = replace(options or RecordOptions(agent="agent"), seed=task.seed)
        try:
            with _environ(task_env(task, ws / TASK_FILE)), contextlib.chdir(ws):
                wrapped = record_command(
                    agent, partial, repo=ws, checks=task.input.check_commands,
                    timeout=task.input.timeout_s, options=opts,
                )  # fmt: skip
            result = check_pack(task, partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    kept_at, aside = out_dir / f"{task.name}.tar.zst", out_dir / "failed" / f"{task.name}.tar.zst"
    report = out_dir / "failed" / f"{task.name}.json"
    if result.held:
        os.replace(partial, kept_at)
        aside.unlink(missing_ok=True)
        report.unlink(missing_ok=True)
    else:
        aside.parent.mkdir(exist_ok=True)
        os.replace(partial, aside)
        report.write_text(_result_json(result, aside), encoding="utf-8")
        kept_at.unlink(missing_ok=True)
    where = kept_at if result.held else aside
    return TaskRun(task.name, result.held, where, replace(result, pack=str(where)), wrapped.agent_exit_code)


def _workspace(task: GoldenTask, source: Path, ws: Path) -> Path:
    gitcmd.run(ws.parent, "clone", "-q", "--no-hardlinks", str(source.resolve()), str(ws), error=UsageError)
    if task.input.commit:
        gitcmd.run(ws, "checkout", "-q", "--detach", task.input.commit, error=UsageError)
    for name, text in task.input.files.items():
        target = ws / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    task_file = ws / TASK_FILE
    task_file.parent.mkdir(parents=True, exist_ok=True)
    task_file.write_text(task.as_json(), encoding="utf-8")
    with open(ws / ".git" / "info" / "exclude", "a", encoding="utf-8") as f:
        f.write(f"\n/{Path(TASK_FILE).parent.as_posix()}/\n")
    return ws


@contextlib.contextmanager
def _environ(extra: Mapping[str, str]) -> Iterator[None]:
    """`extra` in os.environ for the block (record_command hands os.environ to the agent), restored after."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _result_json(result: GoldenResult, pack: Path) -> str:
    doc = {
        "task": result.task,
        "pack": str(pack),
        "held": result.held,
        "expectations": [{"name": r.name, "held": r.held, "detail": r.detail} for r in result.results],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
