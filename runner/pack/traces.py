"""The one span model (`Span`) and the one traces.jsonl reader and writer, for packs and live traces alike.

Inputs: the lines of a traces file (untrusted, from a pack or a user), or span objects from a trace store or a
checkpoint. Outputs: frozen `Span` values; one JSON line (`span_line`) or object (`Span.to_dict`) per span.
Rules: every line is one JSON object with exactly the documented keys and types; ids are lowercase hex
(trace 32, span 16 digits, not all zero), times are unix nanoseconds with end >= start, attribute values
are OpenTelemetry primitives or homogeneous lists of them (tuples in a `Span`), span ids are unique in a file.
An open span (end null) is only accepted where the caller allows it (live traces, checkpoints); a pack's
spans are all closed. A bad line raises PackError naming the source and line number, unless the caller
passes its own `fail`. A span's type and recorded input/output are the attributes `SPAN_TYPE`,
`SPAN_INPUT` and `SPAN_OUTPUT` (typed JSON strings, see runner.typedjson). See docs/pack-format.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from runner import typedjson
from runner.errors import DebugError, PackError

__all__ = [
    "MAX_LINE_BYTES",
    "SPAN_INPUT",
    "SPAN_KINDS",
    "SPAN_OUTPUT",
    "SPAN_TYPE",
    "STATUS_CODES",
    "AttrValue",
    "Span",
    "SpanEvent",
    "SpanStatus",
    "StatusCode",
    "bounded_lines",
    "check_attributes",
    "iter_spans",
    "parse_span",
    "read_spans",
    "span_line",
]

SPAN_TYPE = "runner.span.type"  # what the span stands for: "llm", "tool", "http", "patch", ...
SPAN_INPUT = "runner.span.input"
SPAN_OUTPUT = "runner.span.output"
SPAN_KINDS = frozenset({"INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"})
STATUS_CODES = frozenset({"UNSET", "OK", "ERROR"})
MAX_LINE_BYTES = 16 << 20

AttrValue = (
    str | bool | int | float | tuple[str, ...] | tuple[bool, ...] | tuple[int, ...] | tuple[float, ...]
)
StatusCode = Literal["UNSET", "OK", "ERROR"]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_SPAN_KEYS = {
    "trace_id", "span_id", "parent_span_id", "name", "kind",
    "start_time_unix_nano", "end_time_unix_nano", "attributes", "events", "status",
}  # fmt: skip


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_unix_nano: int
    attributes: Mapping[str, AttrValue] = field(default_factory=dict)


@dataclass(frozen=True)
class SpanStatus:
    code: StatusCode = "UNSET"
    description: str | None = ""  # None where the recorder had none (null in the file)


@dataclass(frozen=True)
class Span:
    """One span, finished or (in a live trace or a checkpoint) still open: `end_time_unix_nano` None."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int | None
    kind: str = "INTERNAL"
    attributes: Mapping[str, AttrValue] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    status: SpanStatus = field(default_factory=SpanStatus)

    @property
    def is_open(self) -> bool:
        return self.end_time_unix_nano is None

    @property
    def duration_ns(self) -> int:
        """Nanoseconds from start to end; 0 while the span is still open."""
        if self.end_time_unix_nano is None:
            return 0
        return self.end_time_unix_nano - self.start_time_unix_nano

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6

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
        """The span as a JSON object, in the documented key order."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_time_unix_nano": self.start_time_unix_nano,
            "end_time_unix_nano": self.end_time_unix_nano,
            "attributes": _json_attributes(self.attributes),
            "events": [
                {
                    "name": e.name,
                    "time_unix_nano": e.time_unix_nano,
                    "attributes": _json_attributes(e.attributes),
                }
                for e in self.events
            ],
            "status": {"code": self.status.code, "description": self.status.description},
        }

    @classmethod
    def from_dict(cls, data: object, where: str = "span") -> Span:
        """`parse_span` for the debugging side (trace stores, checkpoints): open spans allowed, DebugError."""
        try:
            return parse_span(data, allow_open=True)
        except ValueError as e:
            raise DebugError(f"{where}: invalid span ({e})") from e


def _json_attributes(attributes: Mapping[str, AttrValue]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}


class _Bad(ValueError):
    pass


def span_line(span: Span) -> str:
    """One JSON line (no newline) for `span`, in the documented key order."""
    return json.dumps(span.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _pack_error(source: str, number: int, cause: ValueError) -> Exception:
    return PackError(f"{source} line {number}: {cause}")


def iter_spans(
    lines: Iterable[str | bytes],
    source: str = "traces.jsonl",
    *,
    allow_open: bool = False,
    fail: Callable[[str, int, ValueError], Exception] = _pack_error,
) -> Iterator[Span]:
    """Parse and check spans line by line; blank lines are skipped.

    A bad line raises `fail(source, line number, cause)`: a PackError by default. The cause is a
    json.JSONDecodeError or UnicodeDecodeError when the line is not JSON, another ValueError otherwise."""
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            if len(line) > MAX_LINE_BYTES:
                raise _Bad(f"longer than {MAX_LINE_BYTES} bytes")
            try:
                data = json.loads(line, parse_constant=_no_constant)
            except RecursionError as e:
                raise _Bad("nested too deeply") from e
            span = parse_span(data, allow_open=allow_open)
            if span.span_id in seen:
                raise _Bad(f"span_id {span.span_id} appears on an earlier line too")
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            raise fail(source, number, e) from e
        seen.add(span.span_id)
        yield span


def read_spans(path: Path) -> tuple[Span, ...]:
    """All spans of a pack's traces.jsonl file, in file order."""
    try:
        with open(path, "rb") as f:
            return tuple(iter_spans(bounded_lines(f), source=str(path)))
    except OSError as e:
        raise PackError(f"cannot read {path}: {e.strerror}") from e


