"""The Docker engine: reach the one that answers, or install and start one on a Debian machine.

Inputs: DOCKER_HOST (else the default socket), /etc/os-release, the effective uid. Outputs: a connected
`docker.DockerClient` (`connect`) or an `EngineStatus` (`ensure`). Rules: an engine that answers is never
touched. Only with `fix`, only on Debian as root, and only on a unix socket, the missing Debian packages
(docker.io, debootstrap, docker-registry) are installed and `dockerd --bridge=none --iptables=false` is
started detached on the default socket, logging to a known file, so that it outlives this process. Leftovers of an earlier
dockerd (its pid file, its containerd's pid file) are cleared when their process is gone. Any failure is an
EngineError that says what the user must do next.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests

from runner.engine.host import os_release
from runner.errors import EngineError
from runner.progress import Progress, Silent, run_logged, tail

__all__ = [
    "DEFAULT_LOG",
    "DEFAULT_SOCKET",
    "DOCKERD_ARGS",
    "PACKAGES",
    "EngineStatus",
    "address",
    "connect",
    "ensure",
    "missing_packages",
    "start_dockerd",
]

DEFAULT_SOCKET = Path("/var/run/docker.sock")
DEFAULT_LOG = Path("/var/log/runner-dockerd.log")
DEFAULT_PIDFILE = Path("/var/run/docker.pid")
DEFAULT_EXEC_ROOT = Path("/var/run/docker")
PACKAGES = ("docker.io", "debootstrap", "docker-registry")
# No bridge and no iptables: containers get network `none` or join the proxy's namespace, and the engine
# must not rewrite the host's firewall.
DOCKERD_ARGS = ("--bridge=none", "--iptables=false")
START_TIMEOUT = 60.0

_NEXT_STEP = (
    "run `runner doctor --fix` (installs and starts Docker on Debian as root), "
    "or start your Docker engine and point DOCKER_HOST at it"
)


@dataclass(frozen=True)
class EngineStatus:
    version: str
    api_version: str
    reached_via: str
    started_by_us: bool
    log_path: Path | None


def address(env: Mapping[str, str] | None = None) -> str:
    """How the engine is reached, as people say it: `DOCKER_HOST=...` or `socket /var/run/docker.sock`."""
    env = os.environ if env is None else env
    host = env.get("DOCKER_HOST")
    return f"DOCKER_HOST={host}" if host else f"socket {DEFAULT_SOCKET}"


def connect(timeout: float = 30.0) -> docker.DockerClient:
    """A client for the engine that answers at DOCKER_HOST or the default socket; EngineError otherwise."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EngineError(f"no Docker engine answers at {address()} ({reason}); {_NEXT_STEP}") from e
    return client


def _status(client: docker.DockerClient, started_by_us: bool, log: Path | None) -> EngineStatus:
    info = client.version()
    return EngineStatus(
        version=str(info.get("Version", "?")),
        api_version=str(info.get("ApiVersion", "?")),
        reached_via=address(),
        started_by_us=started_by_us,
        log_path=log,
    )


def ensure(
    fix: bool,
    *,
    log_path: Path = DEFAULT_LOG,
    timeout: float = START_TIMEOUT,
    progress: Progress | None = None,
) -> EngineStatus:
    """Report the engine that answers; with `fix`, install and start one first when none does."""
    progress = progress or Silent()
    try:
        client = connect()
    except EngineError as e:
        if not fix:
            raise
        first_error = e
    else:
        with closing(client):
            return _status(client, started_by_us=False, log=None)

    release = os_release()
    if not release.is_debian_family or os.geteuid() != 0:
        raise EngineError(
            f"no Docker engine answers at {address()}, and `--fix` installs one only on Debian as root "
            f"(this is {release.id or 'an unknown OS'}, uid {os.geteuid()}); install and start Docker "
            "yourself (https://docs.docker.com/engine/install/), then run `runner doctor` again"
        ) from first_error
    socket = _unix_socket(os.environ.get("DOCKER_HOST"))

    missing = missing_packages(PACKAGES)
    if missing:
        progress.step(f"installing {' '.join(missing)}")
        _apt_install(missing, log_path, progress)
    progress.step("starting dockerd")
    start_dockerd(socket, log_path=log_path, timeout=timeout)
    client = connect()
    with closing(client):
        return _status(client, started_by_us=True, log=log_path)


