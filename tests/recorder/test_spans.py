"""The span writer: every span lands in traces.jsonl in the pack's shape; OTLP export when configured."""

from __future__ import annotations

import contextvars
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider

from runner.pack import traces
from runner.recorder.spans import Starter, Tracing


def test_thousands_of_spans_from_threads_are_all_written_with_common_attributes(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    tracing = Tracing(path, {"runner.session.id": "s1"}, "t")
    tracing.dynamic = lambda: {"runner.task.id": "task-7"}

    def burst() -> None:
        for i in range(2500):
            with (
                tracing.tracer.start_as_current_span(f"s{i}") as span,
                tracing.tracer.start_as_current_span("child"),
            ):
                span.set_attribute("i", i)

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracing.close()
    spans = traces.read_spans(path)  # the pack's own reader: shape, ids, uniqueness
    assert len(spans) == 20000
    assert all(s.attributes["runner.session.id"] == "s1" for s in spans)
    assert all(s.attributes["runner.task.id"] == "task-7" for s in spans)
    children = [s for s in spans if s.name == "child"]
    parents = {s.span_id for s in spans if s.name != "child"}
    assert len(children) == 10000 and all(c.parent_span_id in parents for c in children)


def test_spans_are_also_sent_over_otlp_http_when_an_endpoint_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        tracing = Tracing(tmp_path / "traces.jsonl", {}, "otlp-test")
        with tracing.tracer.start_as_current_span("exported-span"):
            pass
        tracing.close()
    finally:
        server.shutdown()
        server.server_close()
    assert [p for p, _ in received] == ["/v1/traces"]
    assert b"exported-span" in received[0][1]
    assert len(traces.read_spans(tmp_path / "traces.jsonl")) == 1


def test_a_begun_span_is_made_later_with_the_ids_time_parent_and_task_of_its_beginning(
    tmp_path: Path,
) -> None:
    task: contextvars.ContextVar[str] = contextvars.ContextVar("task", default="")
    tracing = Tracing(tmp_path / "traces.jsonl", {}, "t")
    tracing.dynamic = lambda: {"runner.task.id": task.get()}
    token = task.set("task-1")
    with tracing.tracer.start_as_current_span("parent"):
        before = time.time_ns()
        begun = tracing.starter.begin("call", otel_trace.SpanKind.CLIENT)
        after = time.time_ns()
        attached = otel_context.attach(begun.context())  # what runs meanwhile nests under the call
        with tracing.tracer.start_as_current_span("nested"):
            pass
        otel_context.detach(attached)
    task.reset(token)
    root = tracing.starter.begin("root")  # no parent: a trace of its own, chosen when it begins
    task.set("task-2")  # made under another task: the span keeps the one it began in
    begun.span.end()
    root.span.end()
    tracing.close()
    spans = {s.name: s for s in traces.read_spans(tmp_path / "traces.jsonl")}
    call, parent, nested = spans["call"], spans["parent"], spans["nested"]
    assert call.span_id == begun.span_hex and call.kind == "CLIENT"
    assert call.trace_id == parent.trace_id and call.parent_span_id == parent.span_id
    assert before <= call.start_time_unix_nano <= after
    assert call.attributes["runner.task.id"] == "task-1" and spans["root"].attributes["runner.task.id"] == ""
    assert nested.parent_span_id == call.span_id
    assert spans["root"].parent_span_id is None and spans["root"].trace_id == format(root.trace_id, "032x")


def test_a_starter_refuses_a_tracer_that_would_not_keep_the_begun_ids() -> None:
    with pytest.raises(TypeError, match="GivenIds"):
        Starter(TracerProvider().get_tracer("t"))
