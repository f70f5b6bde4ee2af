"""traces.jsonl: spans round-trip, and every bad line is refused with its line number."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runner.errors import PackError
from runner.pack.traces import Span, SpanEvent, SpanStatus, iter_spans, read_spans, span_line
from tests.packfactory import root_span


def _child() -> Span:
    return Span(
        trace_id=root_span().trace_id,
        span_id="b7ad6b7169203331",
        parent_span_id=root_span().span_id,
        name="llm.request",
        kind="CLIENT",
        start_time_unix_nano=1_764_000_001_000_000_000,
        end_time_unix_nano=1_764_000_002_000_000_000,
        attributes={
            "llm.model": "gpt-4o-mini",
            "llm.seed": 424242,
            "llm.temperature": 0.0,
            "tags": ("a", "b"),
        },
        events=(SpanEvent("retry", 1_764_000_001_500_000_000, {"attempt": 2}),),
        status=SpanStatus("ERROR", "rate limited"),
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_text(span_line(root_span()) + "\n\n" + span_line(_child()) + "\n")
    assert read_spans(path) == (root_span(), _child())
    assert _child().duration_ns == 1_000_000_000


def _line(**changes: Any) -> str:
    d = json.loads(span_line(_child()))
    for key, value in changes.items():
        if value is KeyError:
            del d[key]
        else:
            d[key] = value
    return json.dumps(d)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "expected a JSON object"),
        (_line(trace_id="0" * 32), "trace_id must be 32 lowercase hex digits"),
        (_line(span_id="ABCDEF0123456789"), "span_id must be 16 lowercase hex digits"),
        (_line(parent_span_id="xyz"), "parent_span_id must be 16"),
        (_line(kind="WEIRD"), "kind must be one of"),
        (_line(end_time_unix_nano=1), "end_time_unix_nano is before"),
        (_line(start_time_unix_nano=-5), "start_time_unix_nano must be a non-negative integer"),
        (_line(status={"code": "FINE"}), "status must be"),
        (_line(attributes={"x": {"nested": 1}}), "attributes.x: must be a string"),
        (_line(attributes={"x": [1, "a"]}), "attributes.x: a list attribute"),
        (_line(events=[{"name": "e"}]), "events[0] must have exactly"),
        (_line(name=""), "name must be a non-empty string"),
        (_line(status=KeyError), "missing key status"),
        (_line(extra=1), "unknown key extra"),
        ('{"trace_id": NaN}', "NaN is not allowed"),
        (span_line(root_span()), "appears on an earlier line"),
    ],
)
def test_bad_line_names_its_number(tmp_path: Path, bad: str, reason: str) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_text(
        span_line(root_span()) + "\n" + span_line(replace(_child(), span_id="1" * 16)) + "\n" + bad + "\n"
    )
    with pytest.raises(PackError) as e:
        read_spans(path)
    assert f"{path} line 3: " in str(e.value)
    assert reason in str(e.value)


def test_iter_spans_is_lazy_and_names_the_source() -> None:
    spans = iter_spans([span_line(root_span()), "oops"], source="pack.tar.zst: traces.jsonl")
    assert next(spans) == root_span()
    with pytest.raises(PackError, match=r"pack\.tar\.zst: traces\.jsonl line 2: "):
        next(spans)


def test_missing_file_is_a_pack_error(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="cannot read"):
        read_spans(tmp_path / "absent.jsonl")


def test_an_open_span_is_refused_in_a_pack_and_read_where_allowed() -> None:
    line = span_line(replace(_child(), end_time_unix_nano=None))
    with pytest.raises(PackError, match="line 1: end_time_unix_nano must be a non-negative integer"):
        list(iter_spans([line]))
    (span,) = iter_spans([line], allow_open=True)
    assert span.is_open and span.duration_ns == 0 and span.end_time is None
