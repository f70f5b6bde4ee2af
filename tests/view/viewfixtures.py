"""Packs and run folders for the viewer's tests: one of every span type, and a diverged replay run.

`session_pack(tmp_path, text=...)` builds a real pack (tests.packfactory) whose every field (span names,
attributes, messages, tool schemas, retrieval, stdout, the HTTP exchange, the patch) carries `text`;
`diverged_run(runs_dir, text=...)` writes a run folder through the real report writer (report.to_json).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from runner.pack import manifest as mf
from runner.pack.traces import Span, SpanStatus, span_line
from runner.privacy.mask import PrivacyOptions
from runner.replay.compare import Difference
from runner.replay.outcome import CassetteUsage, Cause, PackOutcome, StepOutcome, Verdict
from runner.replay.report import to_json
from tests.packfactory import TRACE_ID, command, make_pack, patch

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>\x01\x1b[31m</script><!-- \u2028\u2029 &amp;"
T0 = 1_764_000_000_000_000_000


def _sid(n: int) -> str:
    return f"{n + 1:016x}"


def _span(
    n: int, parent: int | None, name: str, kind: str, start_ms: int, dur_ms: int, **attrs: object
) -> Span:
    return Span(
        trace_id=TRACE_ID, span_id=_sid(n), parent_span_id=None if parent is None else _sid(parent), name=name,
        start_time_unix_nano=T0 + start_ms * 1_000_000, end_time_unix_nano=T0 + (start_ms + dur_ms) * 1_000_000,
        attributes={"runner.span.type": kind, **attrs},  # type: ignore[dict-item]
        status=SpanStatus("ERROR", f"failed {name}") if kind == "http" else SpanStatus("OK"),
    )  # fmt: skip


def session_pack(
    tmp_path: Path,
    *,
    text: str = "",
    name: str = "session.tar.zst",
    privacy: PrivacyOptions | None = None,
    reason: str | None = None,
) -> Path:
    """A pack with a session, task, llm, tool, http, patch and artifact span, each carrying `text`."""
    stdout = f"1 failed, 2 passed {text}\n".encode()
    stderr = f"AssertionError: expected 3 {text}\n".encode()
    diff = f"--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b  {text}\n+    return a + b\n"
    messages = [
        {"role": "system", "content": f"You fix bugs. {text}"},
        {"role": "user", "content": f"Why does test_add fail? {text}"},
    ]
    answer = [{"role": "assistant", "content": f"The operator is wrong. {text}",
               "tool_calls": [{"id": "c1", "type": "function",
                               "function": {"name": f"run_tests{text}", "arguments": json.dumps({"path": f"tests/{text}"})}}]}]  # fmt: skip
    tools = [{"type": "function", "function": {"name": "run_tests", "description": f"Run pytest {text}",
              "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]  # fmt: skip
    request = {"model": "gpt-4o-mini", "messages": messages, "tools": tools,
               "retrieval": [{"order": 0, "sha256": "ab" * 32, "content": f"def add(a, b): return a - b {text}"}]}  # fmt: skip
    exchange = {
        "v": 1, "started": 1764000000.5, "duration": 0.2,
        "request": {"method": "POST", "scheme": "https", "host": "api.example.invalid", "port": 443,
                    "path": f"/v1/chat?q={text}", "headers": [["content-type", "application/json"]],
                    "body": {"text": f'{{"q": "{text}"}}'}},
        "response": {"status": 200, "headers": [["x-note", text]], "body": {"text": f"recorded answer {text}"}},
    }  # fmt: skip
    sha_out = hashlib.sha256(stdout).hexdigest()
    sha_err = hashlib.sha256(stderr).hexdigest()
    spans = [
        _span(0, None, f"session {text}", "session", 0, 9000, **{"runner.agent.name": f"agent {text}"}),
        _span(1, 0, f"task fix {text}", "task", 100, 8000),
        _span(2, 1, f"chat gpt-4o-mini {text}", "llm", 200, 1500, **{
            "runner.llm.call": 1, "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.input.messages": json.dumps(messages), "gen_ai.output.messages": json.dumps(answer),
            "gen_ai.tool.definitions": json.dumps(tools), "runner.note": text}),
        _span(3, 1, f"pytest {text}", "tool", 1800, 2500, **{
            "runner.tool.argv": ["python", "-m", "pytest", text], "runner.tool.exit_code": 1,
            "runner.tool.stdout.sha256": sha_out, "runner.tool.stderr.sha256": sha_err}),
        _span(4, 2, f"POST api.example.invalid {text}", "http", 300, 200, **{"runner.cassette.index": 1}),
        _span(5, 1, f"file.patch {text}", "patch", 4500, 100, **{"runner.patch.reason": text}),
        _span(6, 1, f"artifact log {text}", "artifact", 4700, 50, **{"runner.artifact.sha256": sha_out}),
    ]  # fmt: skip
    return make_pack(
        tmp_path,
        name=name,
        steps=[
            patch("p1", diff, reason=f"fix add {text}" if reason is None else reason, span_id=_sid(5)),
            command(
                "c1",
                ["python", "-m", "pytest", "-q"],
                stdout=stdout,
                stderr=stderr,
                exit_code=1,
                span_id=_sid(3),
            ),
        ],
        files={
            "traces.jsonl": "".join(span_line(s) + "\n" for s in spans).encode(),
            "prompts/0001-request.json": json.dumps(request, indent=2).encode(),
            "prompts/0001-response.json": json.dumps(
                {"choices": [{"message": answer[0]}]}, indent=2
            ).encode(),
            "cassettes/http.jsonl": (json.dumps(exchange) + "\n").encode(),
        },
        cassettes=(mf.CassetteIndex(path="cassettes/http.jsonl", format_version=1, count=1),),
        privacy=privacy,
    )


def diverged_run(runs_dir: Path, *, text: str = "") -> Path:
    """A run folder of a replay that diverged at step c1, written by the real report writer."""
    run = runs_dir / "session" / "20261125T120000"
    (run / "steps").mkdir(parents=True)
    (run / "steps" / "c1.stdout").write_text(f"2 failed, 1 passed {text}\n")
    (run / "steps" / "c1.stderr").write_text("")
    diff = (
        "--- recorded stdout\n+++ replayed stdout\n@@ -1 +1 @@\n"
        f"-1 failed, 2 passed {text}\n+2 failed, 1 passed {text}\n"
    )
    outcome = PackOutcome(
        pack="session.tar.zst", verdict=Verdict.DIVERGED, cause=Cause.BEHAVIOUR, run_dir=str(run),
        steps=(StepOutcome("p1", "patch", True, f"applied {text}"),
               StepOutcome("c1", "command", False, f"stdout differs (1 line(s)) {text}",
                           (Difference("stdout", f"stdout differs (1 line(s)) {text}", diff),), 1.5, str(run / "steps"))),
        warnings=(f"a warning {text}",), cassettes=CassetteUsage(served=3, misses=(f"GET https://x.invalid/{text}: no match",), unused=1),
        duration_s=4.2,
    )  # fmt: skip
    (run / "report.json").write_text(to_json([outcome]), encoding="utf-8")
    (run / "proxy-report.json").write_text(json.dumps({"v": 1, "served": 3, "misses": [{"url": text}]}))
    return run


def big_pack(tmp_path: Path, spans: int = 10_000, *, name: str = "big.tar.zst") -> Path:
    """A pack of `spans` spans: a session, tasks of 50 children each, and llm/tool/http/patch leaves."""
    kinds = ("llm", "tool", "http", "patch", "artifact")
    rows = [_span(0, None, "session", "session", 0, spans * 10)]
    task = 0
    for n in range(1, spans):
        if n % 50 == 1:
            task = n
            rows.append(_span(n, 0, f"task {n // 50}", "task", n * 10, 500))
            continue
        kind = kinds[n % len(kinds)]
        attrs: dict[str, object] = {"runner.note": f"span {n}"}
        if kind == "llm":
            attrs["gen_ai.input.messages"] = json.dumps([{"role": "user", "content": f"question {n}"}])
            attrs["gen_ai.output.messages"] = json.dumps([{"role": "assistant", "content": f"answer {n}"}])
        rows.append(_span(n, task, f"{kind} {n}", kind, n * 10, 8, **attrs))
    return make_pack(
        tmp_path, name=name, files={"traces.jsonl": "".join(span_line(s) + "\n" for s in rows).encode()}
    )
