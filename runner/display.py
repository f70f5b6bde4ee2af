"""Text from strangers made safe to show on a terminal: every control character shown visibly.

Inputs: any text (a pack's agent name, argv, step reasons, error messages, tool output). Outputs: the same
text with each control character written as an escape (`\\x1b`, `\\u202e`), so nothing a pack holds can move
the cursor, clear the screen, set the window title, hide text or reorder it; and `Text` cells for rich.
Rules: C0 and C1 controls, DEL, and the Unicode bidirectional and invisible format controls are escaped;
a newline is kept only where the caller says several lines are expected. Rich markup is a separate matter:
the CLI's consoles never parse it (`runner.cli.common`), and a `Text` is never parsed at all.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["visible", "visible_text"]

# C0 (but newline, handled apart), DEL, C1; bidi embeddings/overrides/isolates; zero-width and BOM marks
# that make two different strings look the same. Private-use and other printable characters are left.
_CONTROL = "\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_UNSAFE = re.compile(f"[{_CONTROL}]")
_UNSAFE_OR_NEWLINE = re.compile(f"[{_CONTROL}\n]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.get(code) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    )


def visible(text: str, *, newlines: bool = False) -> str:
    """`text` with every control character escaped; with `newlines=True` line breaks stay line breaks."""
    return (_UNSAFE if newlines else _UNSAFE_OR_NEWLINE).sub(_escape, text)


def visible_text(text: str, style: str = "", *, newlines: bool = False) -> Text:
    """A rich `Text` of `visible(text)`: never parsed as markup, nothing raw reaches the terminal."""
    from rich.text import Text  # imported by what prints, not by what only escapes

    return Text(visible(text, newlines=newlines), style=style)
