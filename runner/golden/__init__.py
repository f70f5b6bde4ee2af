"""Golden tasks: task files, their expectations over a repro pack, and recording an agent on each task.

A wing between the flows (it calls the recorder and reads replay outcomes) and the CLI. `task` reads and
validates task files against `task.schema.json`; `expect` checks a pack; `run` records and keeps packs;
`replay` replays one for `golden check --replay` and the configuration gate.
"""

from __future__ import annotations

from runner.golden.expect import ExpectationResult, GoldenResult, check_pack
from runner.golden.run import TASK_ENV, TASK_FILE, TaskRun, run_task
from runner.golden.task import GoldenTask, load_task, load_tasks

__all__ = [
    "TASK_ENV",
    "TASK_FILE",
    "ExpectationResult",
    "GoldenResult",
    "GoldenTask",
    "TaskRun",
    "check_pack",
    "load_task",
    "load_tasks",
    "run_task",
]
