"""Whether a regular expression sees one line at a time: then it can run over many lines in one call.

Input: a compiled `re.Pattern[str]`. Output: `line_local(pattern)`, True when no match of the pattern takes
a line break, looks at one (lookbehind, lookahead) or depends on where the text starts or ends (`^`, `$`,
`\\A`, `\\Z`; `\\b` and `\\B` are fine: a line break is not a word character, as nothing is). Then applying
it to lines joined by `\\n` gives exactly what applying it to each line alone gives: the same matches at
the same places, in the same order.
Rules: decided on the parsed pattern (the standard library's parser), never by trying it on text; a
construct the check does not know (a back reference, a conditional group, a pattern it cannot parse)
gives False, so callers keep going line by line.
Standard library only: this module runs inside the proxy sidecar.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

with warnings.catch_warnings():  # the parser module is deprecated as a name, not as a parser
    warnings.simplefilter("ignore", DeprecationWarning)
    import sre_parse as _sre

__all__ = ["line_local"]

_NEWLINE = ord("\n")
# Categories (`\s`, `\D`, `\W` ...) a line break belongs to.
_HOLDING_NEWLINE = {_sre.CATEGORY_SPACE, _sre.CATEGORY_NOT_DIGIT, _sre.CATEGORY_NOT_WORD}
_BOUNDARIES = {_sre.AT_BOUNDARY, _sre.AT_NON_BOUNDARY}


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
