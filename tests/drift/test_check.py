"""`runner drift` against a real OpenAI-compatible server on loopback: packs recorded for real with the
openai client (SDK) and through the recording proxy (black-box), re-sent, scored, retried, refused."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.recorder import record
from tests.gitrepo import make_repo
from tests.helpers.https_server import STREAM_WORDS, https_server
from tests.helpers.model_server import ModelServer, model_server
from tests.recorder.test_session import HOST_ENV

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-drift-planted-credential-0123456789"
TOOL = {
    "type": "function",
    "function": {
        "name": "edit_file",
        "description": "Write a file of the workspace.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "maxLength": 200},
                "mode": {"type": "string", "enum": ["write", "append"]},
            },
            "required": ["path", "mode"],
            "additionalProperties": False,
        },
    },
}


def sdk_pack(
    tmp: Path, server: ModelServer, name: str, *, temperature: float = 0, tool: dict[str, Any] = TOOL
) -> Path:
    """A pack recorded with the openai client: one tool call, then one streamed text answer."""
    repo = tmp / f"repo-{name}"
    if not repo.exists():
        make_repo(repo, {"greet.py": "def greet():\n    return 'hi'\n"})
    out = tmp / f"{name}.tar.zst"
    with record(out=out, repo=repo, agent="t", http=False) as s:
        client = s.instrument(openai.OpenAI(base_url=server.base, api_key="sk-recording", max_retries=0))
        messages = [{"role": "system", "content": "You fix code."}, {"role": "user", "content": "fix greet"}]
        client.chat.completions.create(model="m-1", temperature=0, messages=messages, tools=[tool])
        stream = client.chat.completions.create(
            model="m-1", temperature=temperature, messages=messages, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream) == server.text
    return out


def drift(*args: str) -> Any:
    return CliRunner().invoke(app, ["drift", *args], env={"OPENAI_API_KEY": KEY})


@pytest.fixture
def server() -> Any:
    with model_server() as s:
        yield s


def test_identical_answers_score_1_and_the_credential_goes_only_to_the_provider(
    tmp_path: Path, server: ModelServer
) -> None:
    pack = sdk_pack(tmp_path, server, "a")
    recorded = len(server.requests)
    report, md = tmp_path / "drift.json", tmp_path / "drift.md"
    result = drift(str(pack), "--base-url", server.base, "--json", str(report), "--markdown", str(md))
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    calls = data["packs"][0]["calls"]
    assert [c["score"]["score"] for c in calls] == [1.0, 1.0] and data["packs"][0]["score"] == 1.0
    assert [c["streamed"] for c in calls] == [False, True]
    sent = server.requests[recorded:]
    assert [r[2].get("stream", False) for r in sent] == [False, True]  # a streamed call goes out streamed
    assert all(r[2]["seed"] == 424242 and r[2]["temperature"] == 0 for r in sent)  # same seed, same params
    assert sent[0][2]["tools"] == [TOOL]
    assert all({k.lower(): v for k, v in r[1].items()}["authorization"] == f"Bearer {KEY}" for r in sent)
    for text in (result.output, report.read_text(), md.read_text()):
        assert KEY not in text
    assert "score 1.000" in md.read_text()


def test_changed_answers_fall_under_the_threshold_and_exit_1(tmp_path: Path, server: ModelServer) -> None:
    pack = sdk_pack(tmp_path, server, "a")
    server.text = "I rewrote the whole module in another language."
    server.tool_arguments = {"path": "other.py", "mode": "append"}
    report = tmp_path / "drift.json"
    result = drift(str(pack), "--base-url", server.base, "--json", str(report))
    assert result.exit_code == 1, result.output
    scores = [c["score"] for c in json.loads(report.read_text())["packs"][0]["calls"]]
    assert scores[0]["tools"] == 0.0 and scores[1]["text"] < 0.5
    assert all(s["score"] < 0.9 for s in scores)
    assert "DRIFT call #1" in result.output and "DRIFT call #2" in result.output


def test_a_changed_model_revision_is_named(tmp_path: Path, server: ModelServer) -> None:
    pack = sdk_pack(tmp_path, server, "a")
    server.model, server.fingerprint = "m-1-2026-11-01", "fp_two"
    result = drift(str(pack), "--base-url", server.base)
    assert result.exit_code == 0, result.output  # same answers: a new revision alone is not drift
    assert (
        "revision changed: model m-1 -> m-1-2026-11-01; system_fingerprint fp_one -> fp_two" in result.output
    )


def test_rate_limits_and_5xx_are_retried_and_not_counted_as_drift(
    tmp_path: Path, server: ModelServer
) -> None:
    pack = sdk_pack(tmp_path, server, "a")
    server.fail_first = [429, 503]
    report = tmp_path / "drift.json"
    result = drift(str(pack), "--base-url", server.base, "--json", str(report))
    assert result.exit_code == 0, result.output
    calls = json.loads(report.read_text())["packs"][0]["calls"]
    assert calls[0]["retries"] == ["429", "503"] and calls[0]["score"]["score"] == 1.0
    assert "retried after HTTP 429, 503" in result.output


def test_an_unreachable_provider_is_exit_3_without_a_traceback(tmp_path: Path, server: ModelServer) -> None:
    pack = sdk_pack(tmp_path, server, "a")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: connection refused
        result = drift(str(pack), "--base-url", f"http://127.0.0.1:{closed}/v1")
    assert result.exit_code == 3, result.output
    assert "cannot be reached" in result.output and "Traceback" not in result.output
    assert KEY not in result.output


def test_sampling_takes_the_first_and_last_calls(tmp_path: Path, server: ModelServer) -> None:
    pack = sdk_pack(tmp_path, server, "a")
    report = tmp_path / "drift.json"
    result = drift(str(pack), "--base-url", server.base, "--sample", "1", "--json", str(report))
    assert result.exit_code == 0, result.output
    pack_report = json.loads(report.read_text())["packs"][0]
    assert [c["number"] for c in pack_report["calls"]] == [1] and pack_report["total_calls"] == 2


AGENT = """
import os
import openai
client = openai.OpenAI(base_url=os.environ["MODEL_BASE"] + "/v1", api_key="sk-agent")
stream = client.chat.completions.create(model="m-1", temperature=0, seed=7, stream=True,
                                        messages=[{"role": "user", "content": "fix the greeting"}])
