"""The sandbox a replay's containers run in: who they run as, what they may do, how much they may take.

Inputs: `Limits` (memory, processes, CPUs, runtime; the CLI's `--memory --pids --cpus --runtime`) and the
user the runner runs as. Outputs: `docker run` keyword arguments for the workload and the proxy sidecar
(`workload_options`, `sidecar_options`), one line saying what applied (`describe`), the hand-over of a host
folder to the sandbox user (`lend`), and `LimitWatch`, which tells whether a running step hit a limit.

Rules: a pack's commands are a stranger's code. Every container drops every capability, cannot gain
privileges (`no-new-privileges`: setuid binaries such as `su` stay unprivileged), runs as a non-root user
(the invoking user when the runner is not root, so kept workspaces are theirs; else the fixed `SANDBOX_UID`),
on a read-only root filesystem with tmpfs for /tmp, under memory (swap included), process and CPU limits.
A limit that was hit is evidence the replay is not faithful, so it is reported, never silently absorbed:
OOM kills come from the engine's `oom` events, fork refusals from the container's pids cgroup (read from
the host when the engine is local) or, failing that, from the engine's count of processes at the limit.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import EngineError, UsageError

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

__all__ = [
    "SANDBOX_UID",
    "LimitWatch",
    "Limits",
    "User",
    "describe",
    "hand_over",
    "lend",
    "parse_memory",
    "sandbox_user",
    "sidecar_options",
    "workload_options",
]

SANDBOX_UID = 65532  # the "nonroot" id distroless images use; no account in the image needs to exist
_SIDECAR_MEMORY = 1 << 30
_SIDECAR_PIDS = 256
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True)
class User:
    uid: int
    gid: int

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid}"


@dataclass(frozen=True)
class Limits:
    memory: int = 4 << 30  # bytes, swap included (no swap beyond it)
    pids: int = 1024
    cpus: float = 2.0
    runtime: str | None = None  # an OCI runtime the engine knows (e.g. runsc); None: the engine's default


def sandbox_user(euid: int | None = None, uid: int | None = None, gid: int | None = None) -> User:
    """The user the containers run as: the invoking user, or `SANDBOX_UID` when that user is root."""
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return User(SANDBOX_UID, SANDBOX_UID)
    return User(os.getuid() if uid is None else uid, os.getgid() if gid is None else gid)


def parse_memory(text: str) -> int:
    """`512m`, `4g`, `1073741824` -> bytes; at least 16 MiB (less and nothing starts)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmg]?)i?b?\s*", text.lower())
    if match is None:
        raise UsageError(f"--memory {text!r}: expected a size such as 512m or 4g")
    value = int(float(match.group(1)) * _UNITS[match.group(2)])
    if value < 16 << 20:
        raise UsageError(f"--memory {text!r}: at least 16m")
    return value


def _size(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):g} MiB"


def describe(limits: Limits, user: User) -> str:
    """What applied, in one line, for the report."""
    return (
        f"user {user}, no capabilities, no-new-privileges, read-only root, "
        f"memory {_size(limits.memory)} (no swap), {limits.pids} processes, {limits.cpus:g} CPUs, "
        f"runtime {limits.runtime or 'default'}"
    )


def _hardened(
    user: User, runtime: str | None, memory: int, pids: int, nano_cpus: int | None
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "user": str(user),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        # tmpfs pages count against the memory limit, so the size is only a ceiling.
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={memory},mode=1777"},
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": pids,
    }
    if nano_cpus is not None:
        options["nano_cpus"] = nano_cpus
    if runtime is not None:
        options["runtime"] = runtime
    return options


def workload_options(client: docker.DockerClient, limits: Limits, user: User) -> dict[str, Any]:
    """`docker run` keywords for the container the steps run in."""
    info = _info(client)  # asked once: each question to the engine is a round trip of every replay
    known = set((info.get("Runtimes") or {}).keys())
    if limits.runtime is not None and limits.runtime not in known:
        raise EngineError(
            f"--runtime {limits.runtime}: the Docker engine knows only {', '.join(sorted(known))}; register it "
            "in /etc/docker/daemon.json (see docs/sandbox.md) or replay without --runtime"
        )
    ncpu = int(info.get("NCPU") or 1)
    cpus = min(limits.cpus, float(ncpu))  # the engine refuses more CPUs than it has
    options = _hardened(user, limits.runtime, limits.memory, limits.pids, int(cpus * 1e9))
    options["tmpfs"]["/var/tmp"] = options["tmpfs"]["/tmp"]
    options["environment"] = {"HOME": "/tmp"}
    return options


