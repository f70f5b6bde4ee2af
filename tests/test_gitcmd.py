"""runner.gitcmd: the one way git runs; errors name the command and the folder."""

from __future__ import annotations

import time
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


def test_lines_stream_the_output_and_a_failure_names_gits_complaint(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\ntwo\n"})
    assert list(gitcmd.lines(repo, "show", "HEAD:a.txt")) == [b"one\n", b"two\n"]
    with pytest.raises(WorkspaceError, match=r"git log failed in .*not a git repository"):
        list(gitcmd.lines(tmp_path, "log", error=WorkspaceError))


def test_lines_kill_a_git_past_its_timeout_and_one_left_unread(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "a\n" * 200_000})
    started = time.monotonic()
    with pytest.raises(WorkspaceError, match=r"could not run .*timed out"):
        # git starts a shell that outlives git itself unless its whole process group is killed
        for _ in gitcmd.lines(repo, "-c", "alias.slow=!sleep 30", "slow", timeout=0.5, error=WorkspaceError):
            pass
    assert time.monotonic() - started < 20
    stream = gitcmd.lines(repo, "show", "HEAD:a.txt")
    assert next(stream) == b"a\n"
    stream.close()  # the rest unread: git is killed, not left writing to a full pipe
