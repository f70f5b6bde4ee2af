"""Checkpoints: files, pickle consent, typed state, format versions, diffs, workspace trees."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from runner import typedjson
from runner.debugging import CheckpointManager, compare_checkpoints
from runner.errors import DebugError
from runner.observability import TracerProvider
from tests.debugging.recording import record_research


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


def test_rehydration_imports_only_allowed_or_imported_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses as dc

    from runner.debugging import ReplayEngine

    # A module whose import has a side effect, importable from the path, named by a checkpoint file.
    marker = tmp_path / "imported"
    (tmp_path / "planted_agent.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\nclass Agent:\n    def run(self):\n        return self.x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rec = record_research()
    manager = CheckpointManager(tmp_path)
    real = manager.create_checkpoint(rec.agent, rec.trace, rec.spans["query_2"], capture_git=False)
    planted = dc.replace(real, agent_module="planted_agent", agent_class_name="Agent", agent_state={"x": 7})
    loaded = manager.load_checkpoint(manager.save_checkpoint(planted, "planted.ckpt"))

    with pytest.raises(DebugError) as refused:
        ReplayEngine(loaded).replay_from_checkpoint("run")
    assert "names module 'planted_agent', which is not imported" in str(refused.value)
    assert "allowed_modules=['planted_agent']" in str(refused.value) and "\n" not in str(refused.value)
    assert not marker.exists() and "planted_agent" not in sys.modules  # nothing of the module ran

    # An imported module needs no permission (research_agent); a module the caller names is imported.
    assert ReplayEngine(manager.load_checkpoint(manager.save_checkpoint(real))).rehydrate_agent().memory
    try:
        assert ReplayEngine(loaded, allowed_modules=["planted_agent"]).replay_from_checkpoint("run") == 7
        assert marker.exists()
    finally:
        sys.modules.pop("planted_agent", None)
