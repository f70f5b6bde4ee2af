from __future__ import annotations

from runner.replay.report import to_markdown
from tests.replay.report.outcomes import BAD, OK


def test_markdown_shows_the_diff() -> None:
    md = to_markdown([OK, BAD])
    assert "| `bad.tar.zst` | diverged | 2 |" in md and "```diff" in md and "warning: python" in md
