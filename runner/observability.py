"""Spans of an agent session: recorded live into SQLite, or read from a pack's traces.jsonl.

Inputs: spans opened with ``tracer.span(...)`` in a live process (``TracerProvider(db_path=...)``), or a
traces.jsonl file with one OpenTelemetry-shaped span per line. Outputs: frozen `Span` and `Trace` values,
the same whichever way they came in, and traces.jsonl files (`export_jsonl`).

Rules:
- The span model and the traces.jsonl reader and writer are runner.pack.traces' (one model for packs and
  live traces); this module re-exports them and reports every problem as DebugError.
- A span's type and its recorded input/output are attributes: ``runner.span.type`` ("llm", "tool", ...),
  ``runner.span.input`` and ``runner.span.output`` (JSON strings, typed JSON for what plain JSON loses).
- Nested spans take their parent from a context variable, so threads and asyncio tasks nest correctly.
- A span is written to the store when it starts and updated when it ends, so a trace can be read (and a
  checkpoint taken) while spans are still open; an open span has ``end_time_unix_nano`` None.
- Store writes are serialised by a lock; the SQLite file carries a schema version and refuses others.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import json
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ParamSpec, TypeVar, cast

from runner import typedjson
from runner.errors import DebugError
from runner.pack.traces import (
    SPAN_INPUT,
    SPAN_KINDS,
    SPAN_OUTPUT,
    SPAN_TYPE,
    AttrValue,
    Span,
    SpanEvent,
    SpanStatus,
    StatusCode,
    bounded_lines,
    check_attributes,
    iter_spans,
    span_line,
)

__all__ = [
    "SPAN_INPUT",
    "SPAN_OUTPUT",
    "SPAN_TYPE",
    "AttributeValue",
    "LiveSpan",
    "Span",
    "SpanEvent",
    "SpanStatus",
    "Trace",
    "TraceStore",
    "Tracer",
    "TracerProvider",
    "export_jsonl",
    "load_trace_jsonl",
    "write_atomic",
]

Scalar = str | bool | int | float
AttributeValue = Scalar | list[Scalar] | tuple[Scalar, ...]  # what the live API takes; a Span holds tuples

_SCHEMA_VERSION = "1"

P = ParamSpec("P")
R = TypeVar("R")


def _checked(attributes: Mapping[str, AttributeValue], where: str = "attributes") -> dict[str, AttrValue]:
    try:
        return check_attributes(dict(attributes), where)
    except ValueError as e:
        raise DebugError(f"span {e}") from e


@dataclasses.dataclass(frozen=True)
class Trace:
    """The spans of one trace, ordered by start time."""

    trace_id: str
    spans: tuple[Span, ...]

    def get_span(self, span_id: str) -> Span:
        for span in self.spans:
            if span.span_id == span_id:
                return span
        names = ", ".join(f"{s.span_id} ({s.name})" for s in self.spans[:8])
        raise DebugError(
            f"span {span_id} is not in trace {self.trace_id}; its spans include: {names or 'none'}"
        )

    def ancestors(self, span_id: str) -> list[Span]:
        """The parent chain of a span, nearest first (spans missing from the trace end the chain)."""
        by_id = {s.span_id: s for s in self.spans}
        chain: list[Span] = []
        parent = self.get_span(span_id).parent_span_id
        while parent is not None and parent in by_id and len(chain) < len(by_id):
            chain.append(by_id[parent])
            parent = by_id[parent].parent_span_id
        return chain


def _sorted_trace(trace_id: str, spans: Iterable[Span]) -> Trace:
    return Trace(trace_id, tuple(sorted(spans, key=lambda s: (s.start_time_unix_nano, s.span_id))))


# ---------------------------------------------------------------------------------------------- SQLite store


class TraceStore:
    """Spans in one SQLite file (or ":memory:"). Safe to share between threads."""

    def __init__(self, db_path: str | os.PathLike[str] = "traces.db") -> None:
        self.db_path = str(db_path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.db_path, check_same_thread=False)
            with self._lock, self._db:
                if self.db_path != ":memory:":
                    # WAL with synchronous=NORMAL: a commit costs no fsync (about 20x faster per span) and
                    # the file stays consistent after a crash; only the last spans can be lost on power loss.
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS runner_meta (key TEXT PRIMARY KEY, value TEXT)")
                self._db.execute(
                    "INSERT OR IGNORE INTO runner_meta VALUES ('schema_version', ?)", (_SCHEMA_VERSION,)
                )
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, "
                    "start_ns INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (trace_id, span_id))"
                )
                row = self._db.execute("SELECT value FROM runner_meta WHERE key='schema_version'").fetchone()
        except sqlite3.Error as e:
            raise DebugError(f"cannot open the trace database {self.db_path}: {e}") from e
        if row is None or row[0] != _SCHEMA_VERSION:
            raise DebugError(
                f"{self.db_path} has trace schema version {row and row[0]!r}; this runner reads "
                f"{_SCHEMA_VERSION}: use a new db_path"
            )

    def add_spans(self, spans: Iterable[Span]) -> None:
        """Insert spans, replacing any stored span with the same ids (an open span being closed)."""
        rows = [(s.trace_id, s.span_id, s.start_time_unix_nano, json.dumps(s.to_dict())) for s in spans]
        try:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO spans VALUES (?, ?, ?, ?)", rows)
        except sqlite3.Error as e:
            raise DebugError(f"cannot write spans to {self.db_path}: {e}") from e

    def get_trace(self, trace_id: str) -> Trace:
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT body FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", (trace_id,)
                ).fetchall()
        except sqlite3.Error as e:
            raise DebugError(f"cannot read trace {trace_id} from {self.db_path}: {e}") from e
        if not rows:
            raise DebugError(
                f"trace {trace_id} has no spans in {self.db_path}; was it recorded with this db_path?"
            )
        return _sorted_trace(trace_id, (Span.from_dict(json.loads(r[0]), self.db_path) for r in rows))

    def trace_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT trace_id FROM spans GROUP BY trace_id ORDER BY MIN(start_ns)")
            return [r[0] for r in rows.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- live spans

_current: contextvars.ContextVar[LiveSpan | None] = contextvars.ContextVar(
    "runner_current_span", default=None
)

_UNSET: Any = object()


class LiveSpan:
    """The span object a `tracer.span(...)` block gives you; it becomes a `Span` when it ends."""

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        parent: LiveSpan | None,
        kind: str,
        attributes: Mapping[str, AttrValue],
    ) -> None:
        self._tracer = tracer
        self.name = name
        self.kind = kind
        self.trace_id: str = parent.trace_id if parent else _new_id(16)
        self.span_id: str = _new_id(8)
        self.parent_span_id: str | None = parent.span_id if parent else None
        self.start_time_unix_nano = time.time_ns()
        self.end_time_unix_nano: int | None = None
        if not name or kind not in SPAN_KINDS:
            raise DebugError(f"span {name!r}: needs a name and a kind in {', '.join(sorted(SPAN_KINDS))}")
        self.attributes: dict[str, AttrValue] = {
            "otel.scope.name": tracer.name,
            **({"otel.scope.version": tracer.version} if tracer.version else {}),
            **attributes,
        }
        self.events: list[SpanEvent] = []
        self.status = SpanStatus()
        self.stored = False

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes.update(_checked({key: value}))

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.attributes.update(_checked(attributes))

    def set_status(self, code: str, description: str = "") -> None:
        upper = code.upper()
        if upper not in ("UNSET", "OK", "ERROR"):
            raise DebugError(f"span status {code!r} is not one of UNSET, OK, ERROR")
        self.status = SpanStatus(cast(StatusCode, upper), description)

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        self.events.append(SpanEvent(name, time.time_ns(), _checked(attributes or {}, f"event {name!r}")))

    def set_span_type(self, span_type: str) -> None:
        """Mark what the span stands for ("llm", "tool", "http", "patch", ...); replay mocks by this."""
        self.attributes[SPAN_TYPE] = span_type

    def set_input(self, value: object) -> None:
        self.attributes[SPAN_INPUT] = typedjson.dumps(value)

    def set_output(self, value: object) -> None:
        """Record what the span produced; a replay serves this value back in its place."""
        self.attributes[SPAN_OUTPUT] = typedjson.dumps(value)

    def to_span(self) -> Span:
        return Span(
            trace_id=self.trace_id,
            span_id=self.span_id,
            parent_span_id=self.parent_span_id,
            name=self.name,
            kind=self.kind,
            start_time_unix_nano=self.start_time_unix_nano,
            end_time_unix_nano=self.end_time_unix_nano,
            attributes=dict(self.attributes),
            events=tuple(self.events),
            status=self.status,
        )


def _new_id(nbytes: int) -> str:
    while True:  # all-zero ids are invalid in OpenTelemetry
        value = secrets.token_hex(nbytes)
        if value.strip("0"):
            return value


class Tracer:
    def __init__(self, provider: TracerProvider, name: str, version: str | None) -> None:
        self.provider = provider
        self.name = name
        self.version = version

    @contextmanager
    def span(
        self,
        name: str,
        *,
        span_type: str | None = None,
        input: object = _UNSET,
        kind: str = "INTERNAL",
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Iterator[LiveSpan]:
        """Open a span, nested under the current one; an exception marks it ERROR and propagates."""
        span = LiveSpan(self, name, _current.get(), kind, _checked(attributes or {}))
        if span_type is not None:
            span.set_span_type(span_type)
        if input is not _UNSET:
            span.set_input(input)
        self.provider._record(span)
        token = _current.set(span)
        try:
            yield span
        except BaseException as e:
            span.set_status("ERROR", f"{type(e).__name__}: {e}")
            span.add_event("exception", {"exception.type": type(e).__qualname__, "exception.message": str(e)})
            raise
        finally:
            _current.reset(token)
            # Wall clock, so it can step back: a span never ends before it starts.
            span.end_time_unix_nano = max(time.time_ns(), span.start_time_unix_nano)
            self.provider._record(span)

    def traced(
        self, span_type: str, name: str | None = None, attributes: Mapping[str, AttributeValue] | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a function so each call is a span of `span_type` with its arguments and result recorded
        (plus fixed `attributes`, e.g. ``{"gen_ai.request.model": "gpt-4o"}``)."""

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            params = list(inspect.signature(fn).parameters)
            takes_receiver = bool(params) and params[0] in ("self", "cls")

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                with self.span(name or fn.__qualname__, span_type=span_type, attributes=attributes) as span:
                    # The receiver of a method is not input worth recording (and rarely encodable).
                    recorded = args[1:] if args and takes_receiver else args
                    span.set_input({"args": list(recorded), "kwargs": dict(kwargs)})
                    result = fn(*args, **kwargs)
                    span.set_output(result)
                    return result

            return wrapper

        return decorate


