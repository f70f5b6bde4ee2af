"""Expectations over pack facts: the task's seed and temperature are enforced on every recorded model call."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from runner.golden.expect import PackFacts, check
from runner.golden.task import GoldenTask, TaskExpect, TaskInput
from runner.pack.traces import Span
from runner.replay.outcome import PackOutcome, StepOutcome, Verdict

TASK = GoldenTask("t", 1337, 0.0, TaskInput(), TaskExpect(tests_pass=True, max_model_calls=2), Path("t.yaml"))


def _llm(seed: int, temperature: float) -> Span:
    attrs = {
        "runner.span.type": "llm",
        "gen_ai.request.seed": seed,
        "gen_ai.request.temperature": temperature,
    }
    return Span("0" * 32, f"{seed:016x}", None, "chat", 1, 2, attributes=attrs)


FACTS = PackFacts((), (), (("c1", "pytest -q", 0),), (_llm(1337, 0.0), _llm(1337, 0.0)), 0, 1.0, 0)


def _failed(facts: PackFacts, replayed: PackOutcome | None = None) -> list[str]:
    return [r.name for r in check(TASK, facts, "p", replayed).results if not r.held]


def test_seed_and_temperature_are_enforced_on_model_calls() -> None:
    assert _failed(FACTS) == []
    drifted = replace(FACTS, llm_spans=(_llm(1337, 0.0), _llm(7, 0.2), _llm(1337, 0.0)))
    assert _failed(drifted) == ["max_model_calls", "seed", "temperature"]


def test_tests_pass_with_a_replay_needs_the_test_steps_to_reproduce() -> None:
    diverged = PackOutcome(
        "p", Verdict.DIVERGED, steps=(StepOutcome("c1", "command", False, "exit 1, recorded 0"),)
    )
    assert _failed(FACTS, diverged) == ["tests_pass"]
    reproduced = PackOutcome("p", Verdict.REPRODUCED, steps=(StepOutcome("c1", "command", True, "ok"),))
    assert _failed(FACTS, reproduced) == []
    assert _failed(replace(FACTS, checks=())) == ["tests_pass"]
