"""The replay reports link to the view of each run: RUN_DIR/view/index.html, and `runner view RUN_DIR`."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from runner.replay.report import load_runs, to_html, to_markdown
from runner.view.site import write_run_views
from tests.view.viewfixtures import diverged_run, session_pack


def test_html_report_links_to_the_view_replay_writes(tmp_path: Path) -> None:
    run = diverged_run(tmp_path / "runs")
    outcomes = load_runs([run])
    written = write_run_views([(session_pack(tmp_path), outcomes[0])])
    assert written == [run / "view" / "index.html"]
    (tmp_path / "reports").mkdir()
    page = to_html(outcomes, base=tmp_path / "reports")
    hrefs = re.findall(r"<a href='([^']+)'>view</a>", page)
    assert hrefs == ["../runs/session/20261125T120000/view/index.html"]
    assert (tmp_path / "reports" / unquote(hrefs[0])).resolve() == written[0].resolve()
    assert f"runner view {run}" in page


def test_markdown_report_names_the_view_and_the_command(tmp_path: Path) -> None:
    run = diverged_run(tmp_path / "runs")
    text = to_markdown(load_runs([run]))
    assert f"[{run}/view/index.html]({run}/view/index.html)" in text
    assert f"`runner view {run}`" in text


def test_a_view_that_cannot_be_built_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    run = diverged_run(tmp_path / "runs")
    warnings: list[str] = []
    broken = tmp_path / "broken.tar.zst"
    broken.write_bytes(b"not a pack")
    assert write_run_views([(broken, load_runs([run])[0])], warn=warnings.append) == []
    assert len(warnings) == 1 and "broken.tar.zst" in warnings[0]
    assert not (run / "view").exists()
