"""The one way the runner runs git.

Every call gets the same environment: no terminal prompts, the C locale (messages parsed below are English),
no hooks (a repository from a pack is a stranger's), no transport but local files, and none of the caller's
`GIT_*` variables (a GIT_DIR or GIT_INDEX_FILE inherited from a hook would point git at another repository);
what a call needs, it passes in `env`. A failure raises the
caller's stage error (`error=`), naming the command, the folder and git's first line of complaint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from runner.errors import RunnerError

__all__ = ["lines", "output", "run"]

_SAFE_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.file.allow=always",
)


def run(
    cwd: Path | str,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
    error: type[RunnerError] = RunnerError,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git ARGS` in `cwd`. With `check`, a non-zero exit raises `error`; so does a git that cannot start."""
    try:
        proc = subprocess.run(
            ["git", *_SAFE_CONFIG, *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            env=_env(env),
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _not_run(error, args, cwd, e) from e
    if check and proc.returncode != 0:
        raise _failed(error, args, cwd, proc.stderr, proc.returncode)
    return proc


def lines(
    cwd: Path | str, *args: str, timeout: float = 300, error: type[RunnerError] = RunnerError
) -> Iterator[bytes]:
    """The standard output of `git ARGS`, line by line as git writes it (each line with its newline): for
    an output too large to hold, such as a long history's patches. A non-zero exit raises `error` once
    the output is read; so does a git still running after `timeout` seconds (it is killed)."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                ["git", *_SAFE_CONFIG, *args], cwd=cwd, env=_env(None),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, process_group=0,
            )  # fmt: skip
        except OSError as e:
            raise _not_run(error, args, cwd, e) from e
        expired = threading.Event()

        def kill() -> None:  # git and whatever it started (a pager, a filter), so the pipe closes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        def expire() -> None:
            expired.set()
            kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            assert proc.stdout is not None
            yield from proc.stdout
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # the caller stopped reading
                kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if expired.is_set():
            raise _not_run(error, args, cwd, subprocess.TimeoutExpired(proc.args, timeout))
        if code != 0:
            err.seek(0)
            raise _failed(error, args, cwd, err.read(64 << 10), code)


def _env(env: Mapping[str, str] | None) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**inherited, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}


def _not_run(error: type[RunnerError], args: tuple[str, ...], cwd: Path | str, e: Exception) -> RunnerError:
    return error(f"git {args[0] if args else ''} could not run in {cwd}: {e}; is git installed?")


def _failed(
    error: type[RunnerError], args: tuple[str, ...], cwd: Path | str, stderr: bytes, code: int
) -> RunnerError:
    first = stderr.decode("utf-8", "replace").strip().splitlines()[:1]
    return error(f"git {args[0]} failed in {cwd}: {first[0] if first else f'exit {code}'}")


def output(
    cwd: Path | str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
    error: type[RunnerError] = RunnerError,
) -> str:
    """The standard output of `git ARGS` as text (undecodable bytes kept as surrogates)."""
    proc = run(cwd, *args, env=env, timeout=timeout, check=check, error=error)
    return proc.stdout.decode("utf-8", "surrogateescape")
