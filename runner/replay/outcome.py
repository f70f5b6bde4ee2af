"""What a replay found: the typed values the pipeline hands to the report stage.

A pack's verdict is one of three. `reproduced`: every step agreed with the recording. `diverged`: a step
disagreed; the first such step is named with its differences and the likely cause. `error`: the
infrastructure failed (no engine, an image that cannot be built, a proxy that would not start); an error is
never reported as a divergence, because it says nothing about the agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from runner.replay.compare import Difference

__all__ = ["CassetteUsage", "Cause", "PackOutcome", "StepOutcome", "Verdict"]


class Verdict(StrEnum):
    REPRODUCED = "reproduced"
    DIVERGED = "diverged"
    ERROR = "error"


class Cause(StrEnum):
    """The likely reason a replay diverged, from what the run observed (best first)."""

    CASSETTE_MISS = "cassette miss"
    PATCH = "patch"
    TIMEOUT = "timeout"
    ENVIRONMENT = "environment"
    NONDETERMINISTIC = "nondeterministic output"
    BEHAVIOUR = "behaviour changed"


@dataclass(frozen=True)
class StepOutcome:
    step_id: str
    kind: str  # "patch" | "command"
    ok: bool
    summary: str
    differences: tuple[Difference, ...] = ()
    duration_s: float = 0.0
    log_dir: str | None = None


@dataclass(frozen=True)
class CassetteUsage:
    served: int = 0
    misses: tuple[str, ...] = ()
    unused: int = 0


@dataclass(frozen=True)
class PackOutcome:
    pack: str
    verdict: Verdict
    steps: tuple[StepOutcome, ...] = ()
    cause: Cause | None = None
    error: str | None = None
    error_code: int = 3  # with ERROR: 2 for a bad pack (unsafe, invalid, tampered), 3 for the environment
    warnings: tuple[str, ...] = ()
    cassettes: CassetteUsage = field(default_factory=CassetteUsage)
    run_dir: str | None = None
    image: str | None = (
        None  # the image the steps ran in, and how it was had: "<ref> (built|cached|local|pulled)"
    )
    duration_s: float = 0.0

    @property
    def first_divergence(self) -> StepOutcome | None:
        return next((s for s in self.steps if not s.ok), None)
