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
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def _git(repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    full_env = {**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, env=full_env, check=False, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RecordError(f"cannot run git in {repo}: {e}; is git installed?") from e
    if check and proc.returncode != 0:
        first = proc.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise RecordError(f"git {args[0]} failed in {repo}: {first[0] if first else proc.returncode}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def read_state(repo: Path) -> GitState:
    """The base commit and branch of `repo`; RecordError when it is not a git repository with a commit."""
    if not repo.is_dir():
        raise RecordError(f"{repo}: no such folder; pass --repo with the repository the agent works in")
    top = _git(repo, "rev-parse", "--show-toplevel", check=False).strip()
    if not top:
        raise RecordError(f"{repo}: not a git repository; run `git init` and commit the starting state")
    root = Path(top)
    commit = _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip()
    if not commit:
        raise RecordError(f"{root}: the repository has no commit yet; commit the starting state first")
    branch = _git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip() or None
    remote = _git(root, "config", "--get", "remote.origin.url", check=False).strip() or None
    head_tree = _git(root, "rev-parse", "HEAD^{tree}").strip()
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
        _git(state.root, "read-tree", state.base_commit, env=env)
        _git(state.root, "add", "-A", "--", *specs, env=env)
        return _git(state.root, "write-tree", env=env).strip()


def diff_trees(state: GitState, before: str, after: str) -> bytes:
    """A unified diff from tree `before` to tree `after`, binary files and new files included."""
    if before == after:
        return b""
    try:
        proc = subprocess.run(
            ["git", "-C", str(state.root), "diff", "--binary", "--full-index", "--no-color", "--no-ext-diff",
             "--no-renames", before, after],
            capture_output=True, check=True, timeout=300, env={**os.environ, "LC_ALL": "C"},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as e:
        raise RecordError(f"cannot diff the working tree of {state.root}: {e}") from e
    return proc.stdout


def bundle(state: GitState, out: Path) -> Path:
    """Write a git bundle holding the base commit (and its history) to `out`."""
    # A bundle needs a ref: a private temporary one, so a detached HEAD works and the user's refs stay as they were.
    ref = f"refs/runner-record/{os.getpid()}-{os.urandom(4).hex()}"
    _git(state.root, "update-ref", ref, state.base_commit)
    try:
        _git(state.root, "bundle", "create", str(out), ref)
    finally:
        _git(state.root, "update-ref", "-d", ref, check=False)
    return out
