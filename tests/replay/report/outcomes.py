"""Outcomes every report format is tested with: one reproduced, one diverged, one error."""

from __future__ import annotations

from runner.replay.compare import Difference
from runner.replay.outcome import Cause, PackOutcome, StepOutcome, Verdict

OK = PackOutcome(
    pack="good.tar.zst",
    verdict=Verdict.REPRODUCED,
    steps=(
        StepOutcome("s1", "patch", True, "applied (git-apply)"),
        StepOutcome("s2", "command", True, "exit 0"),
    ),
    duration_s=1.5,
)
DIFF = Difference(
    "stdout", "stdout differs (1 line(s))", "--- recorded/stdout\n+++ replayed/stdout\n-1 passed\n+1 failed\n"
)
BAD = PackOutcome(
    pack="bad.tar.zst",
    verdict=Verdict.DIVERGED,
    steps=(
        StepOutcome("s1", "patch", True, "applied"),
        StepOutcome("s2", "command", False, "stdout differs", (DIFF,)),
    ),
    cause=Cause.BEHAVIOUR,
    warnings=("python 3.11.7 recorded, 3.11.2 in the image",),
)
ERR = PackOutcome(pack="broken.tar.zst", verdict=Verdict.ERROR, error="no Docker engine answers")
