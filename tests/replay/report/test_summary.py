from __future__ import annotations

from runner.replay.report import exit_code
from tests.replay.report.outcomes import BAD, ERR, OK


def test_exit_codes() -> None:
    assert exit_code([OK]) == 0
    assert exit_code([OK, BAD]) == 1
    assert exit_code([OK, BAD, ERR]) == 3


def test_the_first_lines_of_every_format_say_what_happened_and_what_to_do_next() -> None:
    import io
    import json

    from rich.console import Console

    from runner.replay.compare import Difference
    from runner.replay.outcome import CassetteUsage, Cause, PackOutcome, StepOutcome, Verdict
    from runner.replay.report import render_terminal, to_json, to_markdown

    miss = "POST http://127.0.0.1:8000/v1/chat/completions: no match; nearest recorded #0 differs in body"
    body = ': @@ -1 +1 @@\n-  "content": "0"\n+  "content": "1"'  # a body difference: one line up top
    failed = PackOutcome(
        pack="agent.tar.zst",
        verdict=Verdict.DIVERGED,
        steps=(StepOutcome("agent", "patch", False, "the re-run agent exited 1: KeyError: 'X'",
                           (Difference("agent-failed", "the re-run agent exited 1: KeyError: 'X'"),)),),
        cause=Cause.AGENT_FAILED,
        cassettes=CassetteUsage(misses=(miss + body,)),
    )  # fmt: skip
    out = io.StringIO()
    render_terminal([OK, failed], Console(file=out, width=200, color_system=None))
    first = out.getvalue().splitlines()[:3]
    assert first[0] == "agent.tar.zst: agent-failed: the re-run agent exited 1: KeyError: 'X'"
    assert first[1] == f"  missed: {miss}: @@ -1 +1 @@ ..." and first[2].startswith(
        "  next: read the agent's stderr"
    )
    markdown = to_markdown([OK, failed]).splitlines()
    assert markdown[2].startswith("- agent.tar.zst: agent-failed") and "next:" in markdown[4]
    packs = json.loads(to_json([OK, failed]))["packs"]
    assert packs[0]["next_step"] is None and "stderr" in packs[1]["next_step"]
    assert next(iter(packs[1])) == "next_step"
