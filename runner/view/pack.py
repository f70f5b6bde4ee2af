"""The view of one pack: its spans as compact rows, each span's details, the environment and privacy.

Input: an unpacked pack folder and its `Manifest` (masked as built, or revealed by `runner.privacy.access`).
Output: a JSON-able dict (`pack_view`). Rules: every text is capped (`MAX_TEXT`) and binary data is named,
not embedded; a span's details are data only (the page builds their DOM when the span is clicked); a
member or cassette line that does not parse is shown as an error text, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.pack.manifest import CommandStep, Manifest, PatchStep
from runner.pack.traces import SPAN_INPUT, SPAN_OUTPUT, Span, read_spans

__all__ = ["MAX_TEXT", "SPAN_TYPES", "pack_view", "read_text"]

MAX_TEXT = 256 * 1024  # per text shown; a longer one is cut with a note, the page stays light
SPAN_TYPES = ("session", "task", "tool", "llm", "http", "patch", "artifact")
_MAX_CASSETTE = 64 << 20


def read_text(path: Path, limit: int = MAX_TEXT) -> str:
    """The start of a file as text; a note in place of binary data or a missing file."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        return f"(cannot read {path.name}: {e.strerror})"
    cut = len(data) > limit
    data = data[:limit]
    if b"\0" in data:
        return f"(binary data, {path.stat().st_size} bytes)"
    text = data.decode("utf-8", "replace")
    return text + f"\n… (cut at {limit} bytes)" if cut else text


def _span_type(span: Span) -> str:
    t = span.span_type
    if t:
        return t
    if span.parent_span_id is None:
        return "session"
    return "task"


def _json_attr(attrs: Mapping[str, Any], key: str) -> Any:
    value = attrs.get(key)
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