print("model said", "".join(c.choices[0].delta.content or "" for c in stream), flush=True)
"""


def test_a_black_box_recording_is_re_sent_from_its_cassette(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"greet.py": "def greet():\n    return 'hi'\n", ".gitignore": "__pycache__/\n"})
    (repo / "agent.py").write_text(AGENT)
    pack = tmp_path / "wrapped.tar.zst"
    with https_server(tmp_path) as upstream:
        proc = subprocess.run(
            [sys.executable, "-m", "runner", "record", "--out", str(pack), "--record-loopback",
             "--upstream-ca", str(upstream.ca.cert_path), "--", "python", "agent.py"],
            cwd=repo, env={**HOST_ENV, "PYTHONPATH": str(ROOT), "MODEL_BASE": upstream.base},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with model_server() as server:
        server.text = "".join(STREAM_WORDS)
        server.fingerprint = ""
        same = drift(str(pack), "--base-url", server.base)
        assert same.exit_code == 0, same.output
        assert "call #1 openai.chat m-1: 1.000" in same.output
        assert server.requests[0][2]["seed"] == 7 and server.requests[0][2]["stream"] is True
        server.text = "Something else entirely, said at length."
        changed = drift(str(pack), "--base-url", server.base)
        assert changed.exit_code == 1, changed.output


def test_a_file_that_is_not_a_pack_is_bad_input_and_no_report_is_written(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.zst"
    bogus.write_bytes(b"\x28\xb5\x2f\xfd not really zstd")
    report = tmp_path / "drift.json"
    for pack in (bogus, tmp_path / "missing.tar.zst"):
        result = drift(str(pack), "--base-url", "http://127.0.0.1:9/v1", "--json", str(report))
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
    assert not report.exists()
