"""Terminal report: a table of packs, then a panel per pack with its error, warnings and first divergence.

Input: `PackOutcome`s and a rich `Console`. Output: printed to that console (the CLI owns it).
Rules: pack names, errors, step ids and diffs of recorded output come from packs and their commands: each is
a `Text` through `runner.display.visible` (never markup; a command's colour codes or a pack's escape
sequences are shown as `\\x1b`, not obeyed).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from runner.display import visible, visible_text
from runner.replay.outcome import PackOutcome, Verdict
from runner.replay.report.summary import headline, next_lines

__all__ = ["render_terminal"]

_STYLE = {Verdict.REPRODUCED: "green", Verdict.DIVERGED: "yellow", Verdict.ERROR: "red"}


def render_terminal(outcomes: Sequence[PackOutcome], console: Console) -> None:
    for line in next_lines(outcomes):  # what happened and what to do, before any table
        console.print(visible_text(line, "bold yellow" if not line.startswith(" ") else ""))
    table = Table(title="Replay", show_lines=False)
    for col in ("pack", "verdict", "steps", "time", "detail"):
        table.add_column(col)
    for o in outcomes:
        table.add_row(
            visible_text(o.pack),
            Text(o.verdict.value, style=_STYLE[o.verdict]),
            str(len(o.steps)),
            f"{o.duration_s:.1f}s",
            visible_text(headline(o)),
        )
    console.print(table)
    for backend in dict.fromkeys(o.backend for o in outcomes if o.backend):  # where the commands ran
        console.print(Text(f"backend: {backend}", style="dim"))
    for sandbox in dict.fromkeys(o.sandbox for o in outcomes if o.sandbox):  # every limit that applied
        console.print(Text(f"sandbox: {sandbox}", style="dim"))
    for o in outcomes:
        parts: list[RenderableType] = [
            visible_text(f"warning: {w}", "yellow", newlines=True) for w in o.warnings
        ]
        if o.error:
            parts.insert(0, visible_text(o.error, "red", newlines=True))
        first = o.first_divergence
        if first is not None:
            parts += [visible_text(f"missed: {m}", "yellow", newlines=True) for m in o.cassettes.misses]
            for d in first.differences:
                parts.append(visible_text(d.summary, "bold", newlines=True))
                if d.diff:
                    from rich.syntax import Syntax  # pygments: only for a diff to show

                    diff = visible(d.diff, newlines=True)
                    parts.append(Syntax(diff, "diff", theme="ansi_dark", word_wrap=True))
        if o.run_dir:
            parts.append(visible_text(f"logs and outputs: {o.run_dir}", "dim"))
        if parts and (first is not None or o.warnings or o.error):
            console.print(Panel(Group(*parts), title=visible_text(o.pack), border_style=_STYLE[o.verdict]))