class _Texts:
    """Texts shared by several spans (an artifact, a prompt file), stored once and referred to by key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.texts: dict[str, str] = {}

    def member(self, name: str) -> str | None:
        path = self.root / name
        if not path.is_file():
            return None
        if name not in self.texts:
            self.texts[name] = read_text(path)
        return name

    def artifact(self, sha256: object) -> str | None:
        if not isinstance(sha256, str) or not sha256.isalnum():
            return None
        return self.member(f"artifacts/sha256/{sha256}")


def _cassette(root: Path, manifest: Manifest) -> list[Any]:
    if not manifest.cassettes:
        return []
    path = root / manifest.cassettes[0].path
    if not path.is_file() or path.stat().st_size > _MAX_CASSETTE:
        return []
    lines: list[Any] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not raw.strip():
            continue
        try:
            lines.append(json.loads(raw))
        except (ValueError, RecursionError) as e:
            lines.append({"error": f"line {len(lines) + 1} is not JSON: {e}"})
    return lines


def _details(
    span: Span, kind: str, texts: _Texts, steps: Mapping[str, list[Any]], http: list[Any]
) -> dict[str, Any]:
    a = span.attributes
    d: dict[str, Any] = {
        "kind": span.kind,
        "attributes": {k: v for k, v in a.items() if k not in (SPAN_INPUT, SPAN_OUTPUT)},
        "events": [
            {"name": e.name, "time": e.time_unix_nano, "attributes": dict(e.attributes)} for e in span.events
        ],
        "status": span.status.description or "",
    }
    if isinstance(a.get(SPAN_INPUT), str):
        d["input"] = _json_attr(a, SPAN_INPUT)
    if isinstance(a.get(SPAN_OUTPUT), str):
        d["output"] = _json_attr(a, SPAN_OUTPUT)
    if kind == "llm":
        d["messages"] = _json_attr(a, "gen_ai.input.messages")
        d["response"] = _json_attr(a, "gen_ai.output.messages")
        d["tools"] = _json_attr(a, "gen_ai.tool.definitions")
        number = a.get("runner.llm.call")
        if isinstance(number, int) and not isinstance(number, bool):
            d["request_file"] = texts.member(f"prompts/{number:04d}-request.json")
            d["response_file"] = texts.member(f"prompts/{number:04d}-response.json")
            request = texts.texts.get(d["request_file"] or "")
            try:
                retrieval = json.loads(request).get("retrieval") if request else None
            except (ValueError, AttributeError, RecursionError):
                retrieval = None
            if isinstance(retrieval, list):
                d["retrieval"] = retrieval
    elif kind == "tool":
        d["argv"] = a.get("runner.tool.argv")
        d["stdout"] = texts.artifact(a.get("runner.tool.stdout.sha256"))
        d["stderr"] = texts.artifact(a.get("runner.tool.stderr.sha256"))
    elif kind == "http":
        index = a.get("runner.cassette.index")
        if isinstance(index, int) and 1 <= index <= len(http):
            d["exchange"] = index - 1
    elif kind == "artifact":
        d["artifact"] = texts.artifact(a.get("runner.artifact.sha256"))
    d["steps"] = steps.get(span.span_id, [])
    return d


def _steps(manifest: Manifest, texts: _Texts) -> tuple[list[Any], dict[str, list[Any]]]:
    out: list[Any] = []
    by_span: dict[str, list[Any]] = {}
    for step in manifest.steps:
        if isinstance(step, PatchStep):
            item: dict[str, Any] = {
                "id": step.id,
                "kind": "patch",
                "reason": step.reason,
                "patch": texts.member(step.patch),
            }
        elif isinstance(step, CommandStep):
            item = {
                "id": step.id, "kind": "command", "argv": list(step.argv), "cwd": step.cwd, "timeout": step.timeout,
                "exit_code": step.expect.exit_code,
                "stdout": texts.artifact(step.expect.stdout), "stderr": texts.artifact(step.expect.stderr),
            }  # fmt: skip
        else:  # pragma: no cover - the model has two kinds
            continue
        out.append(item)
        if step.span_id:
            by_span.setdefault(step.span_id, []).append(item["id"])
    return out, by_span


def _environment(root: Path, manifest: Manifest, texts: _Texts) -> dict[str, Any]:
    env = manifest.environment
    files = (
        sorted(p.relative_to(root).as_posix() for p in (root / "env").rglob("*") if p.is_file())
        if (root / "env").is_dir()
        else []
    )
    return {
        "kind": env.kind,
        "image": env.image.reference if env.image else None,
        "snapshot": vars(env.snapshot) if env.snapshot else None,
        "runtimes": dict(env.runtimes),
        "git": {"base_commit": manifest.git.base_commit, "branch": manifest.git.branch, "dirty": manifest.git.dirty, "remote": manifest.git.remote},
        "agent": {"name": manifest.agent.name, "commit": manifest.agent.commit, "argv": list(manifest.agent.command.argv) if manifest.agent.command else None},
        "llm": vars(manifest.llm) if manifest.llm else None,
        "files": [f for f in files if texts.member(f)],
    }  # fmt: skip


def _privacy(manifest: Manifest, revealed: bool) -> dict[str, Any]:
    p = manifest.privacy
    audit = p.extra.get("audit") if isinstance(p.extra.get("audit"), dict) else {}
    return {
        "revealed": revealed,
        "redaction_policy": p.redaction_policy,
        "encrypted_payloads": p.encrypted_payloads,
        "key_ids": list(p.key_ids),
        "tenant": p.extra.get("tenant"),
        "redactions": audit.get("redactions", {}) if isinstance(audit, dict) else {},
        "findings": audit.get("findings", []) if isinstance(audit, dict) else [],
    }


def pack_view(name: str, root: Path, manifest: Manifest, *, revealed: bool = False) -> dict[str, Any]:
    """Everything the page shows of one pack unpacked at `root`."""
    texts = _Texts(root)
    spans = read_spans(root / "traces.jsonl") if (root / "traces.jsonl").is_file() else ()
    steps, by_span = _steps(manifest, texts)
    http = _cassette(root, manifest)
    index = {s.span_id: i for i, s in enumerate(spans)}
    rows: list[list[Any]] = []
    details: dict[str, Any] = {}
    t0 = min((s.start_time_unix_nano for s in spans), default=0)
    for s in spans:
        kind = _span_type(s)
        end = s.end_time_unix_nano if s.end_time_unix_nano is not None else s.start_time_unix_nano
        parent = index.get(s.parent_span_id) if s.parent_span_id else None
        # Compact rows: [span_id, parent row or -1, name, type, start ms, duration ms, status]
        rows.append([s.span_id, -1 if parent is None else parent, s.name, kind,
                     (s.start_time_unix_nano - t0) / 1e6, (end - s.start_time_unix_nano) / 1e6, s.status.code])  # fmt: skip
        details[s.span_id] = _details(s, kind, texts, by_span, http)
    return {
        "kind": "pack",
        "name": name,
        "session": {"id": manifest.session.id, "created_at": manifest.session.created_at},
        "spans": rows,
        "details": details,
        "steps": steps,
        "http": http,
        "environment": _environment(root, manifest, texts),
        "privacy": _privacy(manifest, revealed),
        "texts": texts.texts,
    }