def sidecar_options(user: User) -> dict[str, Any]:
    """`docker run` keywords for the proxy sidecar (port 8080 needs no capability; always the default
    runtime, whose network namespace the workload joins)."""
    options = _hardened(user, None, _SIDECAR_MEMORY, _SIDECAR_PIDS, None)
    options["environment"] = {"HOME": "/tmp"}
    return options


def _info(client: docker.DockerClient) -> dict[str, Any]:
    import docker.errors

    try:
        info: dict[str, Any] = client.info()
    except docker.errors.DockerException as e:
        raise EngineError(f"cannot ask the Docker engine for its runtimes: {e}") from e
    return info


def _chown_tree(root: Path, user: User) -> None:
    """Give every entry under `root` to `user`, never following a symlink: the tree may be changed by the
    sandbox while this runs, and a swapped-in symlink must not lead the walk (run as root) out of it."""
    os.chown(root, user.uid, user.gid, follow_symlinks=False)
    for _, dirs, files, fd in os.fwalk(root, follow_symlinks=False):
        for name in (*dirs, *files):
            with suppress(FileNotFoundError):
                os.chown(name, user.uid, user.gid, dir_fd=fd, follow_symlinks=False)


def _needed(user: User) -> bool:
    # Only a root runner has a sandbox user other than itself (and only root may chown).
    return os.geteuid() == 0 and (user.uid, user.gid) != (os.getuid(), os.getgid())


def hand_over(folder: Path, user: User) -> None:
    """Give `folder` (the runner's own scratch) to the sandbox `user` for good."""
    if _needed(user):
        _chown_tree(folder, user)


@contextmanager
def lend(folder: Path, user: User) -> Iterator[None]:
    """While the block runs, `folder` belongs to the sandbox `user`; then it comes back to the runner.

    Needed only when the runner is root (the sandbox user is then someone else); a runner that is not root
    runs its containers as itself. The runner's own git and patch steps need the tree back: git refuses a
    repository owned by another user."""
    if not _needed(user):
        yield
        return
    _chown_tree(folder, user)
    try:
        yield
    finally:
        _chown_tree(folder, User(os.getuid(), os.getgid()))


_COUNTER = re.compile(rb"^(max|oom_kill)\s+(\d+)\s*$", re.MULTILINE)


def _cgroup_counter(pid: int, controller: str, filename: str, key: bytes) -> int | None:
    """A counter of a container's cgroup read from the host (cgroup v1 or v2), or None when not visible."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            base = Path("/sys/fs/cgroup", controller)
        elif controllers == "":
            base = Path("/sys/fs/cgroup")
        else:
            continue
        try:
            data = (base / path.lstrip("/") / filename).read_bytes()
        except OSError:
            continue
        for name, value in _COUNTER.findall(data):
            if name == key:
                return int(value)
    return None


class LimitWatch:
    """Tells whether the workload hit a limit since `start()`: `check()` while a step runs and after it.
    One watch serves every step of a session: `start()` before each."""

    def __init__(self, container: Container, limits: Limits) -> None:
        self.container = container
        self.limits = limits
        self._since = time.time()
        self._pids_base: int | None = None
        self._pid_seen = 0

    def _pid(self) -> int:
        if self._pid_seen:  # the container's init keeps its pid for the container's life: asked once
            return self._pid_seen
        # Known already when the container was looked up running (a claimed spare); else asked now.
        if not self.container.attrs.get("State", {}).get("Pid"):
            self.container.reload()
        self._pid_seen = int(self.container.attrs.get("State", {}).get("Pid") or 0)
        return self._pid_seen

    def _fork_refusals(self) -> int | None:
        pid = self._pid()
        return _cgroup_counter(pid, "pids", "pids.events", b"max") if pid > 0 else None

    def start(self) -> None:
        self._since = time.time()
        self._pids_base = self._fork_refusals()

    def _pids_hit(self) -> bool:
        count = self._fork_refusals()
        if count is not None and self._pids_base is not None:
            return count > self._pids_base
        stats = self.container.stats(stream=False, one_shot=True).get("pids_stats") or {}
        return int(stats.get("current") or 0) >= self.limits.pids

    def _ooms(self) -> int:
        api = self.container.client.api
        events = api.events(
            since=f"{self._since:.9f}", until=f"{time.time():.9f}",
            filters={"container": self.container.id, "event": "oom"}, decode=True,
        )  # fmt: skip
        return sum(1 for _ in events)

    def check(self) -> str | None:
        """The limit hit since `start()`, in words, or None."""
        import docker.errors

        try:
            if self._pids_hit():
                return f"the process limit ({self.limits.pids}, --pids): a fork was refused"
            if self._ooms():
                return f"the memory limit ({_size(self.limits.memory)}, --memory): a process was OOM-killed"
        except docker.errors.DockerException:
            return None  # the engine lost the container; the step's own result says what happened
        return None