def _unix_socket(docker_host: str | None) -> Path:
    # The engine we start owns the default socket, pid file, exec and data roots; a DOCKER_HOST elsewhere
    # names an engine someone else runs, and we must not start a second one over the same state.
    if not docker_host or docker_host in {f"unix://{DEFAULT_SOCKET}", "unix:///run/docker.sock"}:
        return DEFAULT_SOCKET
    raise EngineError(
        f"no Docker engine answers at DOCKER_HOST={docker_host}; `--fix` starts an engine only on the default "
        f"socket {DEFAULT_SOCKET}: unset DOCKER_HOST, or start the engine at that address yourself"
    )


def missing_packages(names: Sequence[str]) -> list[str]:
    """The Debian packages among `names` that dpkg does not list as installed."""
    missing = []
    for name in names:
        try:
            result = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False
            )
        except OSError:  # no dpkg at all
            missing.append(name)
            continue
        if result.returncode != 0 or not result.stdout.endswith(" installed"):
            missing.append(name)
    return missing


def _apt_install(packages: Sequence[str], log: Path, progress: Progress) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # docker.io's maintainer scripts would start their own dockerd (with a bridge and iptables rules);
    # policy-rc.d answering 101 forbids that while we install, and only if no policy was there before.
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
        policy.chmod(0o755)
    try:
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "-q", *packages]):
            if run_logged(argv, log=log, progress=progress, env=env) != 0:
                raise EngineError(
                    f"`{' '.join(argv)}` failed; last lines of {log}:\n{tail(log)}\n"
                    "fix the apt configuration, then run `runner doctor --fix` again"
                )
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)


def _process_name(pid: int) -> str | None:
    """The command name of a live process; None when gone or a zombie (a killed dockerd whose parent
    never reaped it still has its /proc entry and name)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return None if rest.split()[:1] == ["Z"] else name


def _live_pid(pidfile: Path, name: str) -> int | None:
    """The pid in `pidfile` if that process runs and is `name`; otherwise the stale file is removed."""
    try:
        pid = int(pidfile.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        pid = 0
    if pid > 0 and _process_name(pid) == name:
        return pid
    pidfile.unlink(missing_ok=True)
    return None


def _answers(socket: Path) -> bool:
    try:
        with closing(docker.DockerClient(base_url=f"unix://{socket}", timeout=3)) as client:
            return bool(client.ping())
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return False


def start_dockerd(
    socket: Path,
    *,
    log_path: Path = DEFAULT_LOG,
    timeout: float = START_TIMEOUT,
    pidfile: Path = DEFAULT_PIDFILE,
    exec_root: Path = DEFAULT_EXEC_ROOT,
    extra_args: Sequence[str] = (),
) -> int | None:
    """Start dockerd detached on `socket` and wait until it answers; returns its pid (None if it was running).

    A dockerd left by an earlier start that still runs is waited for, not replaced; stale pid files of a
    dead dockerd or containerd are removed, since dockerd refuses to start over its own stale pid file.
    """
    old = _live_pid(pidfile, "dockerd")
    _live_pid(exec_root / "containerd" / "containerd.pid", "containerd")
    proc: subprocess.Popen[bytes] | None = None
    if old is None:
        argv = [
            "dockerd", *DOCKERD_ARGS, f"--host=unix://{socket}", f"--pidfile={pidfile}",
            f"--exec-root={exec_root}", *extra_args,
        ]  # fmt: skip
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} $ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                # A new session, no stdin and output to a file: the engine outlives the runner and its terminal.
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                raise EngineError(f"cannot run dockerd ({e}); is the docker.io package installed?") from e
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(socket):
            return None if proc is None else proc.pid
        if proc is not None and proc.poll() is not None:
            raise EngineError(
                f"dockerd exited with status {proc.returncode} before answering on {socket}; last lines of "
                f"{log_path}:\n{tail(log_path)}"
            )
        time.sleep(0.5)
    who = (
        f"dockerd (pid {old}, from an earlier start)" if old else f"dockerd (pid {proc.pid if proc else '?'})"
    )
    raise EngineError(
        f"{who} did not answer on {socket} within {timeout:.0f}s; last lines of {log_path}:\n{tail(log_path)}\n"
        f"stop it (`kill {old or (proc.pid if proc else '')}`) and run `runner doctor --fix` again"
    )
