"""Typed JSON: any mix of supported values survives a trip through a JSON file; pickles never load unasked."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner import typedjson
from runner.errors import DebugError
from runner.observability import SPAN_OUTPUT, Span

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes()
    | st.decimals(allow_nan=False)
    | st.uuids()
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner), max_leaves=8)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner)
        | st.dictionaries(hashables, inner)
        | st.sets(hashables)
    ),
    max_leaves=25,
)


@given(values)
def test_round_trip_through_json_text(value: Any) -> None:
    text = json.dumps(typedjson.encode(value))
    assert typedjson.decode(json.loads(text)) == value


@given(st.dictionaries(st.text(), st.integers(), max_size=3))
def test_dicts_that_look_like_tags_stay_dicts(value: dict[str, int]) -> None:
    tagged = {f"${k}": v for k, v in value.items()}
    assert typedjson.decode(json.loads(json.dumps(typedjson.encode(tagged)))) == tagged


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_in_a_recorded_span_output_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    span = Span(
        "a" * 32, "b" * 16, None, "llm", 1, 2, attributes={SPAN_OUTPUT: json.dumps({"$pickle": payload})}
    )
    with pytest.raises(DebugError, match=r"pickle payload \(would import posix.system\)"):
        _ = span.output
    assert typedjson.find_pickles(json.loads(str(span.attributes[SPAN_OUTPUT])))[0][0] == "state"
    assert not marker.exists()


def test_lenient_encoding_keeps_a_repr_that_cannot_be_mistaken_for_the_value() -> None:
    value = typedjson.loads(typedjson.dumps({"client": object()}))
    assert isinstance(value["client"], typedjson.Unrepresentable)
    assert value["client"].type_name == "builtins:object"
    with pytest.raises(DebugError, match="typed JSON cannot hold"):
        typedjson.encode(object())


def test_nesting_past_max_depth_is_refused_before_decoding_and_the_limit_itself_decodes() -> None:
    def nested(levels: int) -> typedjson.Json:
        data: typedjson.Json = 1
        for _ in range(levels):
            data = [data]
        return data

    assert typedjson.decode(nested(typedjson.MAX_DEPTH)) is not None
    with pytest.raises(DebugError, match="nested more than 200 levels deep"):
        typedjson.decode(nested(typedjson.MAX_DEPTH + 1))


@dataclasses.dataclass
class _Box:
    v: Any


_WRAPPERS = {  # each wraps a value as `encode` would, some levels deeper in JSON
    "list": lambda x: [x],
    "object": lambda x: {"k": x},
    "tuple": lambda x: {"$tuple": [x]},
    "dict": lambda x: {"$dict": [[1, x]]},
    "dataclass": lambda x: {"$dataclass": {"type": f"{__name__}:_Box", "fields": {"v": x}}},
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(_WRAPPERS)), min_size=60, max_size=110), st.sampled_from([1, [1]]))
def test_decoding_refuses_exactly_the_data_the_depth_walk_refuses(wrappers: list[str], leaf: Any) -> None:
    """The depth is checked while decoding (without allow_pickle): the same data as the walk ahead refuses."""
    data: typedjson.Json = leaf
    for name in wrappers:
        data = _WRAPPERS[name](data)
    try:
        typedjson._check_depth(data, "state")
        walk = None
    except DebugError as e:
        walk = str(e)
    try:
        typedjson.decode(data)
        decoded = None
    except DebugError as e:
        decoded = str(e)
    assert decoded == walk
    assert decoded is None or "nested more than 200 levels deep" in decoded


@pytest.mark.parametrize(
    "text",
    [
        '{"$timedelta": [1e300, 0, 0]}',
        '{"$timedelta": [99999999999999999999, 0, 0]}',
        "1" * 5000,
        "[" * 50_000,
    ],
)
def test_loads_turns_overflow_huge_numbers_and_deep_json_into_debug_errors(text: str) -> None:
    with pytest.raises(DebugError) as info:
        typedjson.loads(text)
    assert "\n" not in str(info.value)


def test_encoding_state_nested_past_the_stack_is_a_debug_error() -> None:
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(DebugError, match="nested too deeply to encode"):
        typedjson.encode({"k": deep})


_TAGS = st.sampled_from(
    ["$tuple", "$set", "$dict", "$timedelta", "$complex", "$float", "$bytes", "$datetime", "$date", "$time",
     "$decimal", "$uuid", "$path", "$enum", "$dataclass", "$repr", "$pickle", "$nope"]
)  # fmt: skip
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["1e999", "nan", "-inf", "0000-01-01", "9" * 30, "os:system"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    | st.builds(lambda tag, arg: {tag: arg}, _TAGS, inner)
    | st.builds(
        lambda tag, ref, value: {tag: {"type": ref, "value": value, "fields": value}},
        st.sampled_from(["$enum", "$dataclass", "$repr"]),
        st.sampled_from(["os:path", "json:JSONDecoder", "runner.typedjson:Unrepresentable", "x:\nA"]),
        inner,
    ),
    max_leaves=30,
)  # fmt: skip


@given(_ANY_JSON)
def test_decoding_any_json_gives_a_value_or_a_one_line_debug_error(data: Any) -> None:
    try:
        typedjson.decode(data)
    except DebugError as e:
        assert "\n" not in str(e)
