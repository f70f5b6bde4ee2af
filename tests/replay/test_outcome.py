from __future__ import annotations

import pytest

from runner.replay.compare import Difference
from runner.replay.outcome import CassetteUsage, Cause, StepOutcome, likely_cause, next_step


def _diff(expected: str, actual: str) -> Difference:
    return Difference(
        "stdout", "stdout differs", f"--- recorded/stdout\n+++ replayed/stdout\n-{expected}\n+{actual}\n"
    )


@pytest.mark.parametrize(
    ("step", "warnings", "usage", "cause"),
    [
        (StepOutcome("p", "patch", False, "x"), (), CassetteUsage(), Cause.PATCH),
        (  # the agent's own failure comes before a miss it may have caused
            StepOutcome("p", "patch", False, "x", (Difference("agent-failed", "exited 1"),)),
            (),
            CassetteUsage(misses=("POST http://127.0.0.1:8000/v1/chat/completions: no match",)),
            Cause.AGENT_FAILED,
        ),
        (  # a miss comes before the patch it changed
            StepOutcome("p", "patch", False, "x", (Difference("patch", "differs"),)),
            (),
            CassetteUsage(misses=("POST http://127.0.0.1:8000/v1/chat/completions: no match",)),
            Cause.CASSETTE_MISS,
        ),
        (
            StepOutcome("c", "command", False, "t", (Difference("timeout", "killed"),)),
            (),
            CassetteUsage(),
            Cause.TIMEOUT,
        ),
        (
            StepOutcome("c", "command", False, "d", (_diff("ok", "boom"),)),
            (),
            CassetteUsage(misses=("GET https://x/: no match",)),
            Cause.CASSETTE_MISS,
        ),
        (
            StepOutcome("c", "command", False, "d", (_diff("id 4711 at 0x7fa1", "id 4712 at 0x7fb2"),)),
            (),
            CassetteUsage(),
            Cause.NONDETERMINISTIC,
        ),
        (
            StepOutcome("c", "command", False, "d", (_diff("2 passed", "1 failed"),)),
            ("Python 3.11.7 was recorded",),
            CassetteUsage(),
            Cause.ENVIRONMENT,
        ),
        (
            StepOutcome("c", "command", False, "d", (_diff("2 passed", "1 failed"),)),
            (),
            CassetteUsage(),
            Cause.BEHAVIOUR,
        ),
    ],
)
def test_likely_cause(
    step: StepOutcome, warnings: tuple[str, ...], usage: CassetteUsage, cause: Cause
) -> None:
    assert likely_cause(step, usage, inexact_patches=False, warnings=warnings) is cause


def test_an_inexact_patch_is_the_likely_cause_of_a_later_divergence() -> None:
    step = StepOutcome("c", "command", False, "d", (_diff("2 passed", "1 failed"),))
    assert likely_cause(step, CassetteUsage(), inexact_patches=True, warnings=()) is Cause.PATCH


def test_every_cause_says_what_to_do_next_and_old_reports_still_load() -> None:
    assert all(next_step(cause) for cause in Cause)
    assert Cause("cassette miss") is Cause.CASSETTE_MISS
