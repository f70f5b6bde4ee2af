"""Report stage: render pack outcomes for people (terminal, Markdown, HTML) and machines (JSON, JUnit XML).

Input: a sequence of `PackOutcome`. Output: text, one module per format; adding a format is adding a module.
`load` reads saved report.json files back (regrading, merging shards). Nothing here decides a verdict;
`exit_code` only folds the verdicts into the code the CLI exits with.
"""

from __future__ import annotations

from runner.replay.report.html import to_html
from runner.replay.report.json import to_json
from runner.replay.report.junit import to_junit
from runner.replay.report.load import from_json, load_runs
from runner.replay.report.markdown import to_markdown
from runner.replay.report.summary import exit_code
from runner.replay.report.terminal import render_terminal

__all__ = [
    "exit_code",
    "from_json",
    "load_runs",
    "render_terminal",
    "to_html",
    "to_json",
    "to_junit",
    "to_markdown",
]
