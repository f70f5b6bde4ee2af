"""The strict YAML reader on both parsers: libyaml's (taken whenever PyYAML has it, composing the nodes
itself) and the pure-Python fallback give the same trees and refuse the same texts with the same messages."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from yaml._yaml import CParser

from runner.pack import strictyaml

LOADERS = {"libyaml": strictyaml._StrictLoader, "pure": strictyaml._PureLoader}


def _load_with(name: str, text: str | bytes, monkeypatch: pytest.MonkeyPatch, max_depth: int = 64) -> Any:
    monkeypatch.setattr(strictyaml, "_StrictLoader", LOADERS[name])
    return strictyaml.load(text, max_depth=max_depth)


def test_libyaml_reads_the_text_when_pyyaml_has_it() -> None:
    assert yaml.__with_libyaml__, "PyYAML without libyaml: manifests are parsed ten times slower"
    assert strictyaml.parser() == "libyaml"
    assert issubclass(strictyaml._StrictLoader, CParser)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", "line 3, column 1: duplicate key 'a', first given at line 1"),
        ("x: {name: a, name: b}\n", "line 1, column 14: duplicate key 'name', first given at line 1"),
        ("a: &x 1\nb: *x\n", "line 2, column 4: YAML aliases are not allowed"),
        ("a: [&x 1, *x]\n", "line 1, column 11: YAML aliases are not allowed"),
        # libyaml composes these with the alias sharing its anchor's node: the walk after it refuses them
        ("a: &x [1]\nb: *x\n", "line 2, column 4: YAML aliases are not allowed"),
        ("&a [*a, *a]\n", "line 1, column 5: YAML aliases are not allowed"),
        ("a: &a {b: *a}\n", "line 1, column 11: YAML aliases are not allowed"),
        ("- &a x\n- [[[*a]]]\n", "line 2, column 6: YAML aliases are not allowed"),
        ("a: *nope\n", "line 1, column 4: YAML aliases are not allowed"),
        ("a: {k: 1}\nb: {<<: {k: 2}}\n", "line 2, column 5: merge keys (<<) are not allowed"),
        ("x: " + "[" * 200 + "]" * 200 + "\n", "line 1, column 67: nested deeper than 64 levels"),
        ("x: " + "{a: " * 100 + "\n", "nested deeper than 64 levels"),
        ("x: " + "[" * 100_000 + "\n", "nested deeper than 64 levels"),
        ("x: " + "9" * 50 + "\n", "line 1, column 4: an integer of 50 characters is too long"),
        (
            "x: 18446744073709551616\n",
            "line 1, column 4: integer 18446744073709551616 is outside the 64-bit range",
        ),
        ("x: 2025-02-30\n", "line 1, column 4: '2025-02-30' is not a valid timestamp (day is out of range"),
        ("x: !!python/name:os.system\n", "line 1, column 4: could not determine a constructor"),
    ],
)
@pytest.mark.parametrize("name", LOADERS)
def test_both_parsers_refuse_with_the_same_message(
    name: str, text: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(strictyaml.YamlRefused) as caught:
        _load_with(name, text, monkeypatch)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "format_version: 1\nsession: {id: s, created_at: 2025-11-24T13:42:17Z}\nn: [1, -2, 0x1f, 1.5, .inf]\n",
        "a: 'quoted: text'\nb: |\n  block\n  text\nc: ~\nd: [yes, no, on, off]\ne: !!binary aGk=\n",
        "k: 18446744073709551615\nt: 2025-01-01\nset: !!set {a, b}\nempty: {}\n",
        b"\xef\xbb\xbfa: \xc3\xa9\n",
        "",
    ],
)
def test_both_parsers_build_the_same_tree(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _load_with("libyaml", text, monkeypatch)
    assert fast == _load_with("pure", text, monkeypatch)
    assert fast == yaml.load(text, Loader=yaml.SafeLoader)


def test_the_depth_cap_is_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    nested = "x: " + "[" * 10 + "]" * 10 + "\n"  # the top mapping and ten sequences: 11 levels
    for name in LOADERS:
        assert _load_with(name, nested, monkeypatch, max_depth=11) == {"x": [[[[[[[[[[]]]]]]]]]]}
        with pytest.raises(strictyaml.YamlRefused, match="nested deeper than 10 levels"):
            _load_with(name, nested, monkeypatch, max_depth=10)


def test_libyaml_composes_a_text_it_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event-by-event reading is only for texts the libyaml path refuses."""

    def refused(text: str | bytes, max_depth: int) -> Any:
        raise AssertionError("read event by event")

    monkeypatch.setattr(strictyaml, "_load_by_events", refused)
    text = "a: [1, {b: c}]\nd: 2025-01-01\n" + "".join(f"k{i}: {{x: [{i}]}}\n" for i in range(50))
    assert strictyaml.load(text, max_depth=4) == yaml.load(text, Loader=yaml.SafeLoader)
    with pytest.raises(AssertionError, match="event by event"):
        strictyaml.load(text, max_depth=3)


_TRICKY = ["", "null", "yes", "No", "~", "123", "0x1f", "1e3", ".inf", "2025-01-01", "<<", "=", "a: b", "- x"]
_TRICKY += [
    " lead",
    "trail ",
    "#x",
    "a\nb",
    "\t",
    "\x85",
    "\u2028",
    "é",
    "😀",
    "@x",
    "!x",
    "&a",
    "*a",
    "x\r\ny",
]
_SCALARS = st.one_of(
    st.text(), st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.none(), st.sampled_from(_TRICKY)
)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(_TRICKY), inner)
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(_DATA)
def test_dump_writes_what_pyyaml_writes(data: Any) -> None:
    text = strictyaml.dump(data)
    assert text == yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=100)


def test_dump_refuses_what_is_not_plain_data() -> None:
    with pytest.raises(TypeError, match="cannot write bytes values"):
        strictyaml.dump({"a": [b"x"]})


@pytest.mark.parametrize("name", LOADERS)
def test_a_lone_surrogate_is_refused_not_raised(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(strictyaml.YamlRefused):
        _load_with(name, "a: \ud800\n", monkeypatch)
