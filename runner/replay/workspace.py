"""Workspace stage: turn a pack's git bundle and patches back into a working tree.

Inputs: the bundle holding the base commit, the base commit id, an optional dirty-baseline patch, and later
the ordered patch steps. Output: a `Workspace` (a folder on the host, later bind-mounted into the workload
container) and, per patch, which tier of the fallback chain applied it.

Rules: the bundle and the patches come from strangers. Git runs through `runner.gitcmd` (hooks disabled,
no transport but local files) with no global or system configuration; patches go through `git apply`
(which refuses paths outside the tree and writes through no symlink), then `git apply --3way`, then
`patch --fuzz`, and the first tier that applies wins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runner import gitcmd
from runner.errors import WorkspaceError

__all__ = [
    "PatchResult",
    "Tier",
    "Workspace",
    "apply_patch",
    "diff_trees",
    "move_into",
    "restore",
    "tree",
    "tree_with_patch",
]

Tier = Literal["git-apply", "git-apply-3way", "patch-fuzz", "empty"]
"""How a patch applied: the fallback chain's tiers in order, or `empty` for a patch with nothing in it."""

# Each tier is (name, argv prefix). `git apply --check` runs first so a failing tier writes nothing.
_GIT_TIERS: tuple[tuple[Tier, tuple[str, ...]], ...] = (
    ("git-apply", ("apply", "--whitespace=nowarn")),
    ("git-apply-3way", ("apply", "--3way", "--whitespace=nowarn")),
)


@dataclass(frozen=True)
class Workspace:
    path: Path
    base_commit: str


@dataclass(frozen=True)
class PatchResult:
    patch: str
    tier: Tier

    @property
    def exact(self) -> bool:
        return self.tier in {"git-apply", "empty"}


# No system or user configuration (a stranger's repository meets only git's defaults), and a fixed identity
# for the commits `--3way` may need.
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "runner",
    "GIT_AUTHOR_EMAIL": "runner@localhost",
    "GIT_COMMITTER_NAME": "runner",
    "GIT_COMMITTER_EMAIL": "runner@localhost",
}


def _first_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    text = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else f"exit {proc.returncode}"


