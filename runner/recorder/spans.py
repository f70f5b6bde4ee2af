"""Spans of a recording session through the OpenTelemetry SDK, written to traces.jsonl without loss.

Input: spans the session (and the agent, through `Tracing.tracer`) opens and ends. Output: one line
per ended span in `traces.jsonl` (the shape `runner.traces` reads), and the same spans over OTLP/HTTP
when OTEL_EXPORTER_OTLP_ENDPOINT is set.
Rules: the file writer is a synchronous SpanProcessor writing to a buffered file under a lock: a span
is never dropped (the SDK's batch processor drops on a full queue; OTLP export, an extra, may). Every
span gets the session's common attributes when it starts. Attribute values are OpenTelemetry
primitives; structured values are JSON strings. The common attributes are written on every line of the
file, and sent over OTLP as resource attributes. Common attributes known only later (`late`: the
environment snapshot's, taken while the agent starts) are resolved when the first span ends (at once when
spans go over OTLP, whose resource is fixed when it is made).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from runner.errors import RecordError
from runner.pack import traces

__all__ = ["JsonlSpanWriter", "Tracing", "otlp_configured", "to_span"]

AttrMap = Mapping[str, str | bool | int | float]


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _attrs(attributes: Mapping[str, Any] | None) -> dict[str, traces.AttrValue]:
    out: dict[str, traces.AttrValue] = {}
    for key, value in (attributes or {}).items():
        out[key] = tuple(value) if isinstance(value, list | tuple) else value
    return out


def to_span(span: ReadableSpan) -> traces.Span:
    """The pack's span shape for an ended SDK span."""
    ctx = span.get_span_context()
    assert ctx is not None
    start = span.start_time or 0
    end = max(span.end_time or start, start)
    status = span.status
    code = status.status_code.name if status is not None else "UNSET"
    return traces.Span(
        trace_id=_hex(ctx.trace_id, 32),
        span_id=_hex(ctx.span_id, 16),
        parent_span_id=_hex(span.parent.span_id, 16) if span.parent is not None else None,
        name=span.name,
        kind=span.kind.name,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=_attrs(span.attributes),
        events=tuple(
            traces.SpanEvent(
                e.name,
                e.timestamp,
                _attrs(e.attributes),
            )
            for e in span.events
        ),
        status=traces.SpanStatus(code, status.description if status is not None else None),  # type: ignore[arg-type]
    )


class JsonlSpanWriter(SpanProcessor):
    """Writes every ended span, with the common attributes, as one line to a buffered file, at once."""

    def __init__(self, path: Path, common: AttrMap, late: Callable[[], AttrMap] | None = None) -> None:
        self.path = path
        self.common = dict(common)
        self.late = late
        self.dynamic: Callable[[], AttrMap] | None = None
        self.count = 0
        self._lock = threading.Lock()
        try:
            self._file: IO[str] | None = open(path, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
        except OSError as e:
            raise RecordError(f"cannot write spans to {path}: {e.strerror}") from e

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        if self.dynamic is not None:
            span.set_attributes(self.dynamic())

    def on_end(self, span: ReadableSpan) -> None:
        # The common attributes join each line here rather than each span at start: cheaper on the agent's
        # path, and OTLP receivers get them once per batch as resource attributes.
        if self.late is not None:
            with self._lock:
                if self.late is not None:
                    self.common.update(self.late())
                    self.late = None
        pack_span = to_span(span)
        pack_span = dataclasses.replace(pack_span, attributes={**self.common, **pack_span.attributes})
        line = traces.span_line(pack_span) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self.count += 1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if self._file is not None:
                self._file.flush()
        return True

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def otlp_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


class Tracing:
    """A private TracerProvider for one session (the process-wide provider is left alone)."""

    def __init__(
        self, path: Path, common: AttrMap, service_name: str, late: Callable[[], AttrMap] | None = None
    ) -> None:
        if late is not None and otlp_configured():
            common, late = {**common, **late()}, None
        self.writer = JsonlSpanWriter(path, common, late)
        # No limit on attribute count or length: a recorded prompt must not be cut. Every span is sampled,
        # whatever a parent says (ALWAYS_ON: no parent lookup on each span, ~30 µs less on the agent's path).
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=Resource.create({"service.name": service_name, **common}),
            span_limits=SpanLimits(max_attributes=1024, max_events=1024, max_span_attributes=1024),
        )
        self.provider.add_span_processor(self.writer)
        if otlp_configured():
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer: otel_trace.Tracer = self.provider.get_tracer("runner.recorder")

    def close(self) -> None:
        self.provider.force_flush()
        self.provider.shutdown()
