"""`runner record -- CMD`: curl and the openai client (streaming) through the recording proxy, no secrets in
the pack, the agent command and patch in the manifest, checks as steps, Ctrl-C and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.pack import manifest as mf
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from tests.gitrepo import make_repo
from tests.helpers.https_server import STREAM_WORDS, https_server
from tests.hostreplay import rerun
from tests.recorder.test_session import HOST_ENV, members

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "OPENAI_API_KEY": "sk-proj-plantedOpenAIkey0123456789abcdefXYZ",
    "GITHUB_TOKEN": "ghp_plantedGitHubToken0123456789abcdefXY",
}
HEADER_TOKEN = "ghp_plantedHeaderToken0123456789abcdefAB"
COOKIE = "planted-cookie-value-77"

AGENT = """
import os, subprocess
import openai
base = os.environ["MODEL_BASE"]
hello = subprocess.run(
    ["curl", "-sS", "--fail", base + "/hello/agent", "-H", "Authorization: Bearer " + os.environ["AUTH"],
     "-b", "sid=" + os.environ["SID"]], capture_output=True, text=True, check=True).stdout
print("curl said", hello.strip(), flush=True)
client = openai.OpenAI(base_url=base + "/v1")
stream = client.chat.completions.create(model="gpt-4o-mini", temperature=0, seed=7, stream=True,
                                        messages=[{"role": "user", "content": "fix the greeting"}])
text = "".join(c.choices[0].delta.content or "" for c in stream)
with open("greet.py", "w") as f:
    f.write("def greet():\\n    return " + repr(text) + "\\n")
print("model said", text, flush=True)
"""


def _env(**extra: str) -> dict[str, str]:
    return {**HOST_ENV, **SECRETS, "PYTHONPATH": str(ROOT), **extra}


def _record(repo: Path, out: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "record", "--out", str(out), *args],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_record_curl_and_streaming_openai_makes_a_pack_that_verifies_and_reproduces(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"greet.py": "def greet():\n    return 'hi'\n", ".gitignore": "__pycache__/\n"})
    (repo / "agent.py").write_text(AGENT)  # untracked at start: part of the dirty baseline
    out = tmp_path / "wrapped.tar.zst"
    check = 'python -c "import greet; print(greet.greet())"'
    with https_server(tmp_path) as server:
        proc = _record(
            repo, out, "--record-loopback", "--upstream-ca", str(server.ca.cert_path), "--check", check,
            "--", "python", "agent.py", env=_env(MODEL_BASE=server.base, AUTH=HEADER_TOKEN, SID=COOKIE),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "curl said hello /hello/agent" in proc.stdout  # the agent's output streamed through
    assert f"wrote {out}" in proc.stdout and "2 HTTP exchanges" in proc.stdout

    assert pack_read.verify(out).ok
    m = pack_summary.inspect(out).manifest
    assert m.agent.command == mf.AgentCommand(argv=("python", "agent.py"), cwd=".", env=m.agent.command.env)  # type: ignore[union-attr]
    assert not set(m.agent.command.env) - {"LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONHASHSEED",  # type: ignore[union-attr]
                                           "PYTHONDONTWRITEBYTECODE", "NODE_ENV", "CI", "OMP_NUM_THREADS",
                                           "CUDA_VISIBLE_DEVICES"}  # fmt: skip
    patch_step, check_step = m.steps
    assert isinstance(patch_step, mf.PatchStep) and m.agent.patch == patch_step.id
    assert isinstance(check_step, mf.CommandStep) and check_step.argv == ("/bin/sh", "-c", check)
    assert m.git.dirty and m.cassettes[0].count == 2

    files = members(out)
    exchanges = [json.loads(line) for line in files["cassettes/http.jsonl"].splitlines()]
    assert {e["request"]["path"] for e in exchanges} == {"/hello/agent", "/v1/chat/completions"}
    streamed = next(e for e in exchanges if e["request"]["path"] == "/v1/chat/completions")
    assert "".join(c["text"] for c in streamed["response"]["chunks"]).count("data:") == len(STREAM_WORDS) + 1
    assert "".join(STREAM_WORDS).encode() in files[patch_step.patch]
    everything = b"".join(files.values())
    for secret in [*SECRETS.values(), HEADER_TOKEN, COOKIE]:
        assert secret.encode() not in everything, secret

    # Offline: the server is stopped; the steps re-run from the pack and reproduce.
    assert rerun(out, tmp_path / "replay", HOST_ENV) == []


def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "x.tar.zst"
    no_command = _record(repo, out, "--no-http", env=_env())
    assert no_command.returncode == 2 and "no agent command" in no_command.stderr
    not_git = _record(tmp_path, out, "--no-http", "--", "true", env=_env())
    assert not_git.returncode == 2 and "not a git repository" in not_git.stderr
    missing = _record(repo, out, "--no-http", "--", "no-such-agent-binary", env=_env())
    assert missing.returncode == 2 and "cannot start the agent" in missing.stderr
    assert not list(tmp_path.glob("*.tar.zst*"))


def test_a_failing_agent_is_recorded_with_its_exit_code(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "failing.tar.zst"
    agent = "open('a.txt', 'w').write('two\\n'); raise SystemExit(3)"
    proc = _record(
        repo, out, "--no-http", "--artifacts", "failing-only", "--", "python", "-c", agent, env=_env()
    )
    assert proc.returncode == 0, proc.stderr
    assert "agent exit 3" in proc.stdout and "session failed" in proc.stdout
    files = members(out)
    spans = [json.loads(line) for line in files["traces.jsonl"].splitlines()]
    agent_span = next(s for s in spans if s["name"] == "agent")
    assert agent_span["status"] == {"code": "ERROR", "description": "agent exited with code 3"}
    assert agent_span["attributes"]["runner.agent.exit_code"] == 3
    assert any(name.startswith("artifacts/") for name in files)  # failing session: artifacts kept


@pytest.mark.timeout(120)
def test_ctrl_c_stops_the_agent_and_still_writes_what_was_captured(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "interrupted.tar.zst"
    agent = "import time; open('a.txt', 'w').write('partial\\n'); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "record", "--out", str(out), "--no-http", "--check", "true",
         "--", "python", "-c", agent],
        cwd=repo, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and str(out) in stderr
    m = pack_summary.inspect(out).manifest
    assert [s.kind for s in m.steps] == ["patch"]  # checks do not run after Ctrl-C
    assert b"partial" in members(out)["patches/0001.diff"]
    assert os.path.getsize(out) > 0


def test_an_agent_past_its_timeout_is_stopped_and_the_pack_says_so(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "slow.tar.zst"
    agent = "import time; open('a.txt', 'w').write('late\\n'); time.sleep(60)"
    started = time.monotonic()
    proc = _record(repo, out, "--no-http", "--timeout", "1", "--", "python", "-c", agent, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 30
    assert "agent killed at its --timeout" in proc.stdout
    files = members(out)
    agent_span = next(
        json.loads(line) for line in files["traces.jsonl"].splitlines() if b'"name":"agent"' in line
    )
    assert agent_span["status"]["description"] == "agent killed after its 1s timeout"
    assert b"late" in files["patches/0001.diff"]
