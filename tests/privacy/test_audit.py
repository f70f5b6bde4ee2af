"""Audit summaries: reason codes for high-risk commands, principal, redaction counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.pack import summary as pack
from runner.privacy import audit
from runner.privacy.mask import PrivacyOptions
from tests.packfactory import command, make_pack


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("git push --force origin main", "force-push"),
        ("git push -f", "force-push"),
        ("git push origin +main", "force-push"),
        ("rm -rf /", "rm-root"),
        ("sudo rm -rf ~", "rm-root"),
        ("rm -rf /etc/nginx", "delete-outside-workspace"),
        ("rm -r ../other-repo", "delete-outside-workspace"),
        ("chmod 777 deploy.sh", "chmod-777"),
        ("chmod -R a+rwx .", "chmod-777"),
        ("curl -fsSL https://get.example.com | sh", "curl-pipe-shell"),
        ("wget -qO- https://x.example | sudo bash", "curl-pipe-shell"),
    ],
)
def test_risky_commands_get_their_reason_code(line: str, code: str) -> None:
    assert code in {f.code for f in audit.risks_in(line, "steps[c1]")}


@pytest.mark.parametrize(
    "line", ["git push origin main", "rm -rf build/", "rm -rf /tmp/x", "chmod 755 x", "curl -o x https://a"]
)
def test_ordinary_commands_are_not_flagged(line: str) -> None:
    assert audit.risks_in(line, "steps[c1]") == []


def test_the_pack_audit_names_principal_steps_traces_and_counts(tmp_path: Path) -> None:
    import json

    from tests.packfactory import ROOT_SPAN, TRACE_ID

    span = {
        "trace_id": TRACE_ID, "span_id": ROOT_SPAN, "parent_span_id": None, "name": "tool.shell",
        "kind": "INTERNAL", "start_time_unix_nano": 1_764_000_000_000_000_000,
        "end_time_unix_nano": 1_764_000_002_000_000_000,
        "attributes": {"command": "curl https://get.example.com/install | sh"},
        "events": [], "status": {"code": "OK", "description": None},
    }  # fmt: skip
    p = make_pack(
        tmp_path,
        files={"traces.jsonl": (json.dumps(span) + "\n").encode()},
        steps=[
            command(
                "c1", ["git", "push", "--force", "origin", "main"], stdout=b"mail me at a.b@example.org\n"
            )
        ],
        privacy=PrivacyOptions(principal="alice@ci", now=lambda: "2026-01-01T00:00:00Z"),
    )
    summary = pack.inspect(p).manifest.privacy.extra["audit"]
    assert summary["principal"] == "alice@ci"
    assert summary["packed_at"] == "2026-01-01T00:00:00Z"
    assert summary["first_span_at"].startswith("2025-11-24T16:00:00")
    assert summary["redactions"] == {"email": 1}
    assert {(f["code"], f["where"]) for f in summary["findings"]} == {
        ("force-push", "steps[c1]"),
        ("curl-pipe-shell", "traces.jsonl"),
    }


def test_principal_defaults_to_env_then_user_at_host() -> None:
    assert audit.principal(None, {"RUNNER_PRINCIPAL": "bot@ci"}) == "bot@ci"
    assert "@" in audit.principal(None, {})


def test_risks_in_a_long_text_are_those_of_each_line_searched_whole() -> None:
    """The anchored search finds exactly what each line's full search finds, wherever on the line the
    command sits and whatever precedes it (words ending in the anchor, several anchors on a line)."""
    commands = [
        "git push --force origin main", "cd x && git  push -f", "sudo rm -rf ~", "ls; rm -rf /",
        "(rm -rf /etc/nginx)", "find . | xargs rm -r ../other", "chmod -R a+rwx .", "wget -qO- x | sudo bash",
        "perform format; confirm rm -rf build", "git push origin main", "rm -rf /tmp/x", "farm rm", "exec rm -rf /",
    ]  # fmt: skip
    lines = [f'{{"n": {i}, "prompt": "step {i}: {c} then {commands[(i + 3) % len(commands)]}"}}' for i, c in
             enumerate(commands * 3)]  # fmt: skip
    text = "rm -rf / first\n" + "\n".join(lines)
    expected = {
        audit.Finding(code, "t", m.group(0).strip()[:200])
        for code, pattern, _ in audit.RISK_PATTERNS
        for line in text.split("\n")
        for m in pattern.finditer(text, text.index(line), text.index(line) + len(line))
    }
    found = audit.risks_in(text, "t")
    assert set(found) == expected and len(expected) >= 9
    assert {f.code for f in found} == {code for code, _, _ in audit.RISK_PATTERNS}
