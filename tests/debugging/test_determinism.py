"""Deterministic replays: the clock, random and uuid4, and mocks restored and enforced."""

from __future__ import annotations

import datetime
import random
import sys
import time
import types
import uuid
from typing import Any

import pytest

from runner.debugging import Checkpoint, CheckpointManager, DeterministicExecutionContext, ReplayEngine
from runner.errors import DebugError
from tests.debugging.recording import record_research


def _noisy_replay(checkpoint: Checkpoint) -> dict[str, Any]:
    result: dict[str, Any] = ReplayEngine(checkpoint).replay_from_checkpoint("noisy")
    return result


def test_replays_are_deterministic_and_checkpoints_differ() -> None:
    rec = record_research()
    manager = CheckpointManager()
    a = manager.load_checkpoint(
        manager.save_checkpoint(manager.create_checkpoint(rec.agent, rec.trace, rec.spans["query_1"]))
    )
    b = manager.create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"])
    first, second = _noisy_replay(a), _noisy_replay(a)
    assert first == second
    assert first["time"][0] == a.timestamp  # the clock starts at the checkpoint
    assert first["time"][1] == int(a.timestamp * 1e9)  # and stays there: frozen, as the guide promises
    assert uuid.UUID(first["uuid"][0]).version == 4 and first["uuid"][0] != first["uuid"][1]
    other = _noisy_replay(b)
    assert other["random"] != first["random"] and other["uuid"] != first["uuid"]


def test_the_clock_is_frozen_at_the_checkpoint_unless_asked_to_advance() -> None:
    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["query_1"])
    start_ns = int(checkpoint.timestamp * 1e9)
    with DeterministicExecutionContext(checkpoint):
        readings = [time.time(), time.time(), time.time_ns(), datetime.datetime.now().timestamp()]
    assert readings[:2] == [checkpoint.timestamp] * 2 and readings[2] == start_ns
    assert readings[3] == pytest.approx(checkpoint.timestamp)
    with DeterministicExecutionContext(checkpoint, clock="advancing"):
        ticks = [time.time_ns(), time.time_ns()]
    assert ticks == [start_ns, start_ns + 1_000_000]
    with pytest.raises(DebugError, match="clock 'sundial'"):
        DeterministicExecutionContext(checkpoint, clock="sundial")  # type: ignore[arg-type]


def test_the_context_restores_everything_even_on_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["query_1"])
    user = types.ModuleType("user_module_with_bound_names")
    user.time = time.time  # type: ignore[attr-defined]  # as `from time import time` leaves it
    user.datetime = datetime.datetime  # type: ignore[attr-defined]
    import research_agent

    user.call_llm = research_agent.call_llm  # type: ignore[attr-defined]  # `from research_agent import call_llm`
    late = types.ModuleType("module_imported_during_the_replay")
    monkeypatch.setitem(sys.modules, late.__name__, late)
    monkeypatch.setitem(sys.modules, user.__name__, user)
    real = (time.time, time.time_ns, datetime.datetime, uuid.uuid4)
    random.seed(1234)
    expected = random.random()
    random.seed(1234)
    with (
        pytest.raises(RuntimeError),
        DeterministicExecutionContext(checkpoint, {"research_agent.call_llm": ["r1"]}),
    ):
        assert user.time() == checkpoint.timestamp
        assert user.datetime.now().timestamp() == pytest.approx(checkpoint.timestamp)
        assert isinstance(datetime.datetime(2020, 1, 1), user.datetime)
        assert datetime.datetime.utcnow().tzinfo is None
        assert user.call_llm("x") == "r1"  # a copy of the name bound elsewhere is mocked too
        late.time = time.time  # type: ignore[attr-defined]  # bound while the fake is in place
        with pytest.raises(
            DebugError, match=r"called 2 time\(s\) but mock_targets\['research_agent.call_llm'\] holds 1"
        ):
            research_agent.call_llm("y")
        random.random()
        raise RuntimeError("the replayed code failed")
    assert (time.time, time.time_ns, datetime.datetime, uuid.uuid4) == real
    assert user.time is time.time and user.datetime is datetime.datetime  # type: ignore[attr-defined]
    assert late.time is time.time  # type: ignore[attr-defined]
    assert user.call_llm is research_agent.call_llm  # type: ignore[attr-defined]
    assert random.random() == expected  # the global random state is put back as it was
    assert research_agent.call_llm("x") == "Answer to: x"
    assert abs(time.time() - checkpoint.timestamp) < 60 and time.time() != checkpoint.timestamp


def test_a_mock_error_swallowed_by_the_replayed_code_still_fails_the_replay() -> None:
    import research_agent

    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"])
    engine = ReplayEngine(checkpoint)
    agent = research_agent.ResearchAgent()
    with pytest.raises(DebugError, match=r"called 2 time\(s\).*caught by the replayed code"):
        engine.replay_from_checkpoint(
            research_agent.forgiving_research,
            agent,
            ["a", "b"],
            mock_config={"llm": "research_agent.call_llm"},
        )
