"""Every report says which sandbox the steps ran under (user, privileges, limits), once per distinct sandbox."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from rich.console import Console

from runner.replay.report import render_terminal, to_json, to_markdown
from tests.replay.report.outcomes import BAD, OK

SANDBOX = "user 65532:65532, no capabilities, no-new-privileges, read-only root, memory 4 GiB (no swap), ..."
OUTCOMES = [replace(OK, sandbox=SANDBOX), replace(BAD, sandbox=SANDBOX)]


def test_the_terminal_says_the_limits_once() -> None:
    out = io.StringIO()
    render_terminal(OUTCOMES, Console(file=out, width=200, color_system=None))
    assert out.getvalue().count(f"sandbox: {SANDBOX}") == 1


def test_json_and_markdown_carry_the_limits() -> None:
    assert [p["sandbox"] for p in json.loads(to_json(OUTCOMES))["packs"]] == [SANDBOX, SANDBOX]
    assert to_markdown(OUTCOMES).count(f"Sandbox: {SANDBOX}") == 1
    assert "Sandbox:" not in to_markdown([OK])


def test_every_report_says_which_backend_ran_and_a_missing_isolation_comes_first() -> None:
    local = [replace(OK, backend="local"), replace(BAD, backend="local", isolated=False)]
    out = io.StringIO()
    render_terminal(local, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert text.startswith(f"NOT ISOLATED: {BAD.pack} replayed with this machine's network (--no-isolation)")
    assert text.count("backend: local") == 1
    markdown = to_markdown(local)
    assert markdown.split("\n")[2].startswith(f"- NOT ISOLATED: {BAD.pack}") and "Backend: local" in markdown
    assert [p["backend"] for p in json.loads(to_json(local))["packs"]] == ["local", "local"]
