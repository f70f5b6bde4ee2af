"""Small helpers that build throwaway git repositories for tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/bin:/bin",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=_ENV, check=True, capture_output=True, text=True
    ).stdout


def make_repo(path: Path, files: dict[str, str]) -> str:
    """Create a repository at `path` with `files` committed; return the commit id."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    write(path, files)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    return git(path, "rev-parse", "HEAD").strip()


def write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def diff_of(repo: Path, files: dict[str, str]) -> str:
    """The unified diff that turns the committed tree into one with `files` written; the tree is reset."""
    write(repo, files)
    git(repo, "add", "-A")
    out = git(repo, "diff", "--cached", "--binary")
    git(repo, "reset", "-q", "--hard")
    return out


def bundle(repo: Path, dest: Path) -> Path:
    git(repo, "bundle", "create", str(dest), "--all")
    return dest
