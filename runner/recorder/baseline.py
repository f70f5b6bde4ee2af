"""What a recording fixes before the agent may run, and nothing more, so the agent starts soon.

Inputs: the pack's path, the repository (or its `GitState`), the session's options and its (not yet started)
recording proxy. Output: a `Baseline`: the checked settings the end needs, the working tree as the agent
found it (its tree hash), a working folder, the start time, and the proxy started on a bound port (it
takes connections from then on; runner.recorder.proxy).
Rules: the module imports only what these need, so `runner record` spawns the agent before importing the
recorder's heavy parts (runner.recorder.session); the privacy settings are checked and the proxy started
on threads while git hashes the working tree (git runs in its own processes, so they overlap). Every
error is raised once all three are done, the settings' first; the working folder is then removed and
the proxy stopped: nothing is left behind.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runner.recorder import gitstate
from runner.recorder.gitstate import GitState
from runner.recorder.options import RecordOptions
from runner.recorder.preflight import Checked, preflight
from runner.recorder.proxy import RecordingProxy
from runner.recorder.worker import alongside

__all__ = ["Baseline", "take"]


@dataclass(frozen=True)
class Baseline:
    privacy: Checked  # the settings the pack is built with (`options()` once the agent runs)
    git: GitState  # its `dirty` says whether the working tree differs from HEAD
    tree: str  # the working tree's hash as the agent found it
    history: str  # what the bundle carries (checked)
    workdir: Path  # the session's working folder (removed by the session's end)
    proxy: RecordingProxy  # started when options.http
    started: float  # time.monotonic()
    started_ns: int  # time.time_ns(): when the session span starts
    created_at: str  # UTC, seconds


def take(out: Path, git: GitState | Path, options: RecordOptions, proxy: RecordingProxy) -> Baseline:
    """Check the settings, hash the working tree and start the proxy; see the module docstring. `git`: the
    repository's state, or its folder (then read here, the settings' problems still raised first)."""
    checked = alongside(lambda: preflight(out), "runner-preflight")
    started, started_ns = time.monotonic(), time.time_ns()
    created_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    workdir = Path(tempfile.mkdtemp(prefix="runner-record-"))
    proxying = alongside(lambda: proxy.start(workdir) if options.http else None, "runner-proxy-start")
    error: BaseException | None = None
    try:
        if isinstance(git, Path):
            git = gitstate.read_state(git)
        history = gitstate.parse_history(options.history)
        tree = gitstate.worktree_tree(git, exclude=(out,))
    except BaseException as e:  # raised below, once the threads are done
        error = e
    problems = [checked.exception(), error, proxying.exception()]  # waits for both threads
    first = next((p for p in problems if p is not None), None)
    if first is not None:
        proxy.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise first
    assert isinstance(git, GitState)
    git = dataclasses.replace(git, dirty=tree != git.head_tree)
    return Baseline(checked.result(), git, tree, history, workdir, proxy, started, started_ns, created_at)
