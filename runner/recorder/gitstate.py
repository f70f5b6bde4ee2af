"""Git state of the recorded repository: base commit, bundle, dirty baseline and patches between states.

Input: a repository folder. Outputs: `GitState` (base commit, branch, remote, dirty flag), tree hashes
of the working tree, binary-safe unified diffs between two trees, and a bundle holding the base commit.
Rules: the user's index, worktree and refs are never touched. The working tree is hashed through a
temporary index (GIT_INDEX_FILE) seeded from HEAD, so untracked files count and ignored files do not;
caches that tools write while a session runs (__pycache__, .pytest_cache) and paths given as `exclude`
(the pack being written, for one) are left out. Diffs use --binary --full-index so any file round-trips.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runner import gitcmd
from runner.errors import RecordError

__all__ = ["GitState", "bundle", "diff_trees", "read_state", "worktree_tree"]

_CACHE_EXCLUDES = (
    ":(exclude,glob)**/__pycache__/**",
    ":(exclude,glob)**/.pytest_cache/**",
    ":(exclude,glob)**/*.pyc",
)


@dataclass(frozen=True)
class GitState:
    root: Path  # top level of the working tree
    base_commit: str
    head_tree: str
    branch: str | None
    remote: str | None
    dirty: bool


def _answer(cwd: Path, *args: str) -> str | None:
    """What git prints for a question it may answer with nothing (or a failure): stripped, or None."""
    return gitcmd.output(cwd, *args, check=False, error=RecordError).strip() or None


def read_state(repo: Path) -> GitState:
    """The base commit and branch of `repo`; RecordError when it is not a git repository with a commit."""
    if not repo.is_dir():
        raise RecordError(f"{repo}: no such folder; pass --repo with the repository the agent works in")
    top = _answer(repo, "rev-parse", "--show-toplevel")
    if top is None:
        raise RecordError(f"{repo}: not a git repository; run `git init` and commit the starting state")
    root = Path(top)
    commit = _answer(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    if commit is None:
        raise RecordError(f"{root}: the repository has no commit yet; commit the starting state first")
    branch = _answer(root, "symbolic-ref", "-q", "--short", "HEAD")
    remote = _answer(root, "config", "--get", "remote.origin.url")
    head_tree = gitcmd.output(root, "rev-parse", "HEAD^{tree}", error=RecordError).strip()
    return GitState(root, commit, head_tree, branch, remote, dirty=False)


def worktree_tree(state: GitState, exclude: tuple[Path, ...] = ()) -> str:
    """The tree hash of the working tree as it is now (tracked and untracked files, not ignored ones)."""
    specs = [".", *_CACHE_EXCLUDES]
    for path in exclude:
        try:
            rel = path.resolve().relative_to(state.root.resolve())
        except ValueError:
            continue
        specs.append(f":(exclude,literal){rel.as_posix()}")
    with tempfile.TemporaryDirectory(prefix="runner-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        gitcmd.run(state.root, "read-tree", state.base_commit, env=env, error=RecordError)
        gitcmd.run(state.root, "add", "-A", "--", *specs, env=env, error=RecordError)
        return gitcmd.output(state.root, "write-tree", env=env, error=RecordError).strip()


def diff_trees(state: GitState, before: str, after: str) -> bytes:
    """A unified diff from tree `before` to tree `after`, binary files and new files included."""
    if before == after:
        return b""
    return gitcmd.run(
        state.root, "diff", "--binary", "--full-index", "--no-color", "--no-ext-diff", "--no-renames", before, after,
        error=RecordError,
    ).stdout  # fmt: skip


def bundle(state: GitState, out: Path) -> Path:
    """Write a git bundle holding the base commit (and its history) to `out`."""
    # A bundle needs a ref: a private temporary one, so a detached HEAD works and the user's refs stay as they were.
    ref = f"refs/runner-record/{os.getpid()}-{os.urandom(4).hex()}"
    gitcmd.run(state.root, "update-ref", ref, state.base_commit, error=RecordError)
    try:
        gitcmd.run(state.root, "bundle", "create", str(out), ref, error=RecordError)
    finally:
        gitcmd.run(state.root, "update-ref", "-d", ref, check=False, error=RecordError)
    return out
