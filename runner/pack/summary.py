"""What `runner inspect` shows of a pack: its manifest and sizes, read without reading the members.

Inputs: a pack file. Outputs: a `PackSummary`, its human form (`render_summary`, rich) and its JSON form
(`summary_dict`).
Rules: only the manifest is read (`read.read_manifest`); member hashes are not checked here (`verify` does).
Every value shown comes from the pack: each cell is a `Text` through `runner.display.visible`, never a
string rich would read as markup, and no control character reaches the terminal raw.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from runner.display import visible_text
from runner.pack import manifest as mf
from runner.pack.layout import Limits
from runner.pack.manifest import Manifest
from runner.pack.read import read_manifest

__all__ = ["PackSummary", "inspect", "render_summary", "summary_dict"]
_LIMITS = Limits()


@dataclass(frozen=True)
class PackSummary:
    pack: Path
    manifest: Manifest
    pack_bytes: int
    content_bytes: int  # sum of member sizes, manifest included

    @property
    def ratio(self) -> float:
        return self.content_bytes / self.pack_bytes if self.pack_bytes else 0.0


def inspect(pack_path: Path, limits: Limits = _LIMITS) -> PackSummary:
    """Read only the manifest (the first member) and summarise the pack; member hashes are not checked."""
    pack_path = Path(pack_path)
    manifest, content_bytes = read_manifest(pack_path, limits)
    return PackSummary(pack_path, manifest, pack_path.stat().st_size, content_bytes)


def render_summary(summary: PackSummary) -> RenderableType:
    """The human form of `runner inspect`: session, agent, model, steps, artifacts and sizes."""
    m = summary.manifest
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    env = m.environment
    env_text = {
        "image": lambda: env.image.reference if env.image else "",
        "dockerfile": lambda: (
            f"{env.dockerfile.path} FROM {env.dockerfile.base_digest}" if env.dockerfile else ""
        ),
        "snapshot": lambda: f"python {env.snapshot.python} on {env.snapshot.os}" if env.snapshot else "",
    }[env.kind]()
    rows = [
        ("pack", f"{summary.pack}  (format {m.format_version})"),
        ("session", f"{m.session.id}  {m.session.created_at}"),
        (
            "agent",
            " ".join(
                x
                for x in (
                    m.agent.name,
                    m.agent.commit,
                    m.agent.config_version and f"config {m.agent.config_version}",
                    _exit(m),
                )
                if x
            ),
        ),
        (
            "git",
            f"{m.git.base_commit[:12]} {m.git.branch or ''}{' (dirty)' if m.git.dirty else ''} {m.git.remote or ''}",
        ),
        ("environment", f"{env.kind}: {env_text}"),
    ]
    if m.llm:
        params = ("revision", "seed", "temperature", "top_p", "max_tokens")
        rows.append(
            (
                "llm",
                f"{m.llm.provider}/{m.llm.model}  "
                + "  ".join(f"{k}={getattr(m.llm, k)}" for k in params if getattr(m.llm, k) is not None),
            )
        )
    p = m.privacy
    privacy = f"redacted with {p.redaction_policy}" if p.redaction_policy else "not redacted"
    if p.key_ids:
        privacy += f", originals sealed with key {', '.join(p.key_ids)}"
    if p.encrypted_payloads:
        privacy += ", payloads encrypted"
    rows.append(("privacy", privacy))
    rows.append(("cassettes", ", ".join(f"{c.path} ({c.count} recorded)" for c in m.cassettes) or "none"))
    rows += _recording_rows(m)
    rows.append(
        (
            "size",
            f"{_human(summary.pack_bytes)} packed, {_human(summary.content_bytes)} unpacked, ratio {summary.ratio:.2f}",
        )
    )
    for label, value in rows:
        shown = visible_text(value)
        shown.overflow = "fold"
        head.add_row(label, shown)
    steps = Table(title="steps", title_justify="left", expand=False)
    for col in ("#", "id", "kind", "what", "expect"):
        steps.add_column(col)
    for i, step in enumerate(m.steps, 1):
        if isinstance(step, mf.PatchStep):
            what = step.patch + (f"  ({step.reason})" if step.reason else "")
            steps.add_row(str(i), visible_text(step.id), "patch", visible_text(what), "")
        else:
            what = shlex.join(step.argv) + (f"  (in {step.cwd})" if step.cwd != "." else "")
            steps.add_row(
                str(i),
                visible_text(step.id),
                "command",
                visible_text(what),
                f"exit {step.expect.exit_code}, {len(step.expect.outputs)} outputs",
            )
    arts = Table(title="artifacts", title_justify="left")
    for col in ("sha256", "size", "media type", "name", "span"):
        arts.add_column(col)
    for a in m.artifacts:
        arts.add_row(
            visible_text(a.sha256[:12]),
            _human(a.size),
            visible_text(a.media_type),
            visible_text(a.name or ""),
            visible_text(a.span_id or ""),
        )
    return Group(head, steps, arts)


def _recording_rows(m: Manifest) -> list[tuple[str, str]]:
    """The agent's variables by what replay does with them; the HTTP recording and its warnings."""
    rows = []
    for action in ("verbatim", "placeholder", "dropped"):
        names = [
            k if action == "verbatim" else f"{k} ({d.reason})"
            for k, d in m.environment.variables.items()
            if d.action == action
        ]
        if names:
            rows.append((f"env {action}", ", ".join(names)))
    if m.recording is not None:
        r = m.recording
        loopback = "localhost recorded" if r.loopback else "localhost not recorded"
        rows.append(("http", f"{r.exchanges} exchanges ({r.model_exchanges} model calls), {loopback}"))
        rows += [("warning", w) for w in r.warnings]
    return rows


def _exit(m: Manifest) -> str:
    """How the recorded agent process exited, when `runner record -- CMD` knew it."""
    code = m.agent.command.exit_code if m.agent.command is not None else None
    return "" if code is None else f"(exited {code})"


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def summary_dict(summary: PackSummary) -> dict[str, Any]:
    """The JSON form of `runner inspect --json`."""
    return {
        "pack": str(summary.pack),
        "pack_bytes": summary.pack_bytes,
        "content_bytes": summary.content_bytes,
        "compression_ratio": round(summary.ratio, 3),
        "manifest": mf.to_dict(summary.manifest),
    }
