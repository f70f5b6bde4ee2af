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
Spans on the agent's path (a model call, a tool call) are begun, not started: `Starter.begin` notes on the
agent's thread what only that moment knows (start time, parent, ids, the task attributes), a tuple's worth
of work, and `Starter.make` builds the OpenTelemetry span from it later, off the agent's path, with those
ids (`GivenIds`) and that start time: the span is the one `start_span` would have made then.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from runner.errors import RecordError
from runner.pack import traces

__all__ = ["GivenIds", "JsonlSpanWriter", "SpanStart", "Starter", "Tracing", "otlp_configured", "to_span"]

AttrMap = Mapping[str, str | bool | int | float]

_making = threading.local()  # `start`: the SpanStart being made into a span on this thread, if any


def _making_now() -> SpanStart | None:
    start: SpanStart | None = getattr(_making, "start", None)
    return start


class SpanStart:
    """What the agent's thread knows when a span begins; `span` makes the span from it (off that thread)."""

    __slots__ = ("_span", "attributes", "kind", "name", "parent", "span_id", "start_time", "starter",
                 "trace_flags", "trace_id")  # fmt: skip

    def __init__(
        self,
        starter: Starter,
        name: str,
        kind: otel_trace.SpanKind,
        parent: Context,
        trace_id: int,
        span_id: int,
        trace_flags: int,
        attributes: AttrMap,
    ) -> None:
        self.starter = starter
        self.name = name
        self.kind = kind
        self.parent = parent  # the context it began in
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_flags = trace_flags  # as the SDK sets them: sampled, and whether the trace id is random
        self.attributes = attributes  # the dynamic attributes (the task) of that moment
        self.start_time = time.time_ns()
        self._span: otel_trace.Span | None = None

    @property
    def span_hex(self) -> str:
        return _hex(self.span_id, 16)

    @property
    def span(self) -> otel_trace.Span:
        """The OpenTelemetry span, made on first use: by deferred work, not on the agent's thread."""
        if self._span is None:
            self._span = self.starter.make(self)
        return self._span

    def context(self) -> Context:
        """The parent context with this span current: what the agent's thread runs under meanwhile."""
        flags = otel_trace.TraceFlags(self.trace_flags)
        span_context = otel_trace.SpanContext(self.trace_id, self.span_id, is_remote=False, trace_flags=flags)
        return otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(span_context), self.parent)


class GivenIds(RandomIdGenerator):
    """Random ids, except for the span `Starter.make` is making on this thread: the ids it began with."""

    def generate_span_id(self) -> int:
        start = _making_now()
        return start.span_id if start is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        start = _making_now()
        return start.trace_id if start is not None else super().generate_trace_id()


class Starter:
    """Begins spans cheaply on the caller's thread and makes them later (see the module docstring).
    The tracer's provider must hand out ids with `GivenIds`."""

    def __init__(self, tracer: otel_trace.Tracer, dynamic: Callable[[], AttrMap] | None = None) -> None:
        if not isinstance(tracer, SdkTracer) or not isinstance(tracer.id_generator, GivenIds):
            raise TypeError("Starter needs the tracer of a TracerProvider(id_generator=GivenIds())")
        self.tracer = tracer
        self.ids = tracer.id_generator
        self.dynamic = dynamic

    def begin(self, name: str, kind: otel_trace.SpanKind = otel_trace.SpanKind.INTERNAL) -> SpanStart:
        parent = otel_context.get_current()
        above = otel_trace.get_current_span(parent).get_span_context()
        if above.is_valid:
            trace_id, random_trace = above.trace_id, above.trace_flags.random_trace_id
        else:
            trace_id, random_trace = self.ids.generate_trace_id(), True
        flags = otel_trace.TraceFlags.SAMPLED | (otel_trace.TraceFlags.RANDOM_TRACE_ID if random_trace else 0)
        attributes = self.dynamic() if self.dynamic is not None else {}
        return SpanStart(self, name, kind, parent, trace_id, self.ids.generate_span_id(), flags, attributes)

    def make(self, start: SpanStart) -> otel_trace.Span:
        """The span `start` began, started at its time with its ids, parent and attributes (`start.span`)."""
        _making.start = start
        try:
            return self.tracer.start_span(
                start.name,
                context=start.parent,
                kind=start.kind,
                attributes=start.attributes or None,
                start_time=start.start_time,
            )
        finally:
            _making.start = None


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
        # A span made from a SpanStart took the dynamic attributes of the moment it began.
        if self.dynamic is not None and _making_now() is None:
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
            id_generator=GivenIds(),
            resource=Resource.create({"service.name": service_name, **common}),
            span_limits=SpanLimits(max_attributes=1024, max_events=1024, max_span_attributes=1024),
        )
        self.provider.add_span_processor(self.writer)
        if otlp_configured():
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer: otel_trace.Tracer = self.provider.get_tracer("runner.recorder")
        self.starter = Starter(self.tracer)

    @property
    def dynamic(self) -> Callable[[], AttrMap] | None:
        """Attributes every span takes from the moment it starts (or begins: `starter`), e.g. the task."""
        return self.writer.dynamic

    @dynamic.setter
    def dynamic(self, attributes: Callable[[], AttrMap] | None) -> None:
        self.writer.dynamic = self.starter.dynamic = attributes

    def close(self) -> None:
        self.provider.force_flush()
        self.provider.shutdown()
