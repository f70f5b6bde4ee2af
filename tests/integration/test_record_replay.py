"""Recorded sessions replay in Docker with the model server stopped: a pack from the SDK example agent, and one
from `runner record` around a process using curl and the streaming openai client, configured through
the environment, also with --rerun-agent, and that one also on the local backend with no engine."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.pack import manifest as mf
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from tests.gitrepo import make_repo
from tests.helpers.https_server import https_server
from tests.integration.test_replay import runner
from tests.recorder.test_session import copy_repo

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "packs" / "src" / "sdk-agent"
KEY = "sk-proj-plantedOpenAIkey0123456789abcdefXYZ"

# The model server listens on loopback, which clients skip the proxy for (NO_PROXY): this agent routes its
# loopback traffic through the proxy, as a real agent's traffic to a model provider would be.
AGENT = """
import os, subprocess
import openai
os.environ["NO_PROXY"] = os.environ["no_proxy"] = ""
assert os.environ["AGENT_MODE"] == "fast"  # configuration through the environment reaches the re-run agent
BASE = "{base}"
hello = subprocess.run(["curl", "-sS", "--fail", BASE + "/hello/agent"], capture_output=True, text=True, check=True)
client = openai.OpenAI(base_url=BASE + "/v1")
stream = client.chat.completions.create(model="gpt-4o-mini", temperature=0, seed=7, stream=True,
                                        messages=[{{"role": "user", "content": "fix the greeting"}}])
text = "".join(c.choices[0].delta.content or "" for c in stream)
with open("greet.py", "w") as f:
    f.write("def greet():\\n    return " + repr(hello.stdout.strip() + " / " + text) + "\\n")
"""


@pytest.fixture(scope="module")
def agent_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PATH for the recorded agent: a small virtualenv (openai, pytest) first, so the environment snapshot,
    and the image replay builds from it, hold those packages only."""
    venv = tmp_path_factory.mktemp("agent") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wanted = [f"{name}=={importlib.metadata.version(name)}" for name in ("openai", "pytest")]
    cert = ["--cert", os.environ["SSL_CERT_FILE"]] if os.environ.get("SSL_CERT_FILE") else []
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *cert, *wanted],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return f"{venv / 'bin'}:{os.environ['PATH']}"


def replay_json(pack_path: Path, tmp_path: Path, *extra: str, backend: str = "docker") -> dict[str, Any]:
    env = {"DOCKER_HOST": "unix:///nonexistent.sock"} if backend == "local" else {}  # the engine "stopped"
    proc = runner(
        "replay", str(pack_path), "--json", "-", "--backend", backend, *extra, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)["packs"][0]
    assert doc["verdict"] == "reproduced", doc
    return doc


def test_sdk_example_pack_replays_as_reproduced_with_the_server_stopped(
    own_images: Any, agent_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import agent  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLE))
    repo = copy_repo(EXAMPLE / "repo", tmp_path / "repo")
    out = tmp_path / "sdk.tar.zst"
    monkeypatch.setenv("PATH", agent_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with https_server(tmp_path) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base + "/v1")
        agent.main(repo, out, upstream_ca=server.ca.cert_path, record_loopback=True)
    doc = replay_json(out, tmp_path)
    assert [s["step_id"] for s in doc["steps"]] == ["c1", "p1", "c2"]


def test_runner_record_pack_replays_offline_and_the_agent_rerun_reproduces_its_patch(
    own_images: Any, agent_path: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"greet.py": "def greet():\n    return 'hi'\n", ".gitignore": "__pycache__/\n"})
    out = tmp_path / "wrapped.tar.zst"
    with https_server(tmp_path) as server:
        (repo / "agent.py").write_text(AGENT.format(base=server.base))
        proc = runner(
            "record", "--out", str(out), "--upstream-ca", str(server.ca.cert_path),
            "--check", "python -c 'import greet; print(greet.greet())'", "--", "python", "agent.py",
            cwd=repo, env={"PATH": agent_path, "OPENAI_API_KEY": KEY, "AGENT_MODE": "fast"},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert pack_read.verify(out).ok
    m = pack_summary.inspect(out).manifest
    assert m.cassettes[0].count == 2 and m.agent.patch == "p1"
    assert m.recording == mf.Recording(exchanges=2, model_exchanges=1, loopback=True, warnings=())
    assert m.environment.variables["AGENT_MODE"] == mf.EnvDecision("verbatim", "not-secret")
    assert m.environment.variables["OPENAI_API_KEY"].action == "placeholder"
    assert isinstance(m.steps[1], mf.CommandStep)
    for backend in ("docker", "local"):
        assert replay_json(out, tmp_path, backend=backend)["backend"] == backend
        rerun = replay_json(out, tmp_path, "--rerun-agent", backend=backend)
        patch_step = next(s for s in rerun["steps"] if s["step_id"] == "p1")
        assert "re-run agent reproduced the patch" in patch_step["summary"], patch_step
        assert rerun["cassettes"]["served"] == 2 and rerun["cassettes"]["misses"] == []
