"""Spans recorded in SQLite and read back, the traces.jsonl shape, and the recorded I/O attributes."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from runner.errors import DebugError
from runner.observability import (
    SPAN_INPUT,
    SPAN_OUTPUT,
    SPAN_TYPE,
    Span,
    TracerProvider,
    TraceStore,
    export_jsonl,
    load_trace_jsonl,
)


def test_nested_spans_are_stored_with_parents_times_and_attributes(tmp_path: Path) -> None:
    provider = TracerProvider(db_path=tmp_path / "traces.db")
    tracer = provider.get_tracer("my_agent", version="1.0")
    with tracer.span("agent_workflow") as root:
        with tracer.span("step_1") as one:
            one.set_attribute("step", 1)
        with tracer.span("call", span_type="llm", input={"prompt": "hi"}) as call:
            call.set_output(("tuple", b"bytes"))
            call.set_status("ok")
    provider.shutdown()

    trace = provider.trace_store.get_trace(root.trace_id)
    assert re.fullmatch(r"[0-9a-f]{32}", trace.trace_id)
    assert [s.name for s in trace.spans] == ["agent_workflow", "step_1", "call"]
    by_name = {s.name: s for s in trace.spans}
    assert by_name["agent_workflow"].parent_span_id is None
    assert by_name["step_1"].parent_span_id == root.span_id
    assert by_name["call"].parent_span_id == root.span_id
    assert by_name["step_1"].attributes["step"] == 1
    assert by_name["step_1"].attributes["otel.scope.name"] == "my_agent"
    assert by_name["step_1"].attributes["otel.scope.version"] == "1.0"
    llm = by_name["call"]
    assert llm.span_type == "llm" and llm.status.code == "OK"
    assert llm.input == {"prompt": "hi"}
    assert llm.output == ("tuple", b"bytes")  # typed JSON keeps tuples and bytes
    assert all(s.duration_ms >= 0 and s.end_time is not None for s in trace.spans)
    assert by_name["agent_workflow"].start_time <= llm.start_time


def test_an_exception_marks_the_span_error_and_propagates(tmp_path: Path) -> None:
    provider = TracerProvider(db_path=tmp_path / "t.db")
    tracer = provider.get_tracer("t")
    with pytest.raises(ValueError), tracer.span("risky") as span:
        raise ValueError("boom")
    stored = provider.trace_store.get_trace(span.trace_id).spans[0]
    assert stored.status.code == "ERROR" and "boom" in stored.status.description
    assert stored.events[0].name == "exception"
    assert stored.events[0].attributes["exception.type"] == "ValueError"


def test_open_spans_are_readable_before_they_end(tmp_path: Path) -> None:
    provider = TracerProvider(db_path=tmp_path / "t.db")
    tracer = provider.get_tracer("t")
    with tracer.span("outer") as outer:
        seen = provider.trace_store.get_trace(outer.trace_id).spans
        assert seen[0].is_open and seen[0].end_time is None and seen[0].duration_ms == 0.0
    assert not provider.trace_store.get_trace(outer.trace_id).spans[0].is_open


def test_threads_get_their_own_parents_and_writes_do_not_collide(tmp_path: Path) -> None:
    provider = TracerProvider(db_path=tmp_path / "t.db")
    tracer = provider.get_tracer("t")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with tracer.span(f"thread-{n}") as top:
                for i in range(20):
                    with tracer.span(f"child-{n}-{i}") as child:
                        assert child.parent_span_id == top.span_id
        except BaseException as e:  # surfaced to the main thread below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = provider.trace_store.trace_ids()
    assert len(ids) == 6
    assert all(len(provider.trace_store.get_trace(t).spans) == 21 for t in ids)


def test_shutdown_stops_new_spans_but_closes_open_ones(tmp_path: Path) -> None:
    provider = TracerProvider(db_path=tmp_path / "t.db")
    tracer = provider.get_tracer("t")
    with tracer.span("open") as span:
        provider.shutdown()
        with tracer.span("after shutdown"):
            pass
    spans = provider.trace_store.get_trace(span.trace_id).spans
    assert [s.name for s in spans] == ["open"] and not spans[0].is_open


def test_traced_records_arguments_and_result_without_self(tmp_path: Path) -> None:
    provider = TracerProvider(db_path=tmp_path / "t.db")
    tracer = provider.get_tracer("t")

    class Tool:
        @tracer.traced("tool", attributes={"gen_ai.tool.name": "run"})
        def run(self, command: str, *, timeout: int = 1) -> dict[str, int]:
            return {"exit": len(command) + timeout}

    with tracer.span("root") as root:
        assert Tool().run("ls", timeout=2) == {"exit": 4}
    span = provider.trace_store.get_trace(root.trace_id).spans[1]
    assert span.span_type == "tool" and span.attributes["gen_ai.tool.name"] == "run"
    assert span.input == {"args": ["ls"], "kwargs": {"timeout": 2}}
    assert span.output == {"exit": 4}


def test_jsonl_round_trip_keeps_the_shared_span_shape(tmp_path: Path) -> None:
    provider = TracerProvider(db_path=":memory:")
    tracer = provider.get_tracer("t")
    with tracer.span("root") as root, tracer.span("llm", span_type="llm") as llm:
        llm.set_attributes({"gen_ai.request.model": "m", "gen_ai.request.seed": 7, "tags": ["a", "b"]})
        llm.add_event("token", {"n": 1})
        llm.set_output("hello")
    trace = provider.trace_store.get_trace(root.trace_id)
    path = export_jsonl(trace, tmp_path / "traces.jsonl")

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2
    first = lines[1]
    assert set(first) == {
        "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano",
        "end_time_unix_nano", "attributes", "events", "status",
    }  # fmt: skip
    assert first["kind"] == "INTERNAL" and first["status"] == {"code": "UNSET", "description": ""}
    assert first["attributes"][SPAN_TYPE] == "llm"
    assert json.loads(first["attributes"][SPAN_OUTPUT]) == "hello"
    assert first["events"][0]["name"] == "token" and isinstance(first["events"][0]["time_unix_nano"], int)
    assert load_trace_jsonl(path) == trace


def test_load_trace_jsonl_picks_a_trace_and_rejects_bad_lines(tmp_path: Path) -> None:
    def span(trace: str, sid: str, parent: str | None = None) -> dict[str, object]:
        return Span(trace, sid, parent, "s", 1, 2, attributes={SPAN_INPUT: '"x"'}).to_dict()

    path = tmp_path / "traces.jsonl"
    rows = [span("a" * 32, "1" * 16), span("b" * 32, "2" * 16), span("b" * 32, "3" * 16, "2" * 16)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DebugError, match="holds 2 traces"):
        load_trace_jsonl(path)
    assert load_trace_jsonl(path, span_id="3" * 16).trace_id == "b" * 32
    assert len(load_trace_jsonl(path, trace_id="b" * 32).spans) == 2

    bad = dict(rows[0], span_id="XYZ")
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(DebugError, match=r"traces.jsonl:1: invalid span \(span_id"):
        load_trace_jsonl(path)
    path.write_text(json.dumps(dict(rows[0], attributes={"k": {"nested": 1}})) + "\n")
    with pytest.raises(DebugError, match=r"traces.jsonl:1: invalid span \(attributes\.k: must be a string"):
        load_trace_jsonl(path)
    path.write_text("not json\n")
    with pytest.raises(DebugError, match="not a JSON line"):
        load_trace_jsonl(path)


def test_store_refuses_an_unknown_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    TraceStore(db).close()
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runner_meta SET value='99' WHERE key='schema_version'")
    conn.close()
    with pytest.raises(DebugError, match="schema version '99'"):
        TraceStore(db)


def test_unknown_trace_is_a_clear_error(tmp_path: Path) -> None:
    with TraceStore(tmp_path / "t.db") as store, pytest.raises(DebugError, match="has no spans"):
        store.get_trace("f" * 32)
