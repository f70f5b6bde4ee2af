"""The replay test matrix on both backends: reproduced, diverged, bad pack, timeout, a re-run agent; then
what only the local backend has to prove: the host's loopback is out of reach, `auto` without an engine,
`--no-isolation` said first, and nothing left behind after Ctrl-C."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from packs.build import build
from runner.pack import manifest as mf
from tests.gitrepo import make_repo
from tests.helpers.prerequisites import unavailable
from tests.packfactory import command, make_pack, patch

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent.sock"  # the engine is shared: "stopped" is simulated for the runner only
CACHE = str(Path(tempfile.gettempdir()) / "runner-test-cache")  # virtualenvs shared by these tests
MARK = "4321"  # in the argv of the commands these tests start, to see them run


@pytest.fixture(scope="module")
def example_packs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("packs")
    return {name: build(ROOT / "packs" / "src" / name, out) for name in ("demo-fix", "demo-diverge")}


@pytest.fixture(params=["docker", "local"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("own_images")  # skips locally, fails in CI, without an engine
    elif subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode != 0:
        unavailable("no network namespace can be made here (run as root)")
    return str(request.param)


def runner(*args: str, cwd: Path, backend: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "XDG_CACHE_HOME": CACHE,
           "TMPDIR": str(private_tmp(cwd))}  # fmt: skip
    if backend != "docker":  # and auto finds no engine
        env["DOCKER_HOST"] = NO_ENGINE
    return subprocess.run(
        [sys.executable, "-m", "runner", "replay", *args, "--backend", backend], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def left_running(tmp_path: Path) -> list[str]:
    """Command lines of the processes a test's runner started (their environment names its private TMPDIR:
    the namespace's holder, the proxy, the commands) that still run; other replays share this machine."""
    mark = f"TMPDIR={private_tmp(tmp_path)}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if mark in environ:
            found.append(cmdline)
    return found


def private_tmp(tmp_path: Path) -> Path:
    """The runner's TMPDIR in these tests: /tmp is shared with other replays."""
    folder = tmp_path / "tmp"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture()
def nothing_left(tmp_path: Path) -> Iterator[None]:
    yield
    # The process making the next replay's spare containers (Docker) ends by itself, within seconds;
    # anything else left running never does.
    deadline = time.monotonic() + 60
    while (left := left_running(tmp_path)) and time.monotonic() < deadline:
        assert all("runner.replay.spare" in cmd for cmd in left), left
        time.sleep(0.5)
    assert not left
    assert not list(private_tmp(tmp_path).glob("runner-*"))


def _pack(tmp_path: Path, *steps: Any, **fields: Any) -> Path:
    repo = tmp_path / "repo"
    make_repo(repo, {"notes.txt": "one\n"})
    return make_pack(tmp_path, repo=repo, files={"env/pip-freeze.txt": b""}, steps=list(steps), **fields)


def test_reproduced_and_diverged_packs(
    example_packs: dict[str, Path], backend: str, tmp_path: Path, nothing_left: None
) -> None:
    host_has_workspace = Path("/workspace").exists()  # the local backend must not make it (absent here)
    proc = runner(str(example_packs["demo-fix"]), str(example_packs["demo-diverge"]), "--json", "-",
                  cwd=tmp_path, backend=backend)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    packs = {p["pack"]: p for p in json.loads(proc.stdout)["packs"]}
    fix, diverge = packs["demo-fix.tar.zst"], packs["demo-diverge.tar.zst"]
    assert (fix["verdict"], fix["backend"], fix["cassettes"]["served"]) == ("reproduced", backend, 1)
    assert (diverge["verdict"], diverge["first_divergence"]) == ("diverged", "rerun-tests")
    assert not [w for w in fix["warnings"] if "workspace" in w]
    pytest_output = (tmp_path / fix["steps"][-1]["log_dir"] / "rerun-tests.stdout").read_text()
    assert "generated xml file: /workspace/junit.xml" in pytest_output  # its commands ran in /workspace
    assert Path("/workspace").exists() == host_has_workspace


def test_a_bad_pack_is_exit_2(backend: str, tmp_path: Path, nothing_left: None) -> None:
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"this is not a pack at all\n" * 10)
    proc = runner(str(junk), "--json", "-", cwd=tmp_path, backend=backend)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "junk.tar.zst" in json.loads(proc.stdout)["packs"][0]["error"]


