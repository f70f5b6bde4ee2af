"""Spans of a recorded session: `traces.jsonl`, one OpenTelemetry-shaped span per line.

Inputs: the lines of a traces file (untrusted, from a pack). Outputs: frozen `Span` values, or one JSON line
per span for the recorder.
Rules: every line is one JSON object with exactly the documented keys and types; ids are lowercase hex
(trace 32, span 16 digits, not all zero), times are unix nanoseconds with end >= start, attribute values
are OpenTelemetry primitives or homogeneous lists of them, span ids are unique in a file. A bad line raises
PackError naming the source and line number. See docs/pack-format.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runner.errors import PackError

__all__ = [
    "SPAN_KINDS",
    "STATUS_CODES",
    "Span",
    "SpanEvent",
    "SpanStatus",
    "iter_spans",
    "read_spans",
    "span_line",
]

SPAN_KINDS = frozenset({"INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"})
STATUS_CODES = frozenset({"UNSET", "OK", "ERROR"})
MAX_LINE_BYTES = 16 << 20

AttrValue = (
    str | bool | int | float | tuple[str, ...] | tuple[bool, ...] | tuple[int, ...] | tuple[float, ...]
)

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
    code: Literal["UNSET", "OK", "ERROR"] = "UNSET"
    description: str | None = None


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    parent_span_id: str | None = None
    kind: str = "INTERNAL"
    attributes: Mapping[str, AttrValue] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    status: SpanStatus = field(default_factory=SpanStatus)

    @property
    def duration_ns(self) -> int:
        return self.end_time_unix_nano - self.start_time_unix_nano


class _Bad(ValueError):
    pass


def span_line(span: Span) -> str:
    """One JSON line (no newline) for `span`, in the documented key order."""
    return json.dumps(
        {
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "parent_span_id": span.parent_span_id,
            "name": span.name,
            "kind": span.kind,
            "start_time_unix_nano": span.start_time_unix_nano,
            "end_time_unix_nano": span.end_time_unix_nano,
            "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()},
            "events": [
                {
                    "name": e.name,
                    "time_unix_nano": e.time_unix_nano,
                    "attributes": {
                        k: list(v) if isinstance(v, tuple) else v for k, v in e.attributes.items()
                    },
                }
                for e in span.events
            ],
            "status": {"code": span.status.code, "description": span.status.description},
        },
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )


def iter_spans(lines: Iterable[str | bytes], source: str = "traces.jsonl") -> Iterator[Span]:
    """Parse and check spans line by line; blank lines are skipped."""
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            raise PackError(f"{source} line {number}: longer than {MAX_LINE_BYTES} bytes")
        try:
            span = _span(json.loads(line, parse_constant=_no_constant))
            if span.span_id in seen:
                raise _Bad(f"span_id {span.span_id} appears on an earlier line too")
        except (ValueError, RecursionError) as e:  # json.JSONDecodeError is a ValueError
            raise PackError(f"{source} line {number}: {e}") from e
        seen.add(span.span_id)
        yield span


def read_spans(path: Path) -> tuple[Span, ...]:
    """All spans of a traces.jsonl file, in file order."""
    try:
        with open(path, "rb") as f:
            return tuple(iter_spans(_bounded_lines(f), source=str(path)))
    except OSError as e:
        raise PackError(f"cannot read {path}: {e.strerror}") from e


def _bounded_lines(f: Any) -> Iterator[bytes]:
    # readline with a limit: one huge line cannot take unbounded memory before it is refused.
    while line := f.readline(MAX_LINE_BYTES + 1):
        yield line


def _no_constant(name: str) -> None:
    raise _Bad(f"{name} is not allowed in JSON here")


def _span(d: Any) -> Span:
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
    start, end = _nanos(d, "start_time_unix_nano"), _nanos(d, "end_time_unix_nano")
    if end < start:
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
        attributes=_attributes(d["attributes"], "attributes"),
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
        attributes=_attributes(e["attributes"], f"{where}.attributes"),
    )


def _attributes(a: Any, where: str) -> dict[str, AttrValue]:
    if not isinstance(a, dict):
        raise _Bad(f"{where} must be an object")
    out: dict[str, AttrValue] = {}
    for key, value in a.items():
        if isinstance(value, list):
            kinds = {type(v) for v in value}
            if len(kinds) > 1 or not kinds <= {str, bool, int, float}:
                raise _Bad(f"{where}.{key}: a list attribute holds values of one primitive type")
            out[key] = tuple(value)
        elif isinstance(value, str | bool | int | float):
            out[key] = value
        else:
            raise _Bad(f"{where}.{key}: must be a string, number, boolean or a list of one of them")
    return out