class TracerProvider:
    """Hands out tracers whose spans go to one SQLite trace store."""

    def __init__(self, db_path: str | os.PathLike[str] = "traces.db") -> None:
        self.trace_store = TraceStore(db_path)
        self._accepting = True
        self._open: dict[str, LiveSpan] = {}
        self._lock = threading.Lock()

    def get_tracer(self, name: str, version: str | None = None) -> Tracer:
        return Tracer(self, name, version)

    def force_flush(self) -> None:
        """Write the current attributes and status of the spans still open (they stay open)."""
        with self._lock:  # held while writing, so a span ending meanwhile is not written back as open
            self.trace_store.add_spans([s.to_span() for s in self._open.values()])

    def shutdown(self) -> None:
        """Flush open spans and stop recording new ones. Open spans are still closed in the store when
        they end, and the store stays readable."""
        self.force_flush()
        self._accepting = False

    def _record(self, span: LiveSpan) -> None:
        # A span opened before shutdown is still closed in the store; one opened after is never stored.
        with self._lock:
            if span.end_time_unix_nano is None:
                span.stored = self._accepting
                if span.stored:
                    self._open[span.span_id] = span
            else:
                self._open.pop(span.span_id, None)
            if span.stored:
                self.trace_store.add_spans([span.to_span()])

    def __enter__(self) -> TracerProvider:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()


