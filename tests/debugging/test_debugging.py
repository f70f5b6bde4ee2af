"""Checkpoints, typed state files, deterministic replays, pdb sessions and counterfactual replays."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import io
import json
import os
import pickle
import random
import subprocess
import sys
import tarfile
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import typedjson
from runner.debugging import (
    Checkpoint,
    CheckpointManager,
    DeterministicExecutionContext,
    ReplayEngine,
    compare_checkpoints,
)
from runner.errors import DebugError
from runner.observability import Trace, TracerProvider, export_jsonl
from tests.packfactory import make_pack, raw_members, write_pack

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


@pytest.fixture(autouse=True)
def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in a temp folder (checkpoints, trace db) with the agent module importable as `research_agent`."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.chdir(tmp_path)
    yield


@dataclasses.dataclass
class Recording:
    provider: TracerProvider
    trace: Trace
    spans: dict[str, str]  # span name -> span id
    agent: Any
    after_query_1: Checkpoint


def record_research(db: str = "research_traces.db") -> Recording:
    """The guide's recording, with the LLM answers recorded as `llm` spans (made distinct from live ones)."""
    import research_agent

    provider = TracerProvider(db_path=db)
    tracer = provider.get_tracer("research_agent")
    recorded_llm = tracer.traced("llm", name="call_llm")(lambda prompt: f"recorded: {prompt.upper()}")
    live_llm, research_agent.call_llm = research_agent.call_llm, recorded_llm
    try:
        agent = research_agent.ResearchAgent()
        manager = CheckpointManager()
        with tracer.span("research_workflow") as root_span:
            with tracer.span("query_1", input="What is AI safety?") as q1:
                agent.research("What is AI safety?")
            with tracer.span("query_2", input="What are the risks?") as q2:
                after_1 = manager.create_checkpoint(
                    agent, provider.trace_store.get_trace(q2.trace_id), q1.span_id
                )
                agent.research("What are the risks?")
    finally:
        research_agent.call_llm = live_llm
    provider.shutdown()
    trace = provider.trace_store.get_trace(root_span.trace_id)
    ids = {s.name: s.span_id for s in trace.spans if s.name != "call_llm"}
    ids.update({f"llm_{i}": s.span_id for i, s in enumerate(s for s in trace.spans if s.name == "call_llm")})
    return Recording(provider, trace, ids, agent, after_1)


# ---------------------------------------------------------------------------------------------- the guide


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


# ---------------------------------------------------------------------------------------------- pdb


def _pack(tmp: Path, traces: Path) -> Path:
    return make_pack(tmp, files={"traces.jsonl": traces.read_bytes()})


def _runner(*args: str, stdin: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd,
        timeout=120,
    )  # fmt: skip


