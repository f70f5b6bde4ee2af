"""`runner contract`: the prompts and tool schemas advertised to the model, checked against a baseline.

Inputs: the model calls of a pack; a baseline file (JSON, written by `--write-baseline`).
Outputs: a `Contract` (system prompts in first-seen order, tools by name with their JSON schema) and the
`Change`s from the baseline, each "widens", "narrows" or "prompt".
Rules: a change widens when the agent may now do something it could not: a new tool, a new enum value, a
new type, a new property, a removed `required` entry, a removed or raised maxLength/maximum/maxItems, a
removed or lowered minLength/minimum/minItems, a removed or changed pattern/format/const,
`additionalProperties` false -> true or absent. The reverse narrows. Widening fails the check; narrowing
passes with a note; prompt text changes are reported and fail only when prompts are strict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from runner.drift.calls import ModelCall
from runner.errors import UsageError

__all__ = [
    "BASELINE_FORMAT",
    "Change",
    "Contract",
    "compare",
    "contract_of",
    "read_baseline",
    "write_baseline",
]

BASELINE_FORMAT = 1
ChangeKind = Literal["widens", "narrows", "prompt"]
_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_EXACT = ("pattern", "format", "const", "multipleOf")


@dataclass(frozen=True)
class Contract:
    prompts: tuple[str, ...]
    tools: dict[str, Any]  # name -> {"description": ..., "schema": ...}


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    where: str  # "tool edit_file: properties.path.maxLength"
    detail: str


def _tool(tool: Any) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(tool, dict):
        return None
    fn: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
    name = fn.get("name")
    if not isinstance(name, str):
        return None
    schema = fn.get("parameters", fn.get("input_schema", {}))
    return name, {"description": fn.get("description"), "schema": schema}


def _prompts(call: ModelCall) -> list[str]:
    found = [call.request[k] for k in ("system", "instructions") if isinstance(call.request.get(k), str)]
    for m in call.request.get("messages") or []:
        if isinstance(m, dict) and m.get("role") in ("system", "developer"):
            content = m.get("content")
            found.append(content if isinstance(content, str) else json.dumps(content, sort_keys=True))
    return found


def contract_of(calls: tuple[ModelCall, ...]) -> Contract:
    prompts: list[str] = []
    tools: dict[str, Any] = {}
    for call in calls:
        prompts += [p for p in _prompts(call) if p not in prompts]
        for tool in call.request.get("tools") or []:
            named = _tool(tool)
            if named and named[0] not in tools:
                tools[named[0]] = named[1]
    return Contract(tuple(prompts), tools)


def write_baseline(contract: Contract, path: Path) -> None:
    data = {"format": BASELINE_FORMAT, "prompts": list(contract.prompts), "tools": contract.tools}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_baseline(path: Path) -> Contract:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"no baseline at {path}; write one with --write-baseline") from None
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(
            f"baseline {path} is not readable JSON ({e}); write it again with --write-baseline"
        ) from e
    if (not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT
            or not isinstance(data.get("prompts"), list) or not isinstance(data.get("tools"), dict)):  # fmt: skip
        raise UsageError(
            f"baseline {path} is not a contract baseline (format {BASELINE_FORMAT}); write it again"
        )
    return Contract(tuple(str(p) for p in data["prompts"]), data["tools"])


def _v(value: Any) -> str:
    return "none" if value is None else json.dumps(value)


def _types(schema: dict[str, Any]) -> set[str] | None:
    t = schema.get("type")
    if t is None:
        return None  # any type
    types = set(t) if isinstance(t, list) else {str(t)}
    if "number" in types:
        types.add("integer")
    return types


def _schema(old: Any, new: Any, where: str, out: list[Change]) -> None:
    if not isinstance(old, dict) or not isinstance(new, dict):
        if old != new:
            out.append(Change("widens", where or "schema", "the schema changed shape"))
        return
    at = f"{where}." if where else ""
    ot, nt = _types(old), _types(new)
    if ot != nt:
        kind: ChangeKind = "widens" if nt is None or (ot is not None and not nt <= ot) else "narrows"
        out.append(Change(kind, f"{at}type", f"{old.get('type')} -> {new.get('type')}"))
    if old.get("enum") != new.get("enum"):
        oe, ne = old.get("enum"), new.get("enum")
        if ne is None or (isinstance(oe, list) and any(v not in oe for v in ne)):
            added = "removed" if ne is None else ", ".join(json.dumps(v) for v in ne if v not in (oe or []))
            out.append(Change("widens", f"{at}enum", f"new values: {added}"))
        else:
            out.append(Change("narrows", f"{at}enum", f"{oe} -> {ne}"))
    oreq, nreq = set(old.get("required") or []), set(new.get("required") or [])
    if oreq - nreq:
        out.append(Change("widens", f"{at}required", f"no longer required: {', '.join(sorted(oreq - nreq))}"))
    if nreq - oreq:
        out.append(Change("narrows", f"{at}required", f"now required: {', '.join(sorted(nreq - oreq))}"))
    for key in (*_UPPER, *_LOWER):
        ov, nv = old.get(key), new.get(key)
        if ov == nv:
            continue
        upper = key in _UPPER
        looser = nv is None or (ov is not None and (nv > ov if upper else nv < ov))
        out.append(Change("widens" if looser else "narrows", f"{at}{key}", f"{_v(ov)} -> {_v(nv)}"))
    for key in _EXACT:
        if old.get(key) != new.get(key):
            looser = old.get(key) is not None
            detail = f"{_v(old.get(key))} -> {_v(new.get(key))}"
            out.append(Change("widens" if looser else "narrows", f"{at}{key}", detail))
    oa, na = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(oa, dict) and isinstance(na, dict):
        _schema(oa, na, f"{at}additionalProperties", out)
    elif oa != na and not (oa in (None, True) and na in (None, True)):
        looser = oa is False or (isinstance(oa, dict) and na in (None, True))
        out.append(Change("widens" if looser else "narrows", f"{at}additionalProperties", f"{oa} -> {na}"))
    op, np_ = old.get("properties") or {}, new.get("properties") or {}
    for name in sorted(set(np_) - set(op)):
        out.append(Change("widens", f"{at}properties.{name}", "new property"))
    for name in sorted(set(op) - set(np_)):
        out.append(Change("narrows", f"{at}properties.{name}", "property removed"))
    for name in sorted(set(op) & set(np_)):
        _schema(op[name], np_[name], f"{at}properties.{name}", out)
    if "items" in old or "items" in new:
        _schema(old.get("items", {}), new.get("items", {}), f"{at}items", out)
    for key in ("anyOf", "oneOf"):
        ob, nb = old.get(key) or [], new.get(key) or []
        if any(b not in ob for b in nb):
            out.append(Change("widens", f"{at}{key}", "new alternatives"))
        elif ob != nb:
            out.append(Change("narrows", f"{at}{key}", "alternatives removed"))


def compare(baseline: Contract, current: Contract) -> tuple[Change, ...]:
    out: list[Change] = []
    for name in sorted(set(current.tools) - set(baseline.tools)):
        out.append(Change("widens", f"tool {name}", "new tool"))
    for name in sorted(set(baseline.tools) - set(current.tools)):
        out.append(Change("narrows", f"tool {name}", "tool removed"))
    for name in sorted(set(baseline.tools) & set(current.tools)):
        found: list[Change] = []
        _schema(baseline.tools[name].get("schema"), current.tools[name].get("schema"), "", found)
        out += [Change(c.kind, f"tool {name}: {c.where}", c.detail) for c in found]
        if baseline.tools[name].get("description") != current.tools[name].get("description"):
            out.append(Change("prompt", f"tool {name}: description", "text changed"))
    for p in current.prompts:
        if p not in baseline.prompts:
            out.append(Change("prompt", "prompt", f"new or changed: {p[:80]!r}"))
    for p in baseline.prompts:
        if p not in current.prompts:
            out.append(Change("prompt", "prompt", f"gone: {p[:80]!r}"))
    return tuple(out)
