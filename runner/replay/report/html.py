"""HTML report: one self-contained page, a table of packs and the diffs of the first divergences.

Input: `PackOutcome`s. Output: an HTML document; every value from a pack is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from runner.replay.outcome import PackOutcome
from runner.replay.report.summary import headline

__all__ = ["to_html"]


def to_html(outcomes: Sequence[PackOutcome]) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(o.pack)}</code></td><td class='{o.verdict.value}'>{o.verdict.value}</td>"
        f"<td>{html.escape(headline(o))}</td></tr>"
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
