"""`runner report RUNS_DIR...`: regrade and re-render saved replays without starting a container.

Inputs: run folders of `runner replay` (RUNS_DIR, a pack's folder, a run folder or a report.json), several
shards' folders at once. Outputs: the terminal table, and the JSON, JUnit, Markdown and HTML reports where
asked (`-` for stdout), over the latest run of each pack, sorted by pack. Exit code: the same grading as
`runner replay` (`runner.replay.report.exit_code`), so a merged report gates like the unsharded run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import console, handles_errors
from runner.errors import ExitCode

__all__ = ["app"]

app = typer.Typer()


@app.command(
    "report",
    help="Regrade and re-render saved replays (RUNS_DIR/<pack>/<run>/report.json) without containers; "
    "name the run folders of several shards to merge them into one report.\n\n"
    "Exit 0 when every pack reproduced, 1 when one diverged, 2 for a bad pack or report, 3 for an "
    "environment problem.\n\n"
    "Example: runner report shard-1/runs shard-2/runs --markdown summary.md --junit replay.xml",
)
@handles_errors
def report_cmd(
    runs: Annotated[
        list[Path], typer.Argument(metavar="RUNS_DIR...", help="Run folders or report.json files.")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON report here (- for stdout).")
    ] = None,
    junit_out: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report here.")] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="Write a Markdown report here (- for stdout).")
    ] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write an HTML report here.")] = None,
) -> None:
    from runner.replay import report

    outcomes = report.load_runs(runs)
    writers = ((json_out, report.to_json), (junit_out, report.to_junit), (markdown_out, report.to_markdown),
               (html_out, report.to_html))  # fmt: skip
    to_stdout = False
    for target, render in writers:
        if target is not None:
            text = render(outcomes)
            if str(target) == "-":
                print(text, end="")
                to_stdout = True
            else:
                target.write_text(text, encoding="utf-8")
    if not to_stdout:
        report.render_terminal(outcomes, console)
    raise typer.Exit(ExitCode(report.exit_code(outcomes)))
