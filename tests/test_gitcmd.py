"""runner.gitcmd: the one way git runs; errors name the command and the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import gitcmd
from runner.errors import WorkspaceError
from tests.gitrepo import make_repo


def test_inherited_git_variables_do_not_redirect_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "a\n"})
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    assert gitcmd.output(repo, "rev-parse", "--show-toplevel").strip() == str(repo.resolve())


def test_a_failure_raises_the_callers_error_naming_command_and_folder(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match=r"git rev-parse failed in .*not a git repository"):
        gitcmd.output(tmp_path, "rev-parse", "HEAD", error=WorkspaceError)


def test_hooks_never_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "a\n"})
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\ntouch hook-ran\nexit 1\n")
    hook.chmod(0o755)
    (repo / "a.txt").write_text("b\n")
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    gitcmd.run(repo, "commit", "-qam", "change", env=env)
    assert not (repo / "hook-ran").exists()
