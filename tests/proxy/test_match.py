"""Normalisation, matchers and the replay index."""

from __future__ import annotations

import json

import pytest

from proxy import match
from proxy.cassette import Exchange, RecordedRequest, RecordedResponse
from proxy.match import CassetteIndex, Normaliser


def req(
    body: object = None, *, path: str = "/v1/x", query: tuple[tuple[str, str], ...] = ()
) -> RecordedRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    return RecordedRequest("POST", "https", "API.example.com", 443, path, query, (), raw)


def test_json_bodies_compare_parsed_with_keys_in_any_order() -> None:
    norm = Normaliser()
    assert norm(req(b'{"a": 1, "b": [1, 2]}')).key == norm(req(b'{"b":[1,2],"a":1}')).key
    assert norm(req({"a": 1})).key != norm(req({"a": 2})).key


def test_bare_names_are_ignored_at_any_depth_dotted_names_only_at_their_path() -> None:
    norm = Normaliser(["user", "metadata.user_id"])
    base = norm(req({"m": [{"user": 1}], "metadata": {"user_id": 1}, "x": {"metadata": {"user_id": 5}}}))
    same = norm(req({"m": [{"user": 2}], "metadata": {"user_id": 2}, "x": {"metadata": {"user_id": 5}}}))
    other = norm(req({"m": [{"user": 2}], "metadata": {"user_id": 2}, "x": {"metadata": {"user_id": 6}}}))
    assert base.key == same.key
    assert base.key != other.key


def _reference_drop(
    value: object, path: tuple[str, ...], anywhere: set[str], paths: set[tuple[str, ...]]
) -> object:
    """Ignored fields removed by walking the whole value, as the rules say it, slowly."""
    if isinstance(value, dict):
        return {
            k: _reference_drop(v, (*path, k), anywhere, paths)
            for k, v in value.items()
            if k not in anywhere and (*path, k) not in paths
        }
    if isinstance(value, list):
        return [_reference_drop(v, path, anywhere, paths) for v in value]
    return value


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": [{"user_id": 1, "k": 2}, [{"user_id": 3}]], "user_id": 4},
        {"a": {"b": {"c": 1, "d": 2}, "c": 3}, "b": {"c": 4}},
        {"a": [{"b": [{"c": 1}, {"c": 2, "e": 0}]}], "user": {"a": {"b": {"c": 9}}}},
        {"metadata": {"user_id": {"user": 1}, "x.y": 2}, "x.y": 3, "x": {"y": 4}},
        [{"metadata": {"user_id": 1}}, {"user": 2}],
        {"metadata": None, "a": {"b": 5}},
    ],
)
def test_ignored_fields_go_exactly_as_a_walk_of_the_whole_body_drops_them(body: object) -> None:
    ignore = ["user", "metadata.user_id", "a.b.c", "x.y"]
    expected = _reference_drop(body, (), {"user"}, {("metadata", "user_id"), ("a", "b", "c"), ("x", "y")})
    canonical = json.dumps(expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert Normaliser(ignore)(req(body)).body == canonical


def test_non_json_bodies_compare_as_bytes() -> None:
    norm = Normaliser()
    assert norm(req(b"{not json")).body == b"{not json"
    assert norm(req(b"abc")).key != norm(req(b"abd")).key


def test_query_order_and_ignored_params_do_not_matter() -> None:
    norm = Normaliser(["timestamp"])
    a = norm(req(query=(("b", "2"), ("a", "1"), ("timestamp", "1"))))
    b = norm(req(query=(("a", "1"), ("b", "2"), ("timestamp", "2"))))
    assert a.key == b.key


@pytest.mark.parametrize(
    ("changed", "failing"),
    [
        (RecordedRequest("GET", "https", "api.example.com", 443, "/v1/x", (), (), b""), ["method"]),
        (RecordedRequest("POST", "http", "api.example.com", 443, "/v1/x", (), (), b""), ["scheme"]),
        (RecordedRequest("POST", "https", "other.example.com", 443, "/v1/x", (), (), b""), ["host"]),
        (RecordedRequest("POST", "https", "api.example.com", 8443, "/v1/x", (), (), b""), ["port"]),
        (RecordedRequest("POST", "https", "api.example.com", 443, "/v1/y", (), (), b""), ["path"]),
        (
            RecordedRequest("POST", "https", "api.example.com", 443, "/v1/x", (("q", "1"),), (), b""),
            ["query"],
        ),
        (RecordedRequest("POST", "https", "api.example.com", 443, "/v1/x", (), (), b"x"), ["body"]),
    ],
)
def test_each_matcher_names_its_difference(changed: RecordedRequest, failing: list[str]) -> None:
    norm = Normaliser()
    found = match.failures(norm(changed), norm(req()))
    assert [f.matcher for f in found] == failing
    assert all(f.difference for f in found)
    with pytest.raises(AssertionError):
        getattr(match, failing[0])(norm(changed), norm(req()))


def test_index_takes_in_order_and_nearest_prefers_fewest_failures() -> None:
    response = RecordedResponse(200, "OK", (), b"")
    exchanges = [
        Exchange(req({"q": 1}), response),
        Exchange(req({"q": 1}, path="/other"), response),
        Exchange(req({"q": 1}), response),
    ]
    norm = Normaliser()
    index = CassetteIndex(exchanges, norm)
    assert index.take(norm(req({"q": 1}))) == 0
    assert index.take(norm(req({"q": 1}))) == 2
    assert index.take(norm(req({"q": 1}))) is None
    nearest = index.nearest(norm(req({"q": 2}, path="/other")))
    assert nearest[0].index == 1 and [f.matcher for f in nearest[0].failed] == ["body"]
    assert '- "q": 1' in nearest[0].failed[0].difference and '+ "q": 2' in nearest[0].failed[0].difference
    assert index.unused() == [1]
