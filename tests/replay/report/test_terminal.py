from __future__ import annotations

import io

from rich.console import Console

from runner.replay.report import render_terminal
from tests.replay.report.outcomes import BAD, OK


def test_terminal_view() -> None:
    out = io.StringIO()
    render_terminal([OK, BAD], Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    assert "reproduced" in text and "diverged at step s2" in text and "+1 failed" in text
