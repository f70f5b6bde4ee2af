"""report.load: a saved report.json reads back to the very outcomes that wrote it, every field included."""

from __future__ import annotations

import dataclasses
import typing

from runner.replay import report
from runner.replay.compare import Difference
from runner.replay.outcome import CassetteUsage, Cause, PackOutcome, StepOutcome, Verdict


def _every_field_set(cls: type, values: dict[str, object]) -> None:
    """Fails when a field of `cls` keeps its default here: a new field must be read back too."""
    unset = [f.name for f in dataclasses.fields(cls) if f.name not in values]
    assert not unset, f"set {unset} in this test so report.load is checked for them"


def test_every_field_survives_the_round_trip() -> None:
    step_values: dict[str, typing.Any] = {
        "step_id": "s2", "kind": "command", "ok": False, "summary": "stopped: hit the process limit",
        "differences": (Difference("stdout", "1 line", "-a\n+b\n"),), "duration_s": 1.25,
        "log_dir": "runs/x/1/steps", "limit": "process limit (64, --pids)",
    }  # fmt: skip
    pack_values: dict[str, typing.Any] = {
        "pack": "x.tar.zst", "verdict": Verdict.DIVERGED, "steps": (StepOutcome(**step_values),),
        "cause": Cause.BEHAVIOUR, "error": "also an error text", "error_code": 2, "warnings": ("w1",),
        "cassettes": CassetteUsage(served=3, misses=("GET https://x/: no match",), unused=1),
        "run_dir": "runs/x/1", "image": "runner-env:abc (cached)", "duration_s": 2.5,
        "sandbox": "user 65532:65532, no capabilities", "backend": "local", "isolated": False,
    }  # fmt: skip
    _every_field_set(StepOutcome, step_values)
    _every_field_set(PackOutcome, pack_values)
    outcome = PackOutcome(**pack_values)
    assert report.from_json(report.to_json([outcome])) == [outcome]
