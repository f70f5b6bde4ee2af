"""What the redactor knows of its regular expressions, so it runs fewer, larger regex calls, same results.

Input: compiled `re.Pattern[str]`s. Output:
- `line_local(pattern)`: True when no match of the pattern takes a line break, looks at one (lookbehind,
  lookahead) or depends on where the text starts or ends (`^`, `$`, `\\A`, `\\Z`; `\\b` and `\\B` are
  fine: a line break is not a word character, as nothing is). Then the pattern over lines joined by `\\n`
  gives exactly what it gives on each line alone: the same matches at the same places, in the same order.
- `first_fullmatch(patterns)`: a function giving the index of the first pattern matching a whole text, in
  one regex call (the patterns as one alternation, which tries them in order).
- `adjacent(spans)`: line spans with each run of adjacent lines as one (where a line-local pattern runs once).
Rules: decided on the parsed pattern (the standard library's parser), never by trying it on text; a
construct the check does not know (a back reference, a conditional group, a pattern it cannot parse)
gives False; patterns that do not join (a back reference, verbose or ASCII flags) are tried one by one.
Standard library only: this module runs inside the proxy sidecar.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Callable
from typing import Any

with warnings.catch_warnings():  # the parser module is deprecated as a name, not as a parser
    warnings.simplefilter("ignore", DeprecationWarning)
    import sre_parse as _sre

__all__ = ["adjacent", "first_fullmatch", "line_local"]

_NEWLINE = ord("\n")
# Categories (`\s`, `\D`, `\W` ...) a line break belongs to.
_HOLDING_NEWLINE = {_sre.CATEGORY_SPACE, _sre.CATEGORY_NOT_DIGIT, _sre.CATEGORY_NOT_WORD}
_BOUNDARIES = {_sre.AT_BOUNDARY, _sre.AT_NON_BOUNDARY}
_SCOPED = {re.I: "i", re.M: "m", re.S: "s"}  # flags an alternative can carry as `(?ims:...)`
_BACKREF = re.compile(r"\\[1-9]|\(\?P=")


@functools.lru_cache(maxsize=64)
def first_fullmatch(patterns: tuple[re.Pattern[str], ...]) -> Callable[[str], int | None]:
    """A function giving the index of the first of `patterns` that matches a whole text (None: none does)."""
    joined = _joined(patterns)
    if joined is None:
        return lambda text: next((i for i, p in enumerate(patterns) if p.fullmatch(text)), None)

    def first(text: str) -> int | None:
        m = joined.fullmatch(text)  # the first alternative that matches the whole text, named `_<i>`
        return int(m.lastgroup[1:]) if m and m.lastgroup else None

    return first


def _joined(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str] | None:
    if any(_BACKREF.search(p.pattern) or p.flags & ~(re.U | sum(_SCOPED)) for p in patterns):
        return None  # a back reference would point at another group once joined
    parts = []
    for i, p in enumerate(patterns):
        flags = "".join(c for f, c in _SCOPED.items() if p.flags & f)
        parts.append(f"(?P<_{i}>(?{flags}:{p.pattern}))")
    try:
        return re.compile("|".join(parts))
    except re.error:
        return None


@functools.lru_cache(maxsize=256)
def line_local(pattern: re.Pattern[str]) -> bool:
    """Whether `pattern` matches within lines and sees nothing of the lines around (see the module)."""
    try:
        parsed = _sre.parse(pattern.pattern, pattern.flags)
    except (re.error, RecursionError, OverflowError):
        return False
    return _local(parsed, bool(pattern.flags & re.S))


def _local(items: Any, dotall: bool) -> bool:
    for op, av in items:
        if op in (_sre.LITERAL, _sre.NOT_LITERAL):
            if (av == _NEWLINE) == (op is _sre.LITERAL):
                return False
        elif op is _sre.ANY:
            if dotall:
                return False
        elif op is _sre.IN:
            if _takes_newline(av):
                return False
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            if not _local(av[2], dotall):
                return False
        elif op is _sre.SUBPATTERN:
            _group, add, remove, body = av
            inner = (dotall or bool(add & re.S)) and not remove & re.S
            if not _local(body, inner):
                return False
        elif op is _sre.BRANCH:
            if not all(_local(branch, dotall) for branch in av[1]):
                return False
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            if not _local(av[1], dotall):
                return False
        elif op is _sre.ATOMIC_GROUP:
            if not _local(av, dotall):
                return False
        elif op is _sre.AT:
            if av not in _BOUNDARIES:
                return False
        else:  # back references, conditional groups, anything newer: not judged
            return False
    return True


def _takes_newline(items: list[tuple[Any, Any]]) -> bool:
    """Whether a character class (`[...]`, `\\s`, `\\d`) holds the line break."""
    negate, held = False, False
    for op, av in items:
        if op is _sre.NEGATE:
            negate = True
        elif op is _sre.LITERAL:
            held |= av == _NEWLINE
        elif op is _sre.RANGE:
            held |= av[0] <= _NEWLINE <= av[1]
        elif op is _sre.CATEGORY:
            held |= av in _HOLDING_NEWLINE
        else:  # a class the check does not know: count it as taking one
            return True
    return held != negate


def adjacent(lines: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted line spans (end at the line's `\n`), each run of adjacent ones as one span."""
    out = [lines[0]]
    for start, end in lines[1:]:
        if start == out[-1][1] + 1:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out
