"""The one way the runner runs git.

Every call gets the same environment: no terminal prompts, the C locale (messages parsed below are English),
no hooks (a repository from a pack is a stranger's), no transport but local files, and none of the caller's
`GIT_*` variables (a GIT_DIR or GIT_INDEX_FILE inherited from a hook would point git at another repository);
what a call needs, it passes in `env`. A failure raises the
caller's stage error (`error=`), naming the command, the folder and git's first line of complaint.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from runner.errors import RunnerError

__all__ = ["output", "run"]

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
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full_env = {**inherited, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
    try:
        proc = subprocess.run(
            ["git", *_SAFE_CONFIG, *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise error(f"git {args[0] if args else ''} could not run in {cwd}: {e}; is git installed?") from e
    if check and proc.returncode != 0:
        first = proc.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise error(f"git {args[0]} failed in {cwd}: {first[0] if first else f'exit {proc.returncode}'}")
    return proc


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
