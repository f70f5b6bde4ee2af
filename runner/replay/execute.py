"""Execute stage: run one recorded command inside the running workload container.

Inputs: a running container, the command's argv, working directory, environment and timeout, and a folder
for its logs. Output: a `CommandRun` with the exit code, where stdout and stderr were written, the
duration, whether the timeout killed it, and which sandbox limit it hit, if one.

Rules: stdout and stderr go straight to files (memory does not grow with output size). A command that
runs past its timeout is killed with its whole process tree; when the engine's processes are not visible
from here (a remote engine), the container itself is killed, since nothing else can stop an exec. A command
that hits a limit of the sandbox (`watch` says which) is stopped at once with the whole container: a fork
bomb's orphans are no longer its descendants, and the replay ends there anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from docker.models.containers import Container

from runner.errors import ExecuteError

__all__ = ["CommandRun", "descendants", "read_output", "run_command"]


@dataclass(frozen=True)
class CommandRun:
    exit_code: int | None  # None when killed at its timeout
    stdout: Path
    stderr: Path
    duration_s: float
    timed_out: bool
    limit: str | None = None  # the sandbox limit the command hit, in words (then exit_code is None)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, children first after their parent (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def _kill_tree(container: Container, exec_id: str) -> None:
    pid = int(container.client.api.exec_inspect(exec_id).get("Pid") or 0)
    if pid > 0 and Path(f"/proc/{pid}").exists():
        for p in reversed(descendants(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        return
    container.kill()


def run_command(
    container: Container,
    argv: list[str],
    *,
    workdir: str,
    env: dict[str, str],
    timeout: float,
    log_dir: Path,
    name: str,
    watch: Callable[[], str | None] | None = None,
    poll: float = 0.5,
) -> CommandRun:
    """Run `argv` in `container` (a docker SDK Container) and write `<name>.stdout/.stderr` to `log_dir`;
    `watch` is asked every `poll` seconds, and once more at the end, whether a limit was hit."""
    api = container.client.api
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    try:
        exec_id = api.exec_create(
            container.id, argv, workdir=workdir, environment=env, stdout=True, stderr=True, tty=False
        )["Id"]
        stream = api.exec_start(exec_id, stream=True, demux=True)
    except Exception as e:  # the docker SDK raises several unrelated types here
        raise ExecuteError(f"could not start `{' '.join(argv)}` in the workload container: {e}") from e

    failure: list[BaseException] = []

    def pump() -> None:
        try:
            with out_path.open("wb") as out, err_path.open("wb") as err:
                for chunk_out, chunk_err in stream:
                    if chunk_out:
                        out.write(chunk_out)
                    if chunk_err:
                        err.write(chunk_err)
        except BaseException as e:  # surfaced in the caller's thread
            failure.append(e)

    started = time.monotonic()
    reader = threading.Thread(target=pump, name=f"exec-{name}", daemon=True)
    reader.start()
    limit = _wait(reader, started + timeout, watch, poll)
    timed_out = limit is None and reader.is_alive()
    if timed_out:
        _kill_tree(container, exec_id)
        reader.join(10)
    exit_code = None if timed_out or limit else api.exec_inspect(exec_id).get("ExitCode")
    if watch is not None and limit is None:
        limit = watch()
        if limit is None and exit_code == 137:  # SIGKILL: the engine may report its OOM event late
            time.sleep(poll)
            limit = watch()
    if limit is not None:
        with contextlib.suppress(Exception):  # already gone is as good
            container.kill()
        reader.join(10)
    duration = time.monotonic() - started
    if failure and not timed_out and limit is None:
        raise ExecuteError(f"lost the output of `{' '.join(argv)}`: {failure[0]}")
    return CommandRun(
        exit_code=None if limit else exit_code, stdout=out_path, stderr=err_path, duration_s=duration,
        timed_out=timed_out, limit=limit,
    )  # fmt: skip


def _wait(
    reader: threading.Thread, deadline: float, watch: Callable[[], str | None] | None, poll: float
) -> str | None:
    """Wait for the command's output to end or the deadline; the limit `watch` saw hit, if it saw one."""
    while reader.is_alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        reader.join(min(left, poll) if watch is not None else left)
        if watch is not None and reader.is_alive() and (limit := watch()) is not None:
            return limit
    return None


def read_output(workspace: Path, cwd: str, relpath: str, limit: int = 256 << 20) -> bytes | None:
    """Read a declared output file of a command; refuse paths that leave the workspace (hostile manifests)."""
    rel = PurePosixPath(cwd) / relpath
    if rel.is_absolute() or ".." in rel.parts:
        raise ExecuteError(f"declared output {relpath!r} (cwd {cwd!r}) is outside the workspace")
    root = workspace.resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise ExecuteError(f"declared output {relpath!r} leads outside the workspace through a symlink")
    if not target.is_file():
        return None
    if target.stat().st_size > limit:
        raise ExecuteError(f"declared output {relpath!r} is larger than {limit >> 20} MiB")
    return target.read_bytes()
