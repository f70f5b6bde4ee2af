"""Markdown report, for a pull request comment: a table of packs, then each pack's warnings and diffs.

Input: `PackOutcome`s. Output: Markdown text; a pack with a run folder links to its view
(`RUN_DIR/view/index.html`, written by `runner replay --html`) and names `runner view RUN_DIR`.
"""

from __future__ import annotations

from collections.abc import Sequence

from runner.replay.outcome import PackOutcome
from runner.replay.report.summary import headline, next_lines, view_command

__all__ = ["to_markdown"]


def to_markdown(outcomes: Sequence[PackOutcome]) -> str:
    lines = ["# Replay report", ""]
    head = [f"{'  - ' if line.startswith(' ') else '- '}{line.strip()}" for line in next_lines(outcomes)]
    lines += [*head, ""] if head else []  # what happened and what to do, before the table
    lines += ["| pack | verdict | steps | detail |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        detail = headline(o).replace("|", "\\|")
        lines.append(f"| `{o.pack}` | {o.verdict.value} | {len(o.steps)} | {detail} |")
    where = [f"Backend: {b}" for b in dict.fromkeys(o.backend for o in outcomes if o.backend)]
    sandboxes = [f"Sandbox: {s}" for s in dict.fromkeys(o.sandbox for o in outcomes if o.sandbox)]
    lines += ["", *where, *sandboxes] if where or sandboxes else []
    for o in outcomes:
        first = o.first_divergence
        if first is None and not o.warnings and not o.run_dir:
            continue
        lines += ["", f"## {o.pack}", ""]
        if o.run_dir:
            # A relative link works where the report sits beside runs/ (CI artifacts); the command always does.
            index = f"{o.run_dir}/view/index.html".replace(" ", "%20")
            lines.append(f"- view: [{o.run_dir}/view/index.html]({index}) or `{view_command(o.run_dir)}`")
        lines += [f"- warning: {w}" for w in o.warnings]
        if first is not None:
            for d in first.differences:
                lines += ["", f"**{d.summary}**"]
                if d.diff:
                    lines += ["", "```diff", d.diff.rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"