def test_a_real_pdb_session_through_the_cli(tmp_path: Path) -> None:
    rec = record_research()
    traces = export_jsonl(rec.trace, tmp_path / "traces.jsonl")
    state = CheckpointManager().save_checkpoint(rec.after_query_1, "after_q1.ckpt")
    pack = _pack(tmp_path, traces)
    commands = "p self.memory\nn\nn\np result\nc\n"
    proc = _runner(
        "debug", str(pack), "--span", rec.spans["query_2"], "--function", "research_agent:ResearchAgent.research",
        "--mock", "llm=research_agent.call_llm", "--state", str(state), stdin=commands, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "(Pdb)" in out
    assert '-> self.memory.append({"query": query})' in out  # stopped at the first line of research()
    assert "[{'query': 'What is AI safety?'}, {'result': 'recorded: WHAT IS AI SAFETY?'}]" in out
    assert "-> result = self.call_llm(query)" in out  # `n` stepped one line
    assert "'recorded: WHAT ARE THE RISKS?'" in out  # `p result` after the mocked call
    assert "Replay finished. Final result: 'recorded: WHAT ARE THE RISKS?'" in out
    # The recorded input of the span was the call's argument: the plain traces.jsonl works the same way.
    again = _runner(
        "debug", str(traces), "--span", rec.spans["query_2"], "--function", "research_agent:ResearchAgent.research",
        "--mock", "llm=research_agent.call_llm", "--state", str(state), stdin="c\n", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "Final result: 'recorded: WHAT ARE THE RISKS?'" in again.stdout


def test_cli_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    rec = record_research()
    traces = export_jsonl(rec.trace, tmp_path / "traces.jsonl")
    missing = _runner("debug", str(traces), "--span", "0" * 15 + "1", "--function", "research_agent:call_llm",
                      cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2 and "is not in" in missing.stderr
    bad_mock = _runner("debug", str(traces), "--span", rec.spans["query_2"], "--function",
                       "research_agent:call_llm", "--mock", "llm", cwd=tmp_path)  # fmt: skip
    assert bad_mock.returncode == 2 and "span_type=import.path" in bad_mock.stderr

    link = tarfile.TarInfo("traces.jsonl")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    valid = raw_members(make_pack(tmp_path))
    odd = write_pack(
        tmp_path / "odd.tar.zst", [link if name == "traces.jsonl" else (name, data) for name, data in valid]
    )
    refused = _runner("debug", str(odd), "--span", "1" * 16, "--function", "research_agent:call_llm",
                      cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "traces.jsonl" in refused.stderr, refused.stderr


# ---------------------------------------------------------------------------------------------- safety


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_checkpoint_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    rec = record_research()
    manager = CheckpointManager()
    path = manager.save_checkpoint(rec.after_query_1, "evil.ckpt")
    document = json.loads(path.read_text())
    payload = base64.b64encode(pickle.dumps(_Evil(marker))).decode()
    document["agent_state"] = {"memory": [], "total_cost": {"$pickle": payload}}
    path.write_text(json.dumps(document))
    with pytest.raises(
        DebugError, match=r"pickle payload.*agent_state.total_cost.*system.*allow_pickle=True"
    ):
        manager.load_checkpoint(path)
    assert not marker.exists()

    raw = tmp_path / "raw.ckpt"  # the pickle-file format other tools write
    raw.write_bytes(pickle.dumps({"state": _Evil(marker)}))
    with pytest.raises(DebugError, match=r"raw pickle file \(would import: .*system"):
        manager.load_checkpoint(raw, allow_pickle=True)
    assert not marker.exists()


def test_pickle_needs_consent_on_save_and_on_load() -> None:
    import research_agent

    rec = record_research()
    rec.agent.notebook = research_agent.Notebook(["p1"])
    manager = CheckpointManager()

    class PlainAgent:
        def __init__(self) -> None:
            self.notebook = research_agent.Notebook(["p1", "p2"])
            self.count = 3

    checkpoint = manager.create_checkpoint(PlainAgent(), rec.trace, rec.spans["query_1"])
    assert checkpoint.agent_state["count"] == 3  # no get_state(): __dict__ is captured
    with pytest.raises(
        DebugError, match=r"agent_state\['notebook'\] is a research_agent:Notebook.*allow_pickle"
    ):
        manager.save_checkpoint(checkpoint)
    assert not list(Path(".checkpoints").glob("*")) or not list(Path(".checkpoints").glob("*.ckpt"))
    path = manager.save_checkpoint(checkpoint, allow_pickle=True)
    with pytest.raises(DebugError, match="holds 1 pickle payload"):
        manager.load_checkpoint(path)
    loaded = manager.load_checkpoint(path, allow_pickle=True)
    assert loaded.agent_state == {"notebook": research_agent.Notebook(["p1", "p2"]), "count": 3}
    assert [p.name for p in Path(".checkpoints").iterdir()] == [path.name]  # no temp files left


class Color(enum.Enum):
    RED = "red"


def test_typed_json_round_trips_what_plain_json_loses() -> None:
    import research_agent

    state = {
        "tuple": (1, (2, 3)),
        "set": {3, 1, 2},
        "frozen": frozenset({"a"}),
        "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"),
        "when": datetime.datetime(2024, 1, 15, 9, 30, tzinfo=datetime.UTC),
        "day": datetime.date(2024, 1, 15),
        "span": datetime.timedelta(days=1, microseconds=5),
        "money": decimal.Decimal("12.30"),
        "id": uuid.UUID(int=7),
        "path": Path("/tmp/x"),
        "nan_inf": [float("inf"), -float("inf")],
        "int_keys": {1: "one", (2, 3): "pair"},
        "looks_like_a_tag": {"$tuple": "not a tag"},
        "note": research_agent.Note("safety", ("ai", "risk")),
        "enum": Color.RED,
        "complex": 1 + 2j,
    }
    encoded = json.loads(json.dumps(typedjson.encode(state)))
    assert typedjson.decode(encoded) == state
    assert typedjson.encode({"s": {"b", "a"}}) == typedjson.encode({"s": {"a", "b"}})  # stable set order

    # A class from a module that is not imported is never imported by loading.
    ghost = {"$dataclass": {"type": "some_module_nobody_imported:Thing", "fields": {}}}
    with pytest.raises(DebugError, match="not imported; import it before loading"):
        typedjson.decode(ghost)
    assert "some_module_nobody_imported" not in sys.modules
    with pytest.raises(DebugError, match="unknown tag '\\$exec'"):
        typedjson.decode({"$exec": "print(1)"})
    with pytest.raises(DebugError, match="cycle"):
        loop: list[Any] = []
        loop.append(loop)
        typedjson.encode(loop)


def test_unknown_format_versions_and_foreign_files_are_refused() -> None:
    rec = record_research()
    manager = CheckpointManager()
    path = manager.save_checkpoint(rec.after_query_1)
    document = json.loads(path.read_text())
    path.write_text(json.dumps(dict(document, format_version=2)))
    with pytest.raises(DebugError, match="format_version 2; this runner reads 1"):
        manager.load_checkpoint(path)
    path.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(DebugError, match="not a runner checkpoint"):
        manager.load_checkpoint(path.name)  # a bare name is looked up in checkpoint_dir


def test_metadata_and_upstream_spans_survive_a_round_trip() -> None:
    rec = record_research()
    manager = CheckpointManager()
    checkpoint = manager.create_checkpoint(rec.agent, rec.trace, rec.spans["query_1"])
    checkpoint.metadata["purpose"] = "Before prod deployment 2024-01-15"
    checkpoint.metadata["ticket"] = "JIRA-123"
    path = manager.save_checkpoint(checkpoint, filename="before_payment_42.ckpt")
    loaded = manager.load_checkpoint(path)
    assert loaded.metadata == {"purpose": "Before prod deployment 2024-01-15", "ticket": "JIRA-123"}
    # Upstream of query_1: the root (still open then? no: it ended) and query_1 with its LLM call.
    assert [s.name for s in loaded.trace.spans] == ["research_workflow", "query_1", "call_llm"]
    assert loaded.trace == checkpoint.trace and loaded.agent_state == checkpoint.agent_state


# ---------------------------------------------------------------------------------------------- determinism


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
    assert first["time"][1] == int(a.timestamp * 1e9) + 1_000_000  # and moves 1 ms per reading
    assert uuid.UUID(first["uuid"][0]).version == 4 and first["uuid"][0] != first["uuid"][1]
    other = _noisy_replay(b)
    assert other["random"] != first["random"] and other["uuid"] != first["uuid"]


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
        assert user.datetime.now().timestamp() == pytest.approx(checkpoint.timestamp + 0.001)
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


# ---------------------------------------------------------------------------------------------- compare


def test_compare_checkpoints_reports_nested_changes_and_spans_between() -> None:
    rec = record_research()
    manager = CheckpointManager()
    later = manager.create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"])
    diff = compare_checkpoints(rec.after_query_1, later)
    assert [(c.path, c.kind) for c in diff.changes] == [
        ("memory[2]", "added"), ("memory[3]", "added"), ("total_cost", "changed"),
    ]  # fmt: skip
    assert diff.changes[2].before == 0.25 and diff.changes[2].after == 0.5
    assert diff.same_trace and [s.name for s in diff.spans_between] == ["query_2", "call_llm"]

    a = dataclasses.replace(later, agent_state={"config": {"model": "m1", "tools": ["a"]}})
    b = dataclasses.replace(later, agent_state={"config": {"model": "m2", "tools": ["a", "b"]}, "new": 1})
    assert [(c.path, c.kind, c.before, c.after) for c in compare_checkpoints(a, b).changes] == [
        ("config.model", "changed", "m1", "m2"), ("config.tools[1]", "added", None, "b"), ("new", "added", None, 1),
    ]  # fmt: skip


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_checkpoints_record_the_workspace_tree_without_touching_the_index(tmp_path: Path) -> None:
    rec = record_research()
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("print(1)\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    (repo / "a.py").write_text("print(2)\n")
    (repo / "new.py").write_text("x = 1\n")
    status_before = _git(repo, "status", "--porcelain")
    manager = CheckpointManager()
    first = manager.create_checkpoint(rec.agent, rec.trace, rec.spans["query_1"], repo=repo)
    assert _git(repo, "status", "--porcelain") == status_before  # index untouched: new.py still untracked
    assert first.workspace is not None and first.workspace.head == _git(repo, "rev-parse", "HEAD").strip()
    listing = _git(repo, "ls-tree", "-r", "--name-only", first.workspace.tree).split()
    assert listing == ["a.py", "new.py"]
    assert _git(repo, "show", f"{first.workspace.tree}:a.py") == "print(2)\n"

    (repo / "new.py").write_text("x = 2\n")
    second = manager.create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"], repo=repo)
    assert compare_checkpoints(first, second).workspace_changed is True
    assert manager.load_checkpoint(manager.save_checkpoint(second)).workspace == second.workspace


# ---------------------------------------------------------------------------------------------- counterfactual


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


def test_debug_pack_replays_a_plain_function_with_the_spans_recorded_input(tmp_path: Path) -> None:
    from runner.debugging import debug_pack

    rec = record_research()
    traces = export_jsonl(rec.trace, tmp_path / "traces.jsonl")
    out = io.StringIO()
    # The LLM span's input was {"args": ["What are the risks?"], "kwargs": {}}; the real function runs.
    result = debug_pack(
        traces, rec.spans["llm_1"], "research_agent:call_llm", stdin=io.StringIO("p prompt\nc\n"), stdout=out
    )
    assert result == "Answer to: What are the risks?"
    assert "(Pdb) 'What are the risks?'" in out.getvalue()
    assert "Agent state: none (plain function)" in out.getvalue()
    with pytest.raises(DebugError, match=r"--state needs --function module:Class\.method"):
        debug_pack(traces, rec.spans["llm_1"], "research_agent:call_llm", state_file=traces)


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


def test_a_checkpoint_can_be_taken_inside_a_span_that_is_still_open() -> None:
    """The guide's conditional checkpoint: on an error, inside the failing span, after shutdown."""
    import research_agent

    provider = TracerProvider(db_path="bug_trace.db")
    tracer = provider.get_tracer("agent")
    manager = CheckpointManager()
    agent = research_agent.ResearchAgent()
    saved: list[Path] = []
    with pytest.raises(ZeroDivisionError), tracer.span("risky_operation") as span:
        try:
            agent.total_cost = 1 / 0
        except ZeroDivisionError:
            span.set_status("ERROR")
            provider.shutdown()
            trace = provider.trace_store.get_trace(span.trace_id)
            checkpoint = manager.create_checkpoint(agent, trace, span.span_id)
            saved.append(manager.save_checkpoint(checkpoint))
            raise
    loaded = manager.load_checkpoint(saved[0])
    assert loaded.span.name == "risky_operation" and loaded.span.is_open
    assert loaded.span.status.code == "ERROR"
    assert provider.trace_store.get_trace(span.trace_id).spans[0].end_time is not None  # closed afterwards
