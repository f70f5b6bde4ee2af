from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

from rich.console import Console

from runner.replay.compare import Difference
from runner.replay.outcome import Cause, PackOutcome, StepOutcome, Verdict
from runner.replay.report import exit_code, render_terminal, to_html, to_json, to_junit, to_markdown

OK = PackOutcome(
    pack="good.tar.zst",
    verdict=Verdict.REPRODUCED,
    steps=(
        StepOutcome("s1", "patch", True, "applied (git-apply)"),
        StepOutcome("s2", "command", True, "exit 0"),
    ),
    duration_s=1.5,
)
DIFF = Difference(
    "stdout", "stdout differs (1 line(s))", "--- recorded/stdout\n+++ replayed/stdout\n-1 passed\n+1 failed\n"
)
BAD = PackOutcome(
    pack="bad.tar.zst",
    verdict=Verdict.DIVERGED,
    steps=(
        StepOutcome("s1", "patch", True, "applied"),
        StepOutcome("s2", "command", False, "stdout differs", (DIFF,)),
    ),
    cause=Cause.BEHAVIOUR,
    warnings=("python 3.11.7 recorded, 3.11.2 in the image",),
)
ERR = PackOutcome(pack="broken.tar.zst", verdict=Verdict.ERROR, error="no Docker engine answers")


def test_exit_codes() -> None:
    assert exit_code([OK]) == 0
    assert exit_code([OK, BAD]) == 1
    assert exit_code([OK, BAD, ERR]) == 3


def test_json_names_first_divergence() -> None:
    doc = json.loads(to_json([OK, BAD, ERR]))
    assert doc["summary"] == {"reproduced": 1, "diverged": 1, "error": 1}
    bad = doc["packs"][1]
    assert bad["first_divergence"] == "s2"
    assert bad["cause"] == "behaviour changed"
    assert bad["steps"][1]["differences"][0]["diff"].endswith("+1 failed\n")


def test_junit_is_valid_and_counts() -> None:
    root = ET.fromstring(to_junit([OK, BAD, ERR]))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='bad.tar.zst']/failure")
    assert failure is not None and "diverged at step s2" in failure.get("message", "")
    assert "+1 failed" in (failure.text or "")


def test_markdown_and_html_show_the_diff() -> None:
    md = to_markdown([OK, BAD])
    assert "| `bad.tar.zst` | diverged | 2 |" in md and "```diff" in md and "warning: python" in md
    page = to_html([OK, BAD])
    assert "<td class='diverged'>diverged</td>" in page and "+1 failed" in page


def test_terminal_view() -> None:
    out = io.StringIO()
    render_terminal([OK, BAD], Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    assert "reproduced" in text and "diverged at step s2" in text and "+1 failed" in text
