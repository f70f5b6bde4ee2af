"""Report stage: render pack outcomes for people (terminal, Markdown, HTML) and machines (JSON, JUnit XML).

Input: a sequence of `PackOutcome`. Output: text. Nothing here decides a verdict or an exit code.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from runner.replay.outcome import PackOutcome, Verdict

__all__ = ["exit_code", "render_terminal", "to_html", "to_json", "to_junit", "to_markdown"]

REPORT_VERSION = 1
_STYLE = {Verdict.REPRODUCED: "green", Verdict.DIVERGED: "yellow", Verdict.ERROR: "red"}


def exit_code(outcomes: Sequence[PackOutcome]) -> int:
    """0 when every pack reproduced; else the gravest: 3 environment, 2 bad pack, 1 diverged."""
    errors = {o.error_code for o in outcomes if o.verdict is Verdict.ERROR}
    if errors:
        return max(errors)
    return 1 if any(o.verdict is Verdict.DIVERGED for o in outcomes) else 0


def _as_dict(outcome: PackOutcome) -> dict[str, Any]:
    data = asdict(outcome)
    first = outcome.first_divergence
    data["first_divergence"] = first.step_id if first else None
    return data


def to_json(outcomes: Sequence[PackOutcome]) -> str:
    summary = {v.value: sum(o.verdict is v for o in outcomes) for v in Verdict}
    doc = {"report_version": REPORT_VERSION, "summary": summary, "packs": [_as_dict(o) for o in outcomes]}
    return json.dumps(doc, indent=2, default=str) + "\n"


def _headline(o: PackOutcome) -> str:
    first = o.first_divergence
    if o.verdict is Verdict.REPRODUCED:
        return f"reproduced: {len(o.steps)} step(s) agreed with the recording"
    if o.verdict is Verdict.ERROR:
        return f"error: {o.error}"
    where = f"step {first.step_id}: {first.summary}" if first else "no step"
    return f"diverged at {where} (likely cause: {o.cause})"


def to_junit(outcomes: Sequence[PackOutcome]) -> str:
    suite = ET.Element(
        "testsuite",
        name="runner replay",
        tests=str(len(outcomes)),
        failures=str(sum(o.verdict is Verdict.DIVERGED for o in outcomes)),
        errors=str(sum(o.verdict is Verdict.ERROR for o in outcomes)),
        time=f"{sum(o.duration_s for o in outcomes):.3f}",
    )
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname="replay", name=o.pack, time=f"{o.duration_s:.3f}")
        if o.verdict is Verdict.DIVERGED:
            first = o.first_divergence
            failure = ET.SubElement(case, "failure", message=_headline(o))
            failure.text = "\n".join(d.diff or d.summary for d in (first.differences if first else ()))
        elif o.verdict is Verdict.ERROR:
            ET.SubElement(case, "error", message=o.error or "infrastructure error")
        if o.warnings:
            ET.SubElement(case, "system-out").text = "\n".join(o.warnings)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def to_markdown(outcomes: Sequence[PackOutcome]) -> str:
    lines = ["# Replay report", "", "| pack | verdict | steps | detail |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        detail = _headline(o).replace("|", "\\|")
        lines.append(f"| `{o.pack}` | {o.verdict.value} | {len(o.steps)} | {detail} |")
    for o in outcomes:
        first = o.first_divergence
        if first is None and not o.warnings:
            continue
        lines += ["", f"## {o.pack}", ""]
        lines += [f"- warning: {w}" for w in o.warnings]
        if first is not None:
            for d in first.differences:
                lines += ["", f"**{d.summary}**"]
                if d.diff:
                    lines += ["", "```diff", d.diff.rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


def to_html(outcomes: Sequence[PackOutcome]) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(o.pack)}</code></td><td class='{o.verdict.value}'>{o.verdict.value}</td>"
        f"<td>{html.escape(_headline(o))}</td></tr>"
        for o in outcomes
    )
    diffs = "".join(
        f"<h2>{html.escape(o.pack)}</h2>"
        + "".join(
            f"<p>{html.escape(d.summary)}</p><pre>{html.escape(d.diff)}</pre>"
            for d in (o.first_divergence.differences if o.first_divergence else ())
        )
        for o in outcomes
        if o.first_divergence is not None
    )
    style = ".reproduced{color:green}.diverged{color:#b58900}.error{color:red}td,th{padding:4px 8px}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Replay report</title><style>{style}</style>"
        f"</head><body><h1>Replay report</h1><table><tr><th>pack</th><th>verdict</th><th>detail</th></tr>"
        f"{rows}</table>{diffs}</body></html>\n"
    )


def render_terminal(outcomes: Sequence[PackOutcome], console: Console) -> None:
    table = Table(title="Replay", show_lines=False)
    for col in ("pack", "verdict", "steps", "time", "detail"):
        table.add_column(col)
    for o in outcomes:
        table.add_row(
            o.pack,
            Text(o.verdict.value, style=_STYLE[o.verdict]),
            str(len(o.steps)),
            f"{o.duration_s:.1f}s",
            _headline(o),
        )
    console.print(table)
    for o in outcomes:
        parts: list[RenderableType] = [Text(f"warning: {w}", style="yellow") for w in o.warnings]
        if o.error:
            parts.insert(0, Text(o.error, style="red"))
        first = o.first_divergence
        if first is not None:
            for d in first.differences:
                parts.append(Text(d.summary, style="bold"))
                if d.diff:
                    parts.append(Syntax(d.diff, "diff", theme="ansi_dark", word_wrap=True))
        if o.run_dir:
            parts.append(Text(f"logs and outputs: {o.run_dir}", style="dim"))
        if parts and (first is not None or o.warnings or o.error):
            console.print(Panel(Group(*parts), title=o.pack, border_style=_STYLE[o.verdict]))
