"""One-line messages for JSON Schema violations in files people write by hand (task files, configurations).

Input: a `jsonschema.ValidationError` (the best match). Output: `field: what was expected`, e.g.
`expect.max_model_calls: expected integer, got 'three'`. Rules: values are shown with repr and cut at 60
characters; a `pattern` or a `oneOf` is described in words when the caller says what it means.
"""

from __future__ import annotations

from collections.abc import Mapping

import jsonschema

__all__ = ["describe"]


def describe(error: jsonschema.ValidationError, words: Mapping[str, str] | None = None) -> str:
    """`field: expected ...` for `error`; `words` maps a schema pattern, or "oneOf", to what it means in
    words ("letters, digits, ...", "a string or a list of strings")."""
    return f"{_field(error)}: {_expected(error, words or {})}"


def _field(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _expected(error: jsonschema.ValidationError, words: Mapping[str, str]) -> str:
    v, value = error.validator, error.instance
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if v == "type":
        return f"expected {error.validator_value!s}, got {shown}"
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"expected the field {missing!r}"
    if v == "additionalProperties" and isinstance(value, dict):
        known = sorted((error.schema.get("properties") or {}).keys())
        extra = sorted(set(value) - set(known))
        return f"unknown field {extra[0]!r}; expected one of {', '.join(known)}"
    if v == "minItems":
        return f"expected at least {error.validator_value} item(s), got {shown}"
    if v == "minLength":
        return f"expected a non-empty string, got {shown}"
    if v == "oneOf" and "oneOf" in words:
        return f"expected {words['oneOf']}, got {shown}"
    if v == "pattern" and str(error.validator_value) in words:
        return f"expected {words[str(error.validator_value)]}, got {shown}"
    message = str(error.message)
    return message if len(message) <= 160 else message[:157] + "..."
