"""The span writer: every span lands in traces.jsonl in the pack's shape; OTLP export when configured."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.pack import traces
from runner.recorder.spans import Tracing


def test_thousands_of_spans_from_threads_are_all_written_with_common_attributes(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    tracing = Tracing(path, {"runner.session.id": "s1"}, "t")
    tracing.writer.dynamic = lambda: {"runner.task.id": "task-7"}

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