def bounded_lines(f: IO[bytes]) -> Iterator[bytes]:
    """The lines of a binary file; one huge line cannot take unbounded memory before it is refused."""
    while line := f.readline(MAX_LINE_BYTES + 1):
        yield line


def _no_constant(name: str) -> None:
    raise _Bad(f"{name} is not allowed in JSON here")


def parse_span(d: object, *, allow_open: bool = False) -> Span:
    """Check one span object (from JSON nobody vouches for); ValueError saying what is wrong."""
    if not isinstance(d, dict):
        raise _Bad("expected a JSON object")
    missing = sorted(_SPAN_KEYS - d.keys())
    extra = sorted(d.keys() - _SPAN_KEYS)
    if missing or extra:
        raise _Bad(f"missing key {missing[0]}" if missing else f"unknown key {extra[0]}")
    trace_id = _id(d, "trace_id", _TRACE_ID, 32)
    span_id = _id(d, "span_id", _SPAN_ID, 16)
    parent = None if d["parent_span_id"] is None else _id(d, "parent_span_id", _SPAN_ID, 16)
    if parent == span_id:
        raise _Bad("parent_span_id equals span_id")
    start = _nanos(d, "start_time_unix_nano")
    end = None if d["end_time_unix_nano"] is None and allow_open else _nanos(d, "end_time_unix_nano")
    if end is not None and end < start:
        raise _Bad("end_time_unix_nano is before start_time_unix_nano")
    kind = d["kind"]
    if kind not in SPAN_KINDS:
        raise _Bad(f"kind must be one of {', '.join(sorted(SPAN_KINDS))}, not {kind!r}")
    status = d["status"]
    if (
        not isinstance(status, dict)
        or set(status) - {"code", "description"}
        or status.get("code") not in STATUS_CODES
    ):
        raise _Bad("status must be {code: UNSET|OK|ERROR, description: string|null}")
    description = status.get("description")
    if description is not None and not isinstance(description, str):
        raise _Bad("status.description must be a string or null")
    if not isinstance(d["events"], list):
        raise _Bad("events must be a list")
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=_name(d["name"], "name"),
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=check_attributes(d["attributes"], "attributes"),
        events=tuple(_event(e, i) for i, e in enumerate(d["events"])),
        status=SpanStatus(code=status["code"], description=description),
    )


def _id(d: dict[str, Any], key: str, pattern: re.Pattern[str], digits: int) -> str:
    value = d[key]
    if not isinstance(value, str) or not pattern.fullmatch(value) or value == "0" * digits:
        raise _Bad(f"{key} must be {digits} lowercase hex digits, not all zero")
    return value


def _nanos(d: dict[str, Any], key: str) -> int:
    value = d[key]
    if type(value) is not int or value < 0:
        raise _Bad(f"{key} must be a non-negative integer")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(f"{where} must be a non-empty string")
    return value


def _event(e: Any, i: int) -> SpanEvent:
    where = f"events[{i}]"
    if not isinstance(e, dict) or set(e) != {"name", "time_unix_nano", "attributes"}:
        raise _Bad(f"{where} must have exactly name, time_unix_nano and attributes")
    return SpanEvent(
        name=_name(e["name"], f"{where}.name"),
        time_unix_nano=_nanos(e, "time_unix_nano"),
        attributes=check_attributes(e["attributes"], f"{where}.attributes"),
    )


def check_attributes(a: object, where: str) -> dict[str, AttrValue]:
    """Checked attributes (lists become tuples); ValueError naming `where` and the bad key."""
    if not isinstance(a, dict):
        raise _Bad(f"{where} must be an object")
    out: dict[str, AttrValue] = {}
    for key, value in a.items():
        if not isinstance(key, str):
            raise _Bad(f"{where}: key {key!r} is not a string")
        if isinstance(value, list | tuple):
            kinds = {type(v) for v in value}
            if len(kinds) > 1 or not kinds <= {str, bool, int, float}:
                raise _Bad(f"{where}.{key}: a list attribute holds values of one primitive type")
            out[key] = tuple(value)
        elif isinstance(value, str | bool | int | float):
            out[key] = value
        else:
            raise _Bad(f"{where}.{key}: must be a string, number, boolean or a list of one of them")
    return out
