"""HTML report: one self-contained page, a table of packs and the diffs of the first divergences.

Input: `PackOutcome`s and, optionally, the folder the page goes to (`base`). Output: an HTML document;
every value from a pack is escaped. Each pack with a run folder links to that run's view
(`RUN_DIR/view/index.html`, which `runner replay --html` writes; relative to `base`) and names the
`runner view RUN_DIR` command that serves it.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from runner.replay.outcome import PackOutcome
from runner.replay.report.summary import headline, view_command

__all__ = ["to_html"]


def _view(o: PackOutcome, base: Path | None) -> str:
    if not o.run_dir:
        return ""
    index = Path(o.run_dir, "view", "index.html")
    href = os.path.relpath(index.resolve(), base.resolve()) if base is not None else index.as_posix()
    return (
        f"<a href='{html.escape(quote(Path(href).as_posix()))}'>view</a> "
        f"<code>{html.escape(view_command(o.run_dir))}</code>"
    )


def to_html(outcomes: Sequence[PackOutcome], base: Path | None = None) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(o.pack)}</code></td><td class='{o.verdict.value}'>{o.verdict.value}</td>"
        f"<td>{html.escape(headline(o))}</td><td>{_view(o, base)}</td></tr>"
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
        f"</head><body><h1>Replay report</h1><table><tr><th>pack</th><th>verdict</th><th>detail</th><th>view</th></tr>"
        f"{rows}</table>{diffs}</body></html>\n"
    )
