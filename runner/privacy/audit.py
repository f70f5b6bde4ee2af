"""The audit summary of one session: who recorded it, when, what was redacted, and its high-risk actions.

Inputs: the manifest's command steps, the text of traces and tool output, the hosts of the cassettes, the
redaction counts and the principal. Output: an `Audit`, stored in the manifest as `privacy.audit` (so it
is covered by the root digest and, when signed, by the signature) and kept alone by the pack store once
the pack itself has expired.
Rules: reason codes are stable names (`force-push`, `rm-root`, `delete-outside-workspace`, `chmod-777`,
`curl-pipe-shell`, `secret-in-file`, `network-host`); each finding says where it was seen. Detection is by
pattern over command lines: it flags for review, it does not prove intent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RISK_PATTERNS", "Audit", "Finding", "principal", "risks_in", "summarise"]


@dataclass(frozen=True)
class Finding:
    code: str
    where: str  # "steps[c1]", "traces.jsonl:12", "cassettes/http.jsonl"
    detail: str


@dataclass(frozen=True)
class Audit:
    principal: str
    session_created_at: str
    first_span_at: str | None = None  # RFC 3339 UTC, from traces.jsonl
    last_span_at: str | None = None
    packed_at: str | None = None  # only when asked for: the same session should give the same pack bytes
    redactions: Mapping[str, int] = field(default_factory=dict)  # kind -> count
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "session_created_at": self.session_created_at,
            **{
                k: v
                for k, v in (
                    ("first_span_at", self.first_span_at),
                    ("last_span_at", self.last_span_at),
                    ("packed_at", self.packed_at),
                )
                if v is not None
            },
            "redactions": dict(sorted(self.redactions.items())),
            "findings": [vars(f) for f in self.findings],
        }


_SHELL = r"(?:^|[;&|`(]\s*|\b(?:sudo|xargs|exec)\s+)"
# Each pattern with its anchor: what every match holds, starting with a literal (Python's regexes search
# for a literal start fast) and checking the word boundary after it; a match starts at it or just before
# the whitespace ahead of it (see `risks_in`).
RISK_PATTERNS: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...] = (
    ("force-push", re.compile(r"\bgit\s+(?:-\S+\s+)*push\b[^\n;&|]*(?:\s--force\b|\s-f\b|\s--force-with-lease\b|\s\+\S)"), re.compile(r"git(?<!\wgit)\s")),
    ("rm-root", re.compile(_SHELL + r"rm\s+(?:-\S+\s+)*(?:/|~|\$HOME|/\*)(?=\s|$|;|&)"), re.compile(r"rm(?<!\wrm)\s")),
    ("delete-outside-workspace",
     re.compile(_SHELL + r"rm\s+(?:-\S+\s+)*(?:/(?!tmp/)[^\s;&|]+|\.\./[^\s;&|]*|~/[^\s;&|]*)"), re.compile(r"rm(?<!\wrm)\s")),
    ("chmod-777", re.compile(r"\bchmod\s+(?:-\S+\s+)*(?:0?777|a\+rwx|ugo\+rwx)\b"), re.compile("chmod")),
    ("curl-pipe-shell", re.compile(r"\b(?:curl|wget)\b[^\n|;]*\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b"), re.compile(r"curl|wget")),
)  # fmt: skip


def risks_in(text: str, where: str) -> list[Finding]:
    """The risky commands in `text`, each within a line: tried only where a match may start around one of
    its pattern's anchors (at the anchor, or before the whitespace ahead of it: `; rm`, `sudo rm`). A
    session's traces run to tens of MB, and hold each command again in every later prompt: a pattern
    searched for at every character would take seconds."""
    found = []
    for code, pattern, anchor in RISK_PATTERNS:
        tried: set[int] = set()
        for a in anchor.finditer(text):
            start = text.rfind("\n", 0, a.start()) + 1
            end = text.find("\n", a.start())
            end = len(text) if end < 0 else end
            j = a.start()
            while j > start and text[j - 1].isspace():
                j -= 1
            for at in sorted({a.start(), j - 1, j - len("sudo"), j - len("xargs")} - tried):
                if at >= start and (m := pattern.match(text, at, end)):
                    tried.add(at)
                    found.append(Finding(code, where, m.group(0).strip()[:200]))
                    break
    return found


def principal(explicit: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """Who recorded: the option, else $RUNNER_PRINCIPAL, else user@host."""
    if explicit:
        return explicit
    if environ.get("RUNNER_PRINCIPAL"):
        return environ["RUNNER_PRINCIPAL"]
    import getpass  # with socket, only when the principal is not given
    import socket

    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(unix_nanos: int) -> str:
    return dt.datetime.fromtimestamp(unix_nanos / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def span_times(traces: str) -> tuple[str | None, str | None]:
    """The first start and the last end in the text of traces.jsonl (lines that do not parse are skipped)."""
    starts, ends = [], []
    for line in traces.splitlines():
        try:
            span = json.loads(line)
            starts.append(int(span["start_time_unix_nano"]))
            ends.append(int(span["end_time_unix_nano"]))
        except (ValueError, KeyError, TypeError):
            continue
    return (_rfc3339(min(starts)), _rfc3339(max(ends))) if starts else (None, None)


def summarise(
    *,
    who: str,
    session_created_at: str,
    redactions: Mapping[str, int],
    commands: Iterable[tuple[str, str]],  # (where, command line)
    texts: Iterable[tuple[str, str]],  # (where, text): traces, tool output
    secret_files: Iterable[str],  # members holding a secret that are files the session wrote (patches)
    hosts: Iterable[str],
    traces: str = "",
    now: Callable[[], str] | None = None,
) -> Audit:
    findings: list[Finding] = []
    for where, line in commands:
        findings += risks_in(line, where)
    for where, text in texts:
        findings += risks_in(text, where)
    findings += [Finding("secret-in-file", name, "a secret was written to a file") for name in secret_files]
    findings += [Finding("network-host", "cassettes", host) for host in sorted(set(hosts))]
    unique = list(dict.fromkeys(findings))
    first, last = span_times(traces)
    return Audit(
        who, session_created_at, first, last, now() if now else None, dict(redactions), tuple(unique)
    )