# ---------------------------------------------------------------------------------------------- traces.jsonl


def load_trace_jsonl(
    source: str | os.PathLike[str] | IO[bytes], *, trace_id: str | None = None, span_id: str | None = None
) -> Trace:
    """Read a traces.jsonl (path or binary stream) into a Trace.

    The file may hold several traces: pick one by `trace_id`, or by a `span_id` it contains; with neither,
    the file must hold exactly one.
    """
    name = str(source) if isinstance(source, str | os.PathLike) else getattr(source, "name", "traces.jsonl")
    by_trace: dict[str, list[Span]] = {}
    try:
        with _open_binary(source) as stream:
            for span in iter_spans(bounded_lines(stream), name, allow_open=True, fail=_bad_line):
                by_trace.setdefault(span.trace_id, []).append(span)
    except OSError as e:
        raise DebugError(f"cannot read {name}: {e}") from e
    if span_id is not None and trace_id is None:
        trace_id = next(
            (t for t, spans in by_trace.items() if any(s.span_id == span_id for s in spans)), None
        )
        if trace_id is None:
            raise DebugError(f"span {span_id} is not in {name}; list the spans with `runner inspect`")
    if trace_id is None:
        if len(by_trace) != 1:
            raise DebugError(
                f"{name} holds {len(by_trace)} traces ({', '.join(by_trace) or 'none'}); pick one"
            )
        trace_id = next(iter(by_trace))
    if trace_id not in by_trace:
        raise DebugError(f"trace {trace_id} is not in {name}")
    return _sorted_trace(trace_id, by_trace[trace_id])


def _bad_line(source: str, number: int, cause: ValueError) -> DebugError:
    if isinstance(cause, json.JSONDecodeError | UnicodeDecodeError):
        return DebugError(f"{source}:{number}: not a JSON line ({cause})")
    return DebugError(f"{source}:{number}: invalid span ({cause})")


@contextmanager
def _open_binary(source: str | os.PathLike[str] | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            yield f
    else:
        yield source


def export_jsonl(spans: Trace | Sequence[Span], path: str | os.PathLike[str]) -> Path:
    """Write spans as traces.jsonl, atomically (temp file + rename); returns the path."""
    items = spans.spans if isinstance(spans, Trace) else spans
    target = Path(path)
    write_atomic(target, "".join(span_line(s) + "\n" for s in items))
    return target


def write_atomic(target: Path, text: str) -> None:
    """Write text to a temp file beside `target`, fsync it and rename it over `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
