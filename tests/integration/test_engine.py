"""Start a real second dockerd on its own socket and state folders, the way `runner doctor --fix` starts one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import docker
import pytest

from runner.engine import daemon as engine
from tests.helpers.prerequisites import unavailable

pytestmark = pytest.mark.docker


@pytest.fixture
def state(docker_client: Any) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        unavailable("starting a dockerd needs root and the docker.io package (`make engine` installs it)")
    root = Path("/tmp") / f"runner-engine-test-{os.getpid()}"  # short: unix socket paths are limited
    root.mkdir()
    yield root
    pid_file = root / "docker.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while engine._process_name(pid) == "dockerd" and time.monotonic() < deadline:
            time.sleep(0.1)
    # dockerd bind-mounts its data root onto itself; a killed one can leave that mount behind.
    for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
        if line.split()[1].startswith(str(root)):
            subprocess.run(["umount", "-l", line.split()[1]], check=False)
    shutil.rmtree(root)


def _start(root: Path, timeout: float = 60) -> int | None:
    return engine.start_dockerd(
        root / "docker.sock", log_path=root / "dockerd.log", timeout=timeout, pidfile=root / "docker.pid",
        exec_root=root / "exec", extra_args=[f"--data-root={root / 'data'}"],
    )  # fmt: skip


def test_dockerd_starts_detached_over_a_stale_pid_file_and_is_not_started_twice(state: Path) -> None:
    (state / "docker.pid").write_text("999999999")  # left by a dockerd that died
    pid = _start(state)
    assert pid is not None and int((state / "docker.pid").read_text()) == pid
    assert os.getsid(pid) == pid  # its own session: it outlives the runner and its terminal
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"--bridge=none\0--iptables=false" in f.read()
    with closing(docker.DockerClient(base_url=f"unix://{state / 'docker.sock'}")) as client:
        assert client.ping()
    assert "API listen on" in (state / "dockerd.log").read_text()
    assert _start(state, timeout=10) is None  # it answers: nothing new is started
