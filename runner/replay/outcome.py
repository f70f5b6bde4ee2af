"""What a replay found: the typed values the pipeline hands to the report stage.

A pack's verdict is one of three. `reproduced`: every step agreed with the recording. `diverged`: a step
disagreed; the first such step is named with its differences and the likely cause. `error`: the
infrastructure failed (no engine, an image that cannot be built, a proxy that would not start); an error is
never reported as a divergence, because it says nothing about the agent. `likely_cause` names the cause
of a divergence from what the run observed, checked first to last: the re-run agent failed (exited
non-zero, crashed, was killed waiting), a request missed the cassette, a timeout, the patch, the output
(nondeterministic or changed behaviour), the environment. `next_step` says what to do about it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from runner.replay.compare import Difference

__all__ = [
    "CassetteUsage",
    "Cause",
    "PackOutcome",
    "StepKind",
    "StepOutcome",
    "Verdict",
    "likely_cause",
    "next_step",
]

StepKind = Literal["patch", "command"]


class Verdict(StrEnum):
    REPRODUCED = "reproduced"
    DIVERGED = "diverged"
    ERROR = "error"


class Cause(StrEnum):
    """The likely reason a replay diverged, from what the run observed (best first)."""

    AGENT_FAILED = "agent-failed"
    CASSETTE_MISS = "cassette-miss"
    PATCH = "patch"
    TIMEOUT = "timeout"
    ENVIRONMENT = "environment"
    NONDETERMINISTIC = "nondeterministic output"
    BEHAVIOUR = "behaviour changed"

    @classmethod
    def _missing_(cls, value: object) -> Cause | None:
        return cls.CASSETTE_MISS if value == "cassette miss" else None  # reports written before 2026-11


@dataclass(frozen=True)
class StepOutcome:
    step_id: str
    kind: StepKind
    ok: bool
    summary: str
    differences: tuple[Difference, ...] = ()
    duration_s: float = 0.0
    log_dir: str | None = None
    limit: str | None = None  # the sandbox limit the step hit, in words: the pack's verdict is then `error`


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
    image: str | None = None  # the image the steps ran in and how it was had: "<ref> (<provenance>)"
    duration_s: float = 0.0
    sandbox: str | None = None  # the user, privileges and limits the steps ran under, in words
    backend: str | None = None  # which backend ran the steps: docker or local
    isolated: bool = True  # False: the steps ran with the host's network (local --no-isolation)

    @property
    def first_divergence(self) -> StepOutcome | None:
        return next((s for s in self.steps if not s.ok), None)


def likely_cause(
    first: StepOutcome, usage: CassetteUsage, *, inexact_patches: bool, warnings: Sequence[str]
) -> Cause:
    """The likely cause of the divergence at `first`, given the cassette usage, whether a patch applied
    only inexactly, and the run's warnings (best evidence first)."""
    if any(d.subject == "agent-failed" for d in first.differences):
        return Cause.AGENT_FAILED
    if usage.misses:
        return Cause.CASSETTE_MISS
    if any(d.subject == "timeout" for d in first.differences):
        return Cause.TIMEOUT
    if first.kind == "patch" or inexact_patches:
        return Cause.PATCH
    if _only_volatile(first.differences):
        return Cause.NONDETERMINISTIC
    if warnings:
        return Cause.ENVIRONMENT
    return Cause.BEHAVIOUR


_NEXT: dict[Cause, str] = {
    Cause.AGENT_FAILED: "read the agent's stderr in the run folder (steps/*.agent.stderr): it failed before "
    "finishing; if it asked for input or configuration, record it with that set (--env-allow, --capture-file)",
    Cause.CASSETTE_MISS: "the agent sent a request the recording does not hold: compare it with the nearest "
    "recorded one below; if the change is expected, record the session again",
    Cause.TIMEOUT: "re-run with a larger --timeout-scale, or look for a loop waiting on something absent",
    Cause.PATCH: "the tree differs from the recording: read the patch difference below; agent-private files "
    "(chat histories, logs) can be left out with --ignore-agent-file GLOB",
    Cause.ENVIRONMENT: "the replay image differs from the recorded environment: read the warnings below",
    Cause.NONDETERMINISTIC: "outputs differ only in numbers or ids: add a normaliser to the step's compare rules",
    Cause.BEHAVIOUR: "a command's result changed: read the first difference below and its logs",
}


def next_step(cause: Cause) -> str:
    """What to do about a divergence of `cause`, in one sentence."""
    return _NEXT[cause]


_VOLATILE = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")


def _only_volatile(diffs: tuple[Difference, ...]) -> bool:
    """True when every changed line differs only in numbers or hex ids: likely nondeterminism."""
    text_diffs = [d for d in diffs if d.diff]
    if not text_diffs or len(text_diffs) != len(diffs):
        return False
    for d in text_diffs:
        lines = d.diff.splitlines()
        removed = [
            _VOLATILE.sub("#", ln[1:]) for ln in lines if ln.startswith("-") and not ln.startswith("---")
        ]
        added = [
            _VOLATILE.sub("#", ln[1:]) for ln in lines if ln.startswith("+") and not ln.startswith("+++")
        ]
        if removed != added:
            return False
    return True
