from __future__ import annotations

from runner.replay.report import to_html
from tests.replay.report.outcomes import BAD, OK


def test_html_shows_the_diff() -> None:
    page = to_html([OK, BAD])
    assert "<td class='diverged'>diverged</td>" in page and "+1 failed" in page
