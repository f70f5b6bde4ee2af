from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.engine import daemon as engine
from runner.engine.host import OsRelease
from runner.errors import EngineError


@pytest.fixture
def dead_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """DOCKER_HOST pointing at a unix socket that exists but that nobody accepts on."""
    path = tmp_path / "dead.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    yield path


def test_connect_names_the_address_and_the_next_step(dead_socket: Path) -> None:
    with pytest.raises(EngineError) as caught:
        engine.connect(timeout=2)
    message = str(caught.value)
    assert f"DOCKER_HOST=unix://{dead_socket}" in message
    assert "runner doctor --fix" in message
    assert caught.value.exit_code == 3


def test_ensure_without_fix_only_reports(dead_socket: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "start_dockerd", _forbidden)
    with pytest.raises(EngineError, match="runner doctor --fix"):
        engine.ensure(fix=False)


def _forbidden(*args: object, **kwargs: object) -> None:
    raise AssertionError("must not be called")


@pytest.mark.parametrize(
    ("release", "uid", "expected"),
    [
        (OsRelease("fedora", (), ""), 0, "this is fedora"),
        (OsRelease("debian", (), "bookworm"), 1000, "uid 1000"),
    ],
)
def test_fix_refuses_when_not_debian_or_not_root(
    dead_socket: Path, monkeypatch: pytest.MonkeyPatch, release: OsRelease, uid: int, expected: str
) -> None:
    monkeypatch.setattr(engine, "os_release", lambda: release)
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    monkeypatch.setattr(engine, "start_dockerd", _forbidden)
    with pytest.raises(EngineError, match=expected):
        engine.ensure(fix=True)


def test_fix_refuses_a_tcp_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.setattr(engine, "os_release", lambda: OsRelease("debian", (), "bookworm"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(engine, "start_dockerd", _forbidden)
    with pytest.raises(EngineError, match="only on the default socket"):
        engine.ensure(fix=True)


def test_fix_refuses_a_socket_other_than_the_default(
    dead_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "os_release", lambda: OsRelease("debian", (), "bookworm"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(engine, "start_dockerd", _forbidden)
    with pytest.raises(EngineError, match=f"DOCKER_HOST=unix://{dead_socket}.*unset DOCKER_HOST"):
        engine.ensure(fix=True)


def test_fix_installs_only_missing_packages_then_starts_dockerd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, object]] = []
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "connect", _no_engine)
    monkeypatch.setattr(engine, "os_release", lambda: OsRelease("debian", (), "bookworm"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(engine, "missing_packages", lambda names: ["debootstrap"])
    monkeypatch.setattr(engine, "_apt_install", lambda pkgs, log, progress: calls.append(("apt", list(pkgs))))

    def fake_start(sock: Path, **kwargs: object) -> int:
        calls.append(("dockerd", sock))
        # From here on the engine "answers": stand in for the client the real dockerd would serve.
        monkeypatch.setattr(engine, "connect", lambda timeout=30.0: _FakeClient())
        return 4242

    monkeypatch.setattr(engine, "start_dockerd", fake_start)
    log = tmp_path / "dockerd.log"
    status = engine.ensure(fix=True, log_path=log)
    assert calls == [("apt", ["debootstrap"]), ("dockerd", engine.DEFAULT_SOCKET)]
    assert status == engine.EngineStatus("20.10.24", "1.41", f"socket {engine.DEFAULT_SOCKET}", True, log)


def _no_engine(timeout: float = 30.0) -> object:
    raise EngineError("no Docker engine answers (test)")


class _FakeClient:
    def version(self) -> dict[str, str]:
        return {"Version": "20.10.24", "ApiVersion": "1.41"}

    def close(self) -> None:
        pass


def test_missing_packages_asks_dpkg() -> None:
    assert engine.missing_packages(["no-such-package-runner-test"]) == ["no-such-package-runner-test"]
    assert engine.missing_packages(["dpkg", "no-such-package-runner-test"]) == ["no-such-package-runner-test"]


def test_stale_pid_files_are_removed_live_ones_kept(tmp_path: Path) -> None:
    stale = tmp_path / "docker.pid"
    stale.write_text("999999999")
    assert engine._live_pid(stale, "dockerd") is None
    assert not stale.exists()

    reused = tmp_path / "reused.pid"
    reused.write_text(str(os.getpid()))  # a live pid, but not a dockerd: dockerd would wrongly refuse
    assert engine._live_pid(reused, "dockerd") is None
    assert not reused.exists()

    with subprocess.Popen(["sleep", "30"]) as proc:
        deadline = time.monotonic() + 5
        while engine._process_name(proc.pid) != "sleep" and time.monotonic() < deadline:
            time.sleep(0.01)  # between fork and exec the child still carries the parent's name
        live = tmp_path / "live.pid"
        live.write_text(str(proc.pid))
        try:
            assert engine._live_pid(live, "sleep") == proc.pid
            assert live.exists()
        finally:
            proc.kill()


def test_a_dockerd_that_dies_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dockerd"
    fake.write_text('#!/bin/sh\necho "failed to start daemon: pid file found, args: $*"\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "dockerd.log"
    with pytest.raises(EngineError) as caught:
        engine.start_dockerd(
            tmp_path / "d.sock",
            log_path=log,
            timeout=10,
            pidfile=tmp_path / "d.pid",
            exec_root=tmp_path / "exec",
        )
    message = str(caught.value)
    assert "exited with status 1" in message
    assert "failed to start daemon" in message and "--bridge=none --iptables=false" in message
    assert str(log) in message
