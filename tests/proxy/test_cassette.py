"""The cassette format: round trip, durability, refusal of what it does not know."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cassette import (
    FORMAT_VERSION,
    CassetteError,
    CassetteWriter,
    Chunk,
    Exchange,
    RecordedRequest,
    RecordedResponse,
    read_exchanges,
)


def exchange(chunks: tuple[Chunk, ...] | None = None) -> Exchange:
    body = b"".join(c.data for c in chunks) if chunks else b"\x00\xffbinary"
    return Exchange(
        RecordedRequest(
            "POST", "https", "h", 443, "/p", (("a", "1"), ("a", "2")), (("X", "y"),), "é".encode()
        ),
        RecordedResponse(200, "OK", (("content-type", "x"),), body, chunks, "HTTP/2.0"),
        started=1.5,
        duration=0.25,
    )


def test_round_trip_text_binary_and_chunks(tmp_path: Path) -> None:
    path = tmp_path / "c" / "http.jsonl"
    streamed = exchange((Chunk(0.0, b"data: 1\n\n"), Chunk(0.05, b"\xff\xfe")))
    with CassetteWriter(path) as writer:
        writer.write(exchange())
        writer.write(streamed)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(line["v"] == FORMAT_VERSION for line in lines)
    assert lines[0]["request"]["body"] == {"text": "é"}
    assert "base64" in lines[0]["response"]["body"]
    assert "body" not in lines[1]["response"] and lines[1]["response"]["chunks"][0] == {
        "t": 0.0,
        "text": "data: 1\n\n",
    }
    assert read_exchanges(path) == [exchange(), streamed]


def test_writer_appends_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "http.jsonl"
    with CassetteWriter(path) as writer:
        writer.write(exchange())
        assert path.read_bytes().endswith(b"\n")  # durable before close
    with CassetteWriter(path) as writer:
        writer.write(exchange())
    assert len(read_exchanges(path)) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"v": 2}', "version 2 is not supported"),
        ("[1]", "line must be an object"),
        ("{not json", "Expecting property name"),
        ('{"v": 1, "request": {}, "response": {}}', "request.method must be a string"),
    ],
)
def test_bad_lines_are_refused_with_their_line_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "http.jsonl"
    good = json.dumps(exchange().to_json())
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(CassetteError, match=f"http.jsonl:2: .*{message}"):
        read_exchanges(path)


def test_bad_base64_is_refused(tmp_path: Path) -> None:
    obj = exchange().to_json()
    obj["response"]["body"] = {"base64": "***"}
    path = tmp_path / "http.jsonl"
    path.write_text(json.dumps(obj))
    with pytest.raises(CassetteError, match="not valid base64"):
        read_exchanges(path)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(
    request_body=st.binary(max_size=200),
    response_body=st.binary(max_size=200),
    headers=st.lists(st.tuples(_text, _text), max_size=4),
    query=st.lists(st.tuples(_text, _text), max_size=3),
    chunks=st.none() | st.lists(st.tuples(st.floats(0, 100), st.binary(max_size=50)), max_size=4),
)
@settings(max_examples=60, deadline=None)
def test_any_exchange_round_trips_exactly(
    request_body: bytes,
    response_body: bytes,
    headers: list[tuple[str, str]],
    query: list[tuple[str, str]],
    chunks: list[tuple[float, bytes]] | None,
) -> None:
    streamed = tuple(Chunk(round(t, 6), data) for t, data in chunks) if chunks is not None else None
    original = Exchange(
        RecordedRequest("PUT", "http", "h", 80, "/", tuple(query), tuple(headers), request_body),
        RecordedResponse(
            201,
            "Created",
            tuple(headers),
            b"".join(c.data for c in streamed) if streamed is not None else response_body,
            streamed,
        ),
    )
    assert Exchange.from_json(json.loads(json.dumps(original.to_json()))) == original


def hostile(tmp_path: Path, change: str) -> Path:
    obj = exchange((Chunk(0.0, b"data: 1\n\n"),)).to_json()
    where, _, value = change.partition("=")
    target = obj
    *parents, last = where.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[last] = json.loads(value)
    path = tmp_path / "http.jsonl"
    path.write_text(json.dumps(obj) + "\n")
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("request.port=99999", "request.port 99999 is out of range"),
        ("request.port=-1", "request.port -1 is out of range"),
        ("response.status=0", "response.status 0 is out of range"),
        ("response.status=123456", "response.status 123456 is out of range"),
        ("response.chunks.0.t=NaN", r"response.chunks\[\].t must be a finite number"),
        ("response.chunks.0.t=-1", r"response.chunks\[\].t must be a finite number"),
        ("duration=Infinity", "duration must be a finite number"),
        ("started=-5", "started must be a finite number"),
        ("duration=1e999", "duration must be a finite number"),
    ],
)
def test_values_out_of_range_are_refused(tmp_path: Path, change: str, message: str) -> None:
    with pytest.raises(CassetteError, match=f"http.jsonl:1: {message}"):
        read_exchanges(hostile(tmp_path, change))


@pytest.mark.parametrize("depth", [10_000, 1_000_000])
def test_deep_nesting_is_one_clear_cassette_error(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "http.jsonl"
    path.write_text('{"v": 1, "request": ' + "[" * depth + "]" * depth + "}\n")
    with pytest.raises(CassetteError) as caught:
        read_exchanges(path)
    assert str(caught.value) == f"{path}:1: nested too deeply to be an exchange"


def test_a_huge_line_is_refused_without_reading_past_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "http.jsonl"
    path.write_text(json.dumps(exchange().to_json()) + "\n" + '{"v": 1, "pad": "' + "x" * 5000 + '"}\n')
    with pytest.raises(CassetteError, match=r"http\.jsonl:2: line longer than 4096 bytes"):
        read_exchanges(path, max_line_bytes=4096)