def restore(bundle: Path, base_commit: str, dest: Path, baseline: Path | None = None) -> Workspace:
    """Clone `bundle` into the empty folder `dest`, check out `base_commit`, apply the dirty baseline."""
    if not bundle.is_file():
        raise WorkspaceError(f"{bundle}: the pack has no git bundle; re-record with a git repository")
    if dest.exists() and any(dest.iterdir()):
        raise WorkspaceError(f"{dest}: workspace folder is not empty; pass an empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    source = str(bundle.resolve())
    for args in (("init", "-q", "."), ("bundle", "verify", "-q", source)):
        proc = gitcmd.run(dest, *args, env=_GIT_ENV, check=False, error=WorkspaceError)
        if proc.returncode != 0:
            raise WorkspaceError(f"{bundle}: not a usable git bundle ({_first_line(proc)})")
    heads = gitcmd.output(dest, "bundle", "list-heads", source, env=_GIT_ENV, error=WorkspaceError).split()[
        1::2
    ]
    # Fetch every ref the bundle advertises (a bundle made from `HEAD` alone has no refs/ name).
    refspecs = [f"+{ref}:refs/bundle/{i}" for i, ref in enumerate(heads)]
    fetch = gitcmd.run(
        dest, "fetch", "-q", "--no-tags", source, *refspecs, env=_GIT_ENV, check=False, error=WorkspaceError
    )
    if fetch.returncode != 0 or not refspecs:
        raise WorkspaceError(f"{bundle}: not a usable git bundle (fetch: {_first_line(fetch)})")
    checkout = gitcmd.run(
        dest, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", base_commit,
        env=_GIT_ENV, check=False, error=WorkspaceError,
    )  # fmt: skip
    if checkout.returncode != 0:
        raise WorkspaceError(
            f"{bundle}: base commit {base_commit} is not in the bundle ({_first_line(checkout)}); "
            "re-record so the bundle holds the base commit"
        )
    head = gitcmd.output(dest, "rev-parse", "HEAD", env=_GIT_ENV, error=WorkspaceError).strip()
    if not head.startswith(base_commit) and head != base_commit:
        raise WorkspaceError(f"{bundle}: checked out {head}, expected {base_commit}")
    workspace = Workspace(path=dest, base_commit=head)
    if baseline is not None:
        apply_patch(workspace, baseline)
    return workspace


def move_into(workspace: Workspace, dest: Path) -> Workspace:
    """Move a restored workspace into the empty folder `dest` on the same file system, entry by entry
    (`dest` itself stays: a container may have it mounted). OSError, with nothing moved, from another."""
    if any(dest.iterdir()):
        raise WorkspaceError(f"{dest}: workspace folder is not empty; pass an empty folder")
    for entry in sorted(workspace.path.iterdir()):  # renames: no file is copied
        os.rename(entry, dest / entry.name)
    return Workspace(path=dest, base_commit=workspace.base_commit)


def apply_patch(workspace: Workspace, patch: Path) -> PatchResult:
    """Apply one unified diff with the fallback chain; say which tier applied it, or why none did."""
    data = patch.read_bytes()
    if not data.strip():
        return PatchResult(patch=patch.name, tier="empty")
    reasons: list[str] = []
    for name, args in _GIT_TIERS:
        if "--3way" in args:
            # --3way implies --index: stage the current tree (earlier patches, command outputs) first.
            gitcmd.run(workspace.path, "add", "-A", env=_GIT_ENV, check=False, error=WorkspaceError)
        check = gitcmd.run(
            workspace.path, *args, "--check", "-", stdin=data, env=_GIT_ENV, check=False, error=WorkspaceError
        )
        if check.returncode == 0:
            proc = gitcmd.run(
                workspace.path, *args, "-", stdin=data, env=_GIT_ENV, check=False, error=WorkspaceError
            )
            if proc.returncode == 0:
                return PatchResult(patch=patch.name, tier=name)
            check = proc
        reasons.append(f"{name}: {_first_line(check)}")
    patch_bin = shutil.which("patch")
    if patch_bin is not None:
        base = [patch_bin, "-p1", "--fuzz=3", "--forward", "--batch", "--no-backup-if-mismatch", "-s"]
        dry = subprocess.run(
            [*base, "--dry-run"], cwd=workspace.path, input=data, capture_output=True, check=False
        )
        if dry.returncode == 0:
            subprocess.run(base, cwd=workspace.path, input=data, capture_output=True, check=True)
            return PatchResult(patch=patch.name, tier="patch-fuzz")
        reasons.append(f"patch-fuzz: {_first_line(dry)}")
    else:
        reasons.append("patch-fuzz: `patch` is not installed")
    raise WorkspaceError(f"{patch.name} does not apply to the workspace: " + "; ".join(reasons))


def _with_index(workspace: Workspace, index: Path, *args: str, stdin: bytes | None = None) -> str:
    env = {**_GIT_ENV, "GIT_INDEX_FILE": str(index)}
    proc = gitcmd.run(workspace.path, *args, stdin=stdin, env=env, error=WorkspaceError)
    return proc.stdout.decode("utf-8", "replace")


def tree(workspace: Workspace) -> str:
    """The git tree id of the working tree as it is now (untracked files included), via a private index."""
    with tempfile.TemporaryDirectory(prefix="runner-index-") as tmp:
        index = Path(tmp) / "index"
        _with_index(workspace, index, "add", "-A", ".")
        return _with_index(workspace, index, "write-tree").strip()


def tree_with_patch(workspace: Workspace, base_tree: str, patch: Path) -> str:
    """The tree `patch` makes of `base_tree`, computed in a private index: the working tree is not touched."""
    with tempfile.TemporaryDirectory(prefix="runner-index-") as tmp:
        index = Path(tmp) / "index"
        _with_index(workspace, index, "read-tree", base_tree)
        if patch.read_bytes().strip():
            _with_index(
                workspace, index, "apply", "--cached", "--whitespace=nowarn", "-", stdin=patch.read_bytes()
            )
        return _with_index(workspace, index, "write-tree").strip()


def diff_trees(workspace: Workspace, recorded: str, replayed: str) -> str:
    """A unified diff from the recorded result to the replayed one (empty when the trees are equal)."""
    if recorded == replayed:
        return ""
    proc = gitcmd.run(
        workspace.path, "diff", "--binary", recorded, replayed, env=_GIT_ENV, error=WorkspaceError
    )
    return proc.stdout.decode("utf-8", "replace")
