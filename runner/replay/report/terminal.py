"""Terminal report: a table of packs, then a panel per pack with its error, warnings and first divergence.

Input: `PackOutcome`s and a rich `Console`. Output: printed to that console (the CLI owns it).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from runner.replay.outcome import PackOutcome, Verdict
from runner.replay.report.summary import headline

__all__ = ["render_terminal"]

_STYLE = {Verdict.REPRODUCED: "green", Verdict.DIVERGED: "yellow", Verdict.ERROR: "red"}


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
            headline(o),
        )
    console.print(table)
    for sandbox in dict.fromkeys(o.sandbox for o in outcomes if o.sandbox):  # every limit that applied
        console.print(Text(f"sandbox: {sandbox}", style="dim"))
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