def test_a_timeout_kills_the_command_and_what_it_started(
    backend: str, tmp_path: Path, nothing_left: None
) -> None:
    pack = _pack(tmp_path, command("slow", ["sh", "-c", f"sleep {MARK} & sleep {MARK}"], timeout=1))
    proc = runner(str(pack), "--json", "-", cwd=tmp_path, backend=backend)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)["packs"][0]
    assert out["cause"] == "timeout" and "killed after its timeout of 1s" in out["steps"][0]["summary"]


def test_a_rerun_agent_reproduces_its_patch(backend: str, tmp_path: Path, nothing_left: None) -> None:
    recorded = (
        "diff --git a/notes.txt b/notes.txt\n--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1,2 @@\n one\n+two\n"
    )
    script = "import pathlib; pathlib.Path('notes.txt').write_text('one\\ntwo\\n')"
    agent = mf.Agent(
        name="scripted", command=mf.AgentCommand(argv=("python3", "-c", script), timeout=60), patch="agent"
    )
    check = command("check", ["cat", "notes.txt"], stdout=b"one\ntwo\n")
    pack = _pack(tmp_path, patch("agent", recorded), check, agent=agent)
    proc = runner(str(pack), "--rerun-agent", "--json", "-", cwd=tmp_path, backend=backend)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "re-run agent reproduced the patch" in json.loads(proc.stdout)["packs"][0]["steps"][0]["summary"]


@pytest.fixture()
def host_server() -> Iterator[int]:
    """A server on the host's loopback, which a replay must not reach."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _probe_pack(tmp_path: Path, port: int) -> Path:
    script = (
        "import urllib.request\n"
        f"try: urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=5); print('reached')\n"
        "except OSError: print('unreachable')\n"
    )
    return _pack(tmp_path, command("probe", ["python3", "-c", script], stdout=b"unreachable\n"))


def test_the_hosts_loopback_is_out_of_reach_unless_isolation_is_refused(
    host_server: int, tmp_path: Path, nothing_left: None
) -> None:
    if subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode != 0:
        unavailable("no network namespace can be made here (run as root)")
    pack = _probe_pack(tmp_path, host_server)
    proc = runner(str(pack), "--json", "-", cwd=tmp_path, backend="auto")  # no engine: auto is local
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "backend: local, since no Docker engine answers" in proc.stderr
    out = json.loads(proc.stdout)["packs"][0]
    assert (out["backend"], out["isolated"]) == ("local", True)

    exposed = runner(str(pack), "--no-isolation", cwd=tmp_path, backend="local")
    assert exposed.returncode == 1, exposed.stdout + exposed.stderr
    assert exposed.stdout.startswith("NOT ISOLATED: session.tar.zst replayed with this machine's network")
    assert "+reached" in exposed.stdout


def test_where_no_namespace_can_be_made_the_replay_is_an_environment_error(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"
    )
    (fake / "unshare").chmod(0o755)
    pack = _pack(tmp_path, command("c1", ["cat", "notes.txt"], stdout=b"one\n"))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XDG_CACHE_HOME": CACHE,
        "PATH": f"{fake}:{os.environ['PATH']}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "replay", str(pack), "--backend", "local", "--json", "-"], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["packs"][0]["error"]
    assert error.startswith("no network isolation is possible here (unshare: unshare failed: Operation not")
    assert "--no-isolation" in error and "\n" not in error and "Traceback" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_leaves_no_process_and_no_folder(tmp_path: Path, sig: signal.Signals) -> None:
    if subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode != 0:
        unavailable("no network namespace can be made here (run as root)")
    pack = _pack(tmp_path, command("slow", ["sh", "-c", f"sleep {MARK} & sleep {MARK}"], timeout=300))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DOCKER_HOST": NO_ENGINE, "XDG_CACHE_HOME": CACHE,
           "TMPDIR": str(private_tmp(tmp_path))}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "replay", str(pack), "--backend", "local"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(f"sleep {MARK}" in line for line in left_running(tmp_path)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()  # the replay's mounts are its own
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not left_running(tmp_path)
    assert not list(private_tmp(tmp_path).glob("runner-*"))
