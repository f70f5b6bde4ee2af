"""ReplayEngine: the guide's example, mocks, pdb sessions, coroutines and counterfactual replays."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from runner.debugging import CheckpointManager, ReplayEngine
from runner.errors import DebugError
from tests.debugging.recording import record_research


def test_the_guides_complete_example_runs_with_the_same_names() -> None:
    rec = record_research()
    checkpoint_span_id = rec.spans["query_2"]

    # 1. Create agent with checkpointing (the recording above), then checkpoint at query_2.
    manager = CheckpointManager()
    trace = rec.provider.trace_store.get_trace(rec.trace.trace_id)
    checkpoint = manager.create_checkpoint(rec.agent, trace, checkpoint_span_id)
    checkpoint_path = manager.save_checkpoint(checkpoint)
    assert checkpoint_path.parent == Path(".checkpoints") and checkpoint_path.suffix == ".ckpt"

    # 2. Debug from checkpoint.
    manager = CheckpointManager()
    checkpoint = manager.load_checkpoint(checkpoint_path)
    assert checkpoint.agent_class_name == "ResearchAgent" and checkpoint.agent_module == "research_agent"
    assert checkpoint.trace.trace_id == trace.trace_id and checkpoint.span_id == checkpoint_span_id
    assert [item for item in checkpoint.agent_state["memory"]] == [
        {"query": "What is AI safety?"},
        {"result": "recorded: WHAT IS AI SAFETY?"},
        {"query": "What are the risks?"},
        {"result": "recorded: WHAT ARE THE RISKS?"},
    ]
    assert abs(checkpoint.timestamp - time.time()) < 60 and checkpoint.version
    assert {s.name for s in checkpoint.trace.spans} == {"research_workflow", "query_1", "query_2", "call_llm"}

    out = io.StringIO()
    engine = ReplayEngine(checkpoint, stdin=io.StringIO("p self.memory[-1]\nc\n"), stdout=out)
    mock_config = {"llm": "research_agent.call_llm"}
    result = engine.start_debugging_session(
        function_to_replay="research", mock_config=mock_config, query="What are AI alignment solutions?"
    )
    # The LLM answer is served from the recording after the checkpoint span, not computed live.
    assert result == "recorded: WHAT ARE THE RISKS?"
    text = out.getvalue()
    assert "research_agent.call_llm stands in for spans of type 'llm': 1 recorded response(s)" in text
    assert "{'result': 'recorded: WHAT ARE THE RISKS?'}" in text  # `p self.memory[-1]` at the first line
    assert "Replay finished. Final result: 'recorded: WHAT ARE THE RISKS?'" in text

    import research_agent

    assert research_agent.call_llm("x") == "Answer to: x"  # the mock is gone


def test_a_method_of_a_class_can_be_mocked_and_is_restored() -> None:
    import research_agent

    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["query_1"])
    engine = ReplayEngine(checkpoint, trace_store=rec.provider.trace_store)
    # The checkpoint keeps the spans up to query_1; the store holds the rest of the trace.
    assert len(ReplayEngine(checkpoint).recorded_responses("llm")) == 1
    assert len(engine.recorded_responses("llm")) == 2
    original = research_agent.ResearchAgent.__dict__["call_llm"]
    mock = {"llm": "research_agent.ResearchAgent.call_llm"}
    assert engine.replay_from_checkpoint("survey", ["a", "b"], mock_config=mock) == [
        "recorded: WHAT IS AI SAFETY?",
        "recorded: WHAT ARE THE RISKS?",
    ]
    assert research_agent.ResearchAgent.__dict__["call_llm"] is original


def test_running_out_of_recordings_names_the_function_and_the_counts() -> None:
    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"])
    engine = ReplayEngine(checkpoint)
    with pytest.raises(DebugError, match=r"research_agent.call_llm was called 2 time\(s\) but .* holds 1"):
        engine.replay_from_checkpoint("survey", ["a", "b"], mock_config={"llm": "research_agent.call_llm"})


def test_preflight_warns_about_a_span_type_without_recordings() -> None:
    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"])
    out = io.StringIO()
    engine = ReplayEngine(checkpoint, stdin=io.StringIO("c\n"), stdout=out)
    engine.start_debugging_session(
        "research", {"llm": "research_agent.call_llm", "tool": "research_agent.search_web"}, "q"
    )
    assert (
        "research_agent.search_web stands in for spans of type 'tool': 0 recorded response(s)"
        in out.getvalue()
    )
    assert "WARNING: no recorded 'tool' output" in out.getvalue()


def test_unknown_mock_path_and_method_are_clear_errors() -> None:
    rec = record_research()
    engine = ReplayEngine(CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"]))
    with pytest.raises(DebugError, match="research_agent has no 'nope'"):
        engine.replay_from_checkpoint("research", "q", mock_config={"llm": "research_agent.nope"})
    with pytest.raises(DebugError, match=r"ResearchAgent has no method 'fly'; it has: .*research"):
        engine.replay_from_checkpoint("fly")


def test_counterfactual_replays_diverge_at_a_span() -> None:
    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["research_workflow"])
    engine = ReplayEngine(checkpoint, trace_store=rec.provider.trace_store)
    mock = {"llm": "research_agent.call_llm"}
    queries = (["What is AI safety?", "What are the risks?", "And then?"],)

    report = engine.counterfactual(
        "survey",
        mock,
        diverge_at=rec.spans["llm_1"],
        substitute={"llm": lambda p: f"new model: {p}"},
        args=queries,
    )
    assert [(c.source, c.differs) for c in report.calls] == [
        ("recorded", False), ("substitute", True), ("substitute", True),
    ]  # fmt: skip
    assert report.calls[1].recorded == "recorded: WHAT ARE THE RISKS?"
    assert report.calls[1].actual == "new model: What are the risks?"
    assert report.calls[2].span_id is None  # past the end of the recording
    assert report.result == [
        "recorded: WHAT IS AI SAFETY?",
        "new model: What are the risks?",
        "new model: And then?",
    ]
    assert len(report.diverged) == 2 and json.dumps(report.to_dict())

    live = engine.counterfactual("survey", mock, diverge_at=rec.spans["query_2"], args=queries)
    assert [c.source for c in live.calls] == ["recorded", "live", "live"]
    assert live.result[1] == "Answer to: What are the risks?"


def test_a_coroutine_method_stops_at_its_own_first_line() -> None:
    import research_agent

    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(
        research_agent.AsyncResearchAgent(), rec.trace, rec.spans["query_2"]
    )
    out = io.StringIO()
    engine = ReplayEngine(checkpoint, stdin=io.StringIO("p query\nn\nn\np result\nc\n"), stdout=out)
    result = engine.start_debugging_session("aresearch", {"llm": "research_agent.call_llm"}, "async?")
    assert result == "recorded: WHAT ARE THE RISKS?"
    text = out.getvalue()
    assert "aresearch()\n-> self.memory.append" in text  # inside the coroutine, not in asyncio
    assert "(Pdb) 'async?'" in text and "(Pdb) 'recorded: WHAT ARE THE RISKS?'" in text
    plain = ReplayEngine(checkpoint).replay_from_checkpoint(
        "aresearch", "x", mock_config={"llm": "research_agent.call_llm"}
    )
    assert plain == "recorded: WHAT ARE THE RISKS?"


def test_stepping_into_a_mocked_call_never_stops_in_the_debuggers_own_frames() -> None:
    rec = record_research()
    checkpoint = CheckpointManager().create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"])
    out = io.StringIO()
    engine = ReplayEngine(checkpoint, stdin=io.StringIO("n\ns\nn\ns\nc\n"), stdout=out)
    assert engine.start_debugging_session("research", {"llm": "research_agent.call_llm"}, "q")
    stops = [line for line in out.getvalue().splitlines() if line.lstrip("(Pdb) ").startswith("> ")]
    assert any("research_agent.py(46)call_llm()" in s for s in stops)  # `s` reached the mocked call
    assert not any(f"runner{os.sep}debugging" in s for s in stops), stops
