"""A pattern judged line-local gives over joined lines what it gives line by line; `first_fullmatch` names the
first pattern matching a whole text, as trying them one by one does."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detectors import DETECTORS, EXTRA_DETECTORS
from proxy.patterns import first_fullmatch, line_local

LOCAL = [d.pattern for d in DETECTORS + EXTRA_DETECTORS if line_local(d.pattern)]
PIECES = ["user@example.com", "(555) 123-4567", "10.0.0.1", "X-Api-Token: abc123", "Cookie: a=b", " ", "-"]


@pytest.mark.parametrize(
    ("source", "local"),
    [
        (r"[a-z]+@[a-z]+\.com\b", True),
        (r"(?<![\w-])\d{3}-\d{4}(?![\w-])", True),
        (r"a.b", True),
        (r"[^\n]+", True),
        (r"\S+", True),
        (r"(?s)a.b", False),
        (r"a(?s:.)b", False),
        (r"a\s*=", False),
        (r"[^=]", False),
        (r"\W", False),
        (r"a(?==[^=])", False),
        (r"(?<=\s)a", False),
        (r"^a", False),
        (r"a$", False),
        (r"a\Z", False),
        (r"(a)\1", False),
    ],
)
def test_constructs_that_take_or_see_a_line_break_are_not_line_local(source: str, local: bool) -> None:
    assert line_local(re.compile(source)) is local


def test_the_anchored_detectors_that_run_over_many_lines_at_once() -> None:
    kinds = {d.kind for d in DETECTORS + EXTRA_DETECTORS if d.anchors and line_local(d.pattern)}
    assert kinds == {"header", "email", "phone", "ip-address"}  # assignment and aws-secret-key look past


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(st.sampled_from(PIECES), st.text(alphabet="ab1@.-_ :=()\"'\t", max_size=12)), max_size=6
        ).map("".join),
        min_size=2,
        max_size=6,
    )
)
def test_joined_lines_give_what_each_line_gives(lines: list[str]) -> None:
    for pattern in LOCAL:
        each = "\n".join(pattern.sub(lambda m: f"<{m.group(0)}>", line) for line in lines)
        assert pattern.sub(lambda m: f"<{m.group(0)}>", "\n".join(lines)) == each


SHAPES = tuple(d.pattern for d in DETECTORS + EXTRA_DETECTORS if "s" not in d.pattern.groupindex)
VALUES = [
    "sk-proj-" + "a1" * 20,
    "sk-ant-api03-" + "b2" * 20,
    "ghp_" + "c" * 36,
    "AKIA" + "D" * 16,
    "user@example.com",
    "+1 555 123 4567",
    "10.0.0.1",
    "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
    "opaque",
    "",
]


def one_by_one(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    return next((i for i, p in enumerate(patterns) if p.fullmatch(text)), None)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.sampled_from(VALUES), st.text(alphabet="sk-ATKIghp_ab1@.+ \n", max_size=50)))
def test_the_first_whole_match_is_the_one_trying_each_in_order_finds(text: str) -> None:
    assert first_fullmatch(SHAPES)(text) == one_by_one(SHAPES, text)


@pytest.mark.parametrize(
    "patterns",
    [
        (re.compile(r"ab"), re.compile(r"a.", re.S), re.compile(r"(?i)A\n?B")),
        (re.compile(r"(a)\1"), re.compile(r"aa")),  # a back reference: tried one by one
        (re.compile(r"a # x", re.X), re.compile(r"a")),  # verbose: tried one by one
    ],
)
def test_flags_and_back_references_keep_their_meaning(patterns: tuple[re.Pattern[str], ...]) -> None:
    for text in ["ab", "a\nb", "A\nb", "aa", "a", "x"]:
        assert first_fullmatch(patterns)(text) == one_by_one(patterns, text), text
