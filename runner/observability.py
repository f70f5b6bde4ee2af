"""Spans of an agent session: recorded live into SQLite, or read from a pack's traces.jsonl.

Inputs: spans opened with ``tracer.span(...)`` in a live process (``TracerProvider(db_path=...)``), or a
traces.jsonl file with one OpenTelemetry-shaped span per line. Outputs: frozen `Span` and `Trace` values,
the same whichever way they came in, and traces.jsonl files (`export_jsonl`).

Rules:
- One span per JSON line: trace_id (32 hex), span_id (16 hex), parent_span_id (16 hex or null), name,
  kind, start/end_time_unix_nano, attributes, events, status {code, description}.
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
import datetime as dt
import functools
import inspect
import json
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, ParamSpec, TypeVar, cast

from runner import typedjson
from runner.errors import DebugError

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

SPAN_TYPE = "runner.span.type"
SPAN_INPUT = "runner.span.input"
SPAN_OUTPUT = "runner.span.output"

Scalar = str | bool | int | float
AttributeValue = Scalar | list[Scalar]
StatusCode = Literal["UNSET", "OK", "ERROR"]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_SCHEMA_VERSION = "1"

P = ParamSpec("P")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class SpanEvent:
    name: str
    time_unix_nano: int
    attributes: Mapping[str, AttributeValue] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SpanStatus:
    code: StatusCode = "UNSET"
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Span:
    """One finished (or still open) span, as stored and as written to traces.jsonl."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int | None
    kind: str = "INTERNAL"
    attributes: Mapping[str, AttributeValue] = dataclasses.field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    status: SpanStatus = SpanStatus()

    @property
    def is_open(self) -> bool:
        return self.end_time_unix_nano is None

    @property
    def duration_ms(self) -> float:
        """Milliseconds from start to end; 0.0 while the span is still open."""
        if self.end_time_unix_nano is None:
            return 0.0
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e6

    @property
    def start_time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.start_time_unix_nano / 1e9, dt.UTC)

    @property
    def end_time(self) -> dt.datetime | None:
        if self.end_time_unix_nano is None:
            return None
        return dt.datetime.fromtimestamp(self.end_time_unix_nano / 1e9, dt.UTC)

    @property
    def span_type(self) -> str | None:
        value = self.attributes.get(SPAN_TYPE)
        return value if isinstance(value, str) else None

    @property
    def has_output(self) -> bool:
        return isinstance(self.attributes.get(SPAN_OUTPUT), str)

    @property
    def input(self) -> Any:
        """The recorded input, decoded (None when none was recorded)."""
        return self._decoded(SPAN_INPUT)

    @property
    def output(self) -> Any:
        """The recorded output, decoded (None when none was recorded; see `has_output`)."""
        return self._decoded(SPAN_OUTPUT)

    def _decoded(self, key: str) -> Any:
        raw = self.attributes.get(key)
        if not isinstance(raw, str):
            return None
        try:
            return typedjson.loads(raw)
        except DebugError as e:
            raise DebugError(f"span {self.span_id} ({self.name!r}): attribute {key}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_time_unix_nano": self.start_time_unix_nano,
            "end_time_unix_nano": self.end_time_unix_nano,
            "attributes": dict(self.attributes),
            "events": [
                {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": dict(e.attributes)}
                for e in self.events
            ],
            "status": {"code": self.status.code, "description": self.status.description},
        }

    @classmethod
    def from_dict(cls, data: object, where: str = "span") -> Span:
        """Validate one span object (from a file nobody vouches for) and build the Span."""
        if not isinstance(data, dict):
            raise DebugError(f"{where}: a span must be a JSON object")
        try:
            trace_id, span_id, parent = data["trace_id"], data["span_id"], data.get("parent_span_id")
            if not (isinstance(trace_id, str) and _TRACE_ID.fullmatch(trace_id)):
                raise ValueError(f"trace_id {trace_id!r} is not 32 lowercase hex digits")
            if not (isinstance(span_id, str) and _SPAN_ID.fullmatch(span_id)):
                raise ValueError(f"span_id {span_id!r} is not 16 lowercase hex digits")
            if parent is not None and not (isinstance(parent, str) and _SPAN_ID.fullmatch(parent)):
                raise ValueError(f"parent_span_id {parent!r} is not 16 lowercase hex digits or null")
            status = data.get("status") or {}
            code = status.get("code", "UNSET")
            if code not in ("UNSET", "OK", "ERROR"):
                raise ValueError(f"status code {code!r} is not UNSET, OK or ERROR")
            end = data.get("end_time_unix_nano")
            return cls(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=_typed(data["name"], str, "name"),
                kind=_typed(data.get("kind", "INTERNAL"), str, "kind"),
                start_time_unix_nano=_typed(data["start_time_unix_nano"], int, "start_time_unix_nano"),
                end_time_unix_nano=None if end is None else _typed(end, int, "end_time_unix_nano"),
                attributes=_attributes(data.get("attributes") or {}),
                events=tuple(
                    SpanEvent(
                        name=_typed(e["name"], str, "event name"),
                        time_unix_nano=_typed(e["time_unix_nano"], int, "event time_unix_nano"),
                        attributes=_attributes(e.get("attributes") or {}),
                    )
                    for e in _typed(data.get("events") or [], list, "events")
                ),
                status=SpanStatus(
                    code=code, description=_typed(status.get("description") or "", str, "status")
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DebugError(f"{where}: invalid span ({e})") from e


T = TypeVar("T")


def _typed(value: object, kind: type[T], what: str) -> T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{what} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _attributes(raw: object) -> dict[str, AttributeValue]:
    if not isinstance(raw, dict):
        raise TypeError("attributes must be an object")
    out: dict[str, AttributeValue] = {}
    for key, value in raw.items():
        if isinstance(value, list):
            if not all(isinstance(x, str | bool | int | float) for x in value):
                raise TypeError(f"attribute {key!r}: list items must be str, int, float or bool")
        elif not isinstance(value, str | bool | int | float):
            raise TypeError(f"attribute {key!r} must be str, int, float, bool or a list of them")
        out[str(key)] = value
    return out


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
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._tracer = tracer
        self.name = name
        self.kind = kind
        self.trace_id: str = parent.trace_id if parent else _new_id(16)
        self.span_id: str = _new_id(8)
        self.parent_span_id: str | None = parent.span_id if parent else None
        self.start_time_unix_nano = time.time_ns()
        self.end_time_unix_nano: int | None = None
        self.attributes: dict[str, AttributeValue] = {
            "otel.scope.name": tracer.name,
            **({"otel.scope.version": tracer.version} if tracer.version else {}),
            **attributes,
        }
        self.events: list[SpanEvent] = []
        self.status = SpanStatus()
        self.stored = False

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes.update(_attributes({key: value}))

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.attributes.update(_attributes(dict(attributes)))

    def set_status(self, code: str, description: str = "") -> None:
        upper = code.upper()
        if upper not in ("UNSET", "OK", "ERROR"):
            raise DebugError(f"span status {code!r} is not one of UNSET, OK, ERROR")
        self.status = SpanStatus(cast(StatusCode, upper), description)

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        self.events.append(SpanEvent(name, time.time_ns(), _attributes(dict(attributes or {}))))

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
        span = LiveSpan(self, name, _current.get(), kind, _attributes(dict(attributes or {})))
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
            span.end_time_unix_nano = time.time_ns()
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
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                where = f"{name}:{number}"
                try:
                    data = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                    raise DebugError(f"{where}: not a JSON line ({e})") from e
                span = Span.from_dict(data, where)
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
    write_atomic(target, "".join(json.dumps(s.to_dict(), separators=(",", ":")) + "\n" for s in items))
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
