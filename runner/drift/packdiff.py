"""`runner diff`: two recordings side by side, first difference first.

Inputs: two unpacked packs. Output: `Difference`s in this order: per model call (its parameters, then its
prompt messages, then its tool schemas, then its answer), the number of model calls, the environment
(manifest fields, then the package list), the patches, the command steps (argv, exit code, stdout, stderr).
Rules: what differs between any two recordings by nature (session ids, timestamps, span ids, digests) is
not compared; values are shown as compact JSON cut to a readable length; text members show their first
differing line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from runner.drift.calls import ModelCall, model_calls
from runner.pack.model import CommandStep, PatchStep
from runner.pack.read import UnpackedPack

__all__ = ["Difference", "diff_packs"]

_SHOWN = 160
_PROMPT_KEYS = ("system", "instructions", "messages", "input")
_LATER_KEYS = frozenset({*_PROMPT_KEYS, "tools"})
_ABSENT: Any = object()  # a key or line one side does not have


@dataclass(frozen=True)
class Difference:
    area: str  # "model call", "model calls", "environment", "patch", "step"
    where: str  # "call #2", "step s3", ...
    what: str  # "temperature", "messages[1]", "stdout line 4", ...
    a: str
    b: str

    def line(self) -> str:
        return f"{self.where}: {self.what}: {self.a} vs {self.b}"


def _show(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _first_line_difference(a: str, b: str) -> tuple[str, str, str] | None:
    if a == b:
        return None
    la, lb = a.splitlines(), b.splitlines()
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x != y:
            return (
                f"line {i + 1}",
                _show(x if x is not None else _ABSENT),
                _show(y if y is not None else _ABSENT),
            )
    return "line endings", _show(a[-40:]), _show(b[-40:])


def _calls(a: tuple[ModelCall, ...], b: tuple[ModelCall, ...]) -> list[Difference]:
    out: list[Difference] = []
    for ca, cb in zip(a, b, strict=False):
        where = f"call #{ca.number}"
        params = sorted((set(ca.request) | set(cb.request)) - _LATER_KEYS)
        for key in params:
            va, vb = ca.request.get(key, _ABSENT), cb.request.get(key, _ABSENT)
            if va != vb:
                out.append(Difference("model call", where, key, _show(va), _show(vb)))
        for key in _PROMPT_KEYS:
            va, vb = ca.request.get(key, _ABSENT), cb.request.get(key, _ABSENT)
            if va == vb:
                continue
            if isinstance(va, list) and isinstance(vb, list):
                i = next(
                    (i for i, (x, y) in enumerate(zip(va, vb, strict=False)) if x != y), min(len(va), len(vb))
                )
                xa = va[i] if i < len(va) else _ABSENT
                xb = vb[i] if i < len(vb) else _ABSENT
                out.append(Difference("model call", where, f"{key}[{i}]", _show(xa), _show(xb)))
            else:
                out.append(Difference("model call", where, key, _show(va), _show(vb)))
        ta, tb = ca.request.get("tools", _ABSENT), cb.request.get("tools", _ABSENT)
        if ta != tb:
            out.append(Difference("model call", where, "tools", _show(ta), _show(tb)))
        if ca.answer != cb.answer:
            out.append(
                Difference("model call", where, "answer", _show(asdict(ca.answer)), _show(asdict(cb.answer)))
            )
    if len(a) != len(b):
        out.append(Difference("model calls", "session", "number of model calls", str(len(a)), str(len(b))))
    return out


def _member_text(up: UnpackedPack, name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return (up.path / name).read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _environment(a: UnpackedPack, b: UnpackedPack) -> list[Difference]:
    out: list[Difference] = []
    ea, eb = asdict(a.manifest.environment), asdict(b.manifest.environment)
    for key in sorted(set(ea) | set(eb)):
        if key == "snapshot":
            sa, sb = ea.get(key) or {}, eb.get(key) or {}
            for sub in sorted((set(sa) | set(sb)) - {"packages"}):
                if sa.get(sub) != sb.get(sub):
                    out.append(Difference("environment", "environment", f"snapshot.{sub}",
                                          _show(sa.get(sub)), _show(sb.get(sub))))  # fmt: skip
        elif key != "lockfiles" and ea.get(key) != eb.get(key):
            out.append(Difference("environment", "environment", key, _show(ea.get(key)), _show(eb.get(key))))
    pa = a.manifest.environment.snapshot.packages if a.manifest.environment.snapshot else None
    pb = b.manifest.environment.snapshot.packages if b.manifest.environment.snapshot else None
    la, lb = set((_member_text(a, pa) or "").splitlines()), set((_member_text(b, pb) or "").splitlines())
    for line in sorted(la - lb):
        out.append(Difference("environment", "packages", "only in A", _show(line), "(absent)"))
    for line in sorted(lb - la):
        out.append(Difference("environment", "packages", "only in B", "(absent)", _show(line)))
    return out


def _patch_text(up: UnpackedPack, name: str) -> str:
    # `index <blob>..<blob>` lines name git objects: they differ whenever any line does, so they would
    # always be the first difference and hide the line that changed. Kept as "index" so lines keep their numbers.
    text = _member_text(up, name) or ""
    return "\n".join("index" if line.startswith("index ") else line for line in text.splitlines())


def _patches(a: UnpackedPack, b: UnpackedPack) -> list[Difference]:
    out: list[Difference] = []
    pa = [s for s in a.manifest.steps if isinstance(s, PatchStep)]
    pb = [s for s in b.manifest.steps if isinstance(s, PatchStep)]
    for i, (x, y) in enumerate(zip(pa, pb, strict=False), start=1):
        found = _first_line_difference(_patch_text(a, x.patch), _patch_text(b, y.patch))
        if found:
            out.append(Difference("patch", f"patch #{i}", f"diff {found[0]}", found[1], found[2]))
    if len(pa) != len(pb):
        out.append(Difference("patch", "session", "number of patches", str(len(pa)), str(len(pb))))
    return out


def _artifact_text(up: UnpackedPack, sha: str | None) -> str | None:
    return None if sha is None else _member_text(up, f"artifacts/sha256/{sha}")


def _steps(a: UnpackedPack, b: UnpackedPack) -> list[Difference]:
    out: list[Difference] = []
    sa = [s for s in a.manifest.steps if isinstance(s, CommandStep)]
    sb = [s for s in b.manifest.steps if isinstance(s, CommandStep)]
    for i, (x, y) in enumerate(zip(sa, sb, strict=False), start=1):
        where = f"step #{i}"
        if x.argv != y.argv:
            out.append(Difference("step", where, "argv", _show(list(x.argv)), _show(list(y.argv))))
        if x.expect.exit_code != y.expect.exit_code:
            out.append(
                Difference("step", where, "exit code", str(x.expect.exit_code), str(y.expect.exit_code))
            )
        for stream in ("stdout", "stderr"):
            ta = _artifact_text(a, getattr(x.expect, stream))
            tb = _artifact_text(b, getattr(y.expect, stream))
            found = _first_line_difference(ta or "", tb or "")
            if found:
                out.append(Difference("step", where, f"{stream} {found[0]}", found[1], found[2]))
    if len(sa) != len(sb):
        out.append(Difference("step", "session", "number of command steps", str(len(sa)), str(len(sb))))
    return out


def diff_packs(a: UnpackedPack, b: UnpackedPack) -> tuple[Difference, ...]:
    """Every difference between two recordings, the first one first (see the module rules for the order)."""
    return (
        *_calls(model_calls(a), model_calls(b)),
        *_environment(a, b),
        *_patches(a, b),
        *_steps(a, b),
    )
