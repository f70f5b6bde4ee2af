"""A member's text as the redaction pass reads it: any bytes as text, JSON members value by value.

Input: member bytes or text and its name. Output: its text (`text_of`: bytes that are not UTF-8 become lone
surrogates and come back as they were), its lines (`lines_of`), or its text with a function applied to
every text part (`rewrite_text`); the bytes a view shows (`bytes_of`, without a copy when they are a whole
bytes object). Rules: JSON members (.json, and each line of .jsonl) stay valid JSON:
keys and string values are rewritten one by one, a list of strings can be taken as a whole (an argv), and
a value that did not change leaves its line byte for byte as it was; a line that is not JSON is text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["bytes_of", "lines_of", "rewrite_text", "text_of"]


def bytes_of(data: bytes | memoryview) -> bytes:
    """The bytes `data` shows: the bytes object a view covers whole (bytes cannot change), else a copy. A
    copy of a member is made holding the interpreter's lock, which the other threads of a build wait for."""
    if isinstance(data, bytes):
        return data
    whole = data.obj
    return whole if type(whole) is bytes and data.nbytes == len(whole) else bytes(data)


def text_of(data: bytes) -> str:
    """A member's text: bytes that are not UTF-8 become lone surrogates (surrogateescape), which the
    detectors step over and `.encode("utf-8", "surrogateescape")` turns back into the same bytes."""
    return data.decode("utf-8", "surrogateescape")


def lines_of(text: str) -> list[str]:
    """Lines with their `\n`; str.splitlines would also split on characters JSON strings may hold raw."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def rewrite_text(
    name: str,
    text: str,
    on_text: Callable[[str], str],
    on_value: Callable[[str, str], str],
    on_strings: Callable[[list[str]], list[str]] | None = None,
) -> str:
    """Apply `on_text` to a member's text; JSON members (.json, .jsonl lines) value by value instead, with
    `on_value(key, value)` for string values under a key and `on_strings` (when given) for a list of
    strings as a whole (an argv, where `--password` and its value are two items), so the result stays
    valid JSON."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return on_text(value)
        if isinstance(value, list):
            if on_strings is not None and value and all(isinstance(v, str) for v in value):
                return on_strings(value)
            return [walk(v) for v in value]
        if isinstance(value, dict):
            # Keys are text too: a secret can be an object's key ({"sk-...": "prod"}).
            return {on_text(k): on_value(k, v) if isinstance(v, str) else walk(v) for k, v in value.items()}
        return value

    def json_text(line: str) -> str:
        if not line.strip():
            return line
        try:
            parsed = json.loads(line)
        except ValueError:
            return on_text(line)
        cleaned = walk(parsed)
        if cleaned == parsed:
            return line
        end = line[len(line.rstrip("\r\n")) :]
        out = json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"))
        try:
            out.encode("utf-8", "surrogateescape")  # raw bytes read through surrogateescape go back raw
        except UnicodeEncodeError:  # a `\ud800` escape in the JSON: it stays an escape
            out = json.dumps(cleaned, separators=(",", ":"))
        return out + end

    if name.endswith(".jsonl"):
        return "".join(json_text(line) for line in lines_of(text))
    if name.endswith(".json"):
        return json_text(text)
    return on_text(text)
