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
from runner.pack.agentenv import replay_env
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
     "-b", "sid=" + os.environ["SESSION_COOKIE"]], capture_output=True, text=True, check=True).stdout
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
            "--", "python", "agent.py", env=_env(MODEL_BASE=server.base, AUTH=HEADER_TOKEN, SESSION_COOKIE=COOKIE),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "curl said hello /hello/agent" in proc.stdout  # the agent's output streamed through
    assert f"wrote {out}" in proc.stdout and "2 HTTP exchanges" in proc.stdout

    assert pack_read.verify(out).ok
    m = pack_summary.inspect(out).manifest
    command = m.agent.command
    assert command is not None and (command.argv, command.cwd, command.files) == (
        ("python", "agent.py"),
        ".",
        (),
    )
    assert command.env["MODEL_BASE"] == server.base  # configuration is replayed verbatim
    assert not {"OPENAI_API_KEY", "GITHUB_TOKEN", "AUTH", "PATH", "HTTPS_PROXY"} & set(command.env)
    reasons = {k: d.reason for k, d in m.environment.variables.items()}
    assert reasons["AUTH"] == "name-rule:auth" and reasons["SESSION_COOKIE"] == "name-rule:cookie"
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
    command = pack_summary.inspect(out).manifest.agent.command
    assert command is not None and command.exit_code == 3
    shown = subprocess.run(
        [sys.executable, "-m", "runner", "inspect", str(out)], env={**_env(), "COLUMNS": "200"},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "(exited 3)" in shown, shown


def test_a_ctrl_c_is_held_from_before_the_agent_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's first output can reach the user (who presses Ctrl-C) before `runner record` goes on: the
    signal is held from before the agent starts, so even that one still gets the pack written."""
    from runner.errors import UsageError
    from runner.recorder import wrap

    real_popen, seen = subprocess.Popen, []

    def popen(*args: object, **kwargs: object) -> object:
        seen.append(signal.getsignal(signal.SIGINT))
        return real_popen(*args, **kwargs)  # type: ignore[call-overload]

    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(wrap.subprocess, "Popen", popen)
    agent = wrap._Agent([sys.executable, "-c", "pass"], tmp_path, dict(os.environ))
    try:
        assert seen == [agent._hold]  # held while the agent starts
    finally:
        agent.wait(30)
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(UsageError, match="cannot start the agent"):
        wrap._Agent([str(tmp_path / "missing")], tmp_path, dict(os.environ))
    assert signal.getsignal(signal.SIGINT) is before  # an agent that does not start leaves it as it was


@pytest.mark.timeout(120)
# No pause: Ctrl-C comes while the session is still starting beside the agent (it is held until it has).
@pytest.mark.parametrize(
    ("pause", "sig"),
    [(0.0, signal.SIGINT), (0.2, signal.SIGINT), (0.2, signal.SIGTERM)],
    ids=["while-the-session-starts", "while-the-agent-runs", "sigterm-while-the-agent-runs"],
)
def test_ctrl_c_stops_the_agent_and_still_writes_what_was_captured(
    tmp_path: Path, pause: float, sig: signal.Signals
) -> None:
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
    time.sleep(pause)
    proc.send_signal(sig)
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


SDK_AGENT = """
import os, pathlib
import openai
config = (pathlib.Path.home() / ".config" / "agent.toml").read_text()
assert os.environ["AGENT_MODE"] == "fast", os.environ.get("AGENT_MODE")
client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL and OPENAI_API_KEY from the environment
answer = client.chat.completions.create(model="gpt-4o-mini", temperature=0, seed=7,
                                        messages=[{"role": "user", "content": config}])
pathlib.Path("greet.py").write_text("MODE = " + repr(answer.choices[0].message.content) + "\\n")
print("model answered", flush=True)
"""
KEY = SECRETS["OPENAI_API_KEY"]


def _sdk_agent(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    """A repository, an openai-SDK agent outside it (in tools/), its config under a home folder, and the
    environment it is configured through, as its documentation would say."""
    repo, tools, home = tmp_path / "repo", tmp_path / "tools", tmp_path / "home"
    make_repo(repo, {"greet.py": "MODE = None\n", ".gitignore": "__pycache__/\n"})
    tools.mkdir()
    (tools / "agent.py").write_text(SDK_AGENT)
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "agent.toml").write_text("mode = 'fast'\n")
    return repo, tools / "agent.py", home, {"HOME": str(home), "AGENT_MODE": "fast"}


def test_an_openai_sdk_agent_outside_the_repo_is_recorded_with_its_config_script_and_model_call(
    tmp_path: Path,
) -> None:
    repo, script, _, env = _sdk_agent(tmp_path)
    out = tmp_path / "sdk.tar.zst"
    with https_server(tmp_path) as server:
        proc = _record(
            repo, out, "--upstream-ca", str(server.ca.cert_path), "--capture-file", "~/.config/agent.toml",
            "--", "python", "../tools/agent.py",
            env=_env(**env, OPENAI_BASE_URL=server.base + "/v1"),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "model answered" in proc.stdout and "agent exit 0" in proc.stdout
    assert "1 HTTP exchanges (1 model calls)" in proc.stdout and "warning" not in proc.stderr

    m = pack_summary.inspect(out).manifest
    command = m.agent.command
    assert command is not None and command.stdin == "closed"
    assert command.argv == ("python", str(script)) and command.argv_recorded == (
        "python",
        "../tools/agent.py",
    )
    variables = m.environment.variables
    assert (variables["AGENT_MODE"].action, variables["AGENT_MODE"].reason) == ("verbatim", "not-secret")
    assert command.env["AGENT_MODE"] == "fast" and command.env["OPENAI_BASE_URL"] == server.base + "/v1"
    key = variables["OPENAI_API_KEY"]
    assert (key.action, key.reason) == ("placeholder", "name-rule:key")
    assert key.shape == mf.SecretShape(prefix="sk-proj-", length=len(KEY), charset="alnum")
    assert (
        variables["PATH"].reason == "host-specific" and variables["HTTPS_PROXY"].reason == "runner-internal"
    )
    assert "OPENAI_API_KEY" not in command.env and "PATH" not in command.env and "HOME" not in command.env
    stand_in = replay_env(m)["OPENAI_API_KEY"]
    assert stand_in.startswith("sk-proj-") and len(stand_in) == len(KEY) and stand_in != KEY

    by_role = {f.role: f for f in command.files}
    assert by_role["script"].path == str(script) and by_role["config"].path == "~/.config/agent.toml"
    files = members(out)
    assert files[by_role["script"].member] == SDK_AGENT.encode()
    assert files[by_role["config"].member] == b"mode = 'fast'\n"
    assert m.recording == mf.Recording(exchanges=1, model_exchanges=1, loopback=True, warnings=())
    assert b"mode = 'fast'" in files["patches/0001.diff"]
    assert KEY.encode() not in b"".join(files.values())
    snapshot_env = json.loads(files["env/snapshot.json"])["env"]
    assert snapshot_env["AGENT_MODE"] == "fast" and snapshot_env["OPENAI_API_KEY"].startswith(
        ("hmac-sha256:", "REDACTED_")
    )

    shown = subprocess.run(
        [sys.executable, "-m", "runner", "inspect", str(out)], env=_env(COLUMNS="400"),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "OPENAI_API_KEY (name-rule:key)" in shown and "PATH (host-specific)" in shown
    assert "1 exchanges (1 model calls), localhost recorded" in shown


def test_an_agent_whose_local_model_calls_were_not_recorded_gets_a_warning_naming_the_flag(
    tmp_path: Path,
) -> None:
    repo, _, _, env = _sdk_agent(tmp_path)
    out = tmp_path / "unrecorded.tar.zst"
    with https_server(tmp_path) as server:
        proc = _record(
            repo, out, "--no-record-loopback", "--", "python", "../tools/agent.py",
            env=_env(**env, OPENAI_BASE_URL=server.base + "/v1"),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "0 HTTP exchanges (0 model calls)" in proc.stdout
    assert (
        "warning: no HTTP exchange was recorded although OPENAI_BASE_URL names a model server" in proc.stderr
    )
    assert "--no-record-loopback" in proc.stderr
    m = pack_summary.inspect(out).manifest
    assert m.recording is not None and not m.recording.loopback and len(m.recording.warnings) == 1
    shown = subprocess.run(
        [sys.executable, "-m", "runner", "inspect", "--json", str(out)], env=_env(),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert json.loads(shown)["manifest"]["recording"]["warnings"] == list(m.recording.warnings)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--capture-file", "~/missing.toml"), {}, "--capture-file ~/missing.toml: does not exist"),
        ((), {"RUNNER_KEYRING": "/nonexistent/acme.keys"}, "cannot read key file /nonexistent/acme.keys"),
        ((), {"RUNNER_REDACTION_POLICY": "no-such-policy"}, "unknown redaction policy 'no-such-policy'"),
        (("--out-parent-is-a-file",), {}, "not a folder for the pack"),
    ],
)
def test_a_bad_setting_exits_2_in_one_line_before_the_agent_runs(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "x.tar.zst"
    if args == ("--out-parent-is-a-file",):
        (tmp_path / "file").write_text("")
        out, args = tmp_path / "file" / "x.tar.zst", ()
    marker = tmp_path / "agent-ran"
    proc = _record(
        repo, out, *args, "--", "python", "-c", f"open({str(marker)!r}, 'w')",
        env=_env(HOME=str(tmp_path), **env),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
    assert not marker.exists() and not list(tmp_path.rglob("*.tar.zst*"))


def test_the_finishing_status_spans_the_writing_of_the_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runner record` shows a status line from the agent's end (and its checks') until the pack is
    written: what the status sees when it starts and when it stops."""
    from collections.abc import Iterator
    from contextlib import contextmanager

    from runner.recorder import RecordOptions
    from runner.recorder.wrap import record_command

    repo, out = tmp_path / "repo", tmp_path / "out.tar.zst"
    make_repo(repo, {"a.txt": "a\n"})
    seen: list[tuple[str, bool]] = []

    @contextmanager
    def finishing() -> Iterator[None]:
        seen.append(("start", out.exists()))
        yield
        seen.append(("stop", out.exists()))

    monkeypatch.chdir(repo)
    record_command(
        ["sh", "-c", "echo b > a.txt"], out, repo=repo, checks=["true"], options=RecordOptions(http=False),
        finishing=finishing,
    )  # fmt: skip
    assert seen == [("start", False), ("stop", True)]
