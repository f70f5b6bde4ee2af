from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import WorkspaceError
from runner.replay.workspace import apply_patch, move_into, restore, tree
from tests.gitrepo import bundle, diff_of, git, make_repo

LINES = "".join(f"line {i}\n" for i in range(1, 30))


@pytest.fixture()
def origin(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "origin"
    commit = make_repo(repo, {"src/app.py": LINES, "README": "hello\n"})
    return repo, commit


def test_restore_checks_out_base_commit_and_applies_baseline(
    tmp_path: Path, origin: tuple[Path, str]
) -> None:
    repo, commit = origin
    baseline = tmp_path / "baseline.diff"
    baseline.write_text(diff_of(repo, {"README": "hello, dirty\n"}))
    # A later commit must not leak into the restored tree.
    (repo / "README").write_text("later\n")
    git(repo, "commit", "-qam", "later")
    ws = restore(bundle(repo, tmp_path / "b.bundle"), commit, tmp_path / "ws", baseline=baseline)
    assert ws.base_commit == commit
    assert (ws.path / "README").read_text() == "hello, dirty\n"
    assert (ws.path / "src/app.py").read_text() == LINES


def test_a_restored_workspace_moves_into_an_empty_folder_that_stays(
    tmp_path: Path, origin: tuple[Path, str]
) -> None:
    repo, commit = origin
    ws = restore(bundle(repo, tmp_path / "b.bundle"), commit, tmp_path / "ws")
    before = tree(ws)
    mounted = tmp_path / "spare" / "workspace"
    mounted.mkdir(parents=True)
    inode = mounted.stat().st_ino
    moved = move_into(ws, mounted)
    assert moved.path == mounted and mounted.stat().st_ino == inode and moved.base_commit == commit
    assert not any(ws.path.iterdir()) and tree(moved) == before
    assert git(mounted, "status", "--porcelain") == ""
    with pytest.raises(WorkspaceError, match="not empty"):
        move_into(restore(bundle(repo, tmp_path / "b.bundle"), commit, tmp_path / "ws2"), mounted)


def test_restore_refuses_unknown_commit(tmp_path: Path, origin: tuple[Path, str]) -> None:
    repo, _ = origin
    with pytest.raises(WorkspaceError, match="is not in the bundle"):
        restore(bundle(repo, tmp_path / "b.bundle"), "0" * 40, tmp_path / "ws")


def test_restore_refuses_garbage_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "b.bundle"
    junk.write_bytes(b"# v2 git bundle\nnot really\n")
    with pytest.raises(WorkspaceError, match="not a usable git bundle"):
        restore(junk, "0" * 40, tmp_path / "ws")


def test_patch_tiers(tmp_path: Path, origin: tuple[Path, str]) -> None:
    repo, commit = origin
    exact = tmp_path / "0001.diff"
    exact.write_text(diff_of(repo, {"src/app.py": LINES.replace("line 20\n", "line twenty\n")}))
    # Context drifted: the diff was made against a tree where the top lines differ.
    drifted_base = LINES.replace("line 1\n", "line one\nline zero\n").replace("line 2\n", "")
    make_repo(tmp_path / "other", {"src/app.py": drifted_base})
    fuzzy = tmp_path / "0002.diff"
    fuzzy.write_text(
        diff_of(tmp_path / "other", {"src/app.py": drifted_base.replace("line 5\n", "line five\n")})
    )
    ws = restore(bundle(repo, tmp_path / "b.bundle"), commit, tmp_path / "ws")
    first = apply_patch(ws, exact)
    assert (first.tier, first.exact) == ("git-apply", True)
    second = apply_patch(ws, fuzzy)
    assert second.tier in {"git-apply-3way", "patch-fuzz"} and not second.exact
    text = (ws.path / "src/app.py").read_text()
    assert "line twenty\n" in text and "line five\n" in text


def test_patch_that_does_not_apply_names_it(tmp_path: Path, origin: tuple[Path, str]) -> None:
    repo, commit = origin
    bad = tmp_path / "0003.diff"
    bad.write_text(
        "--- a/src/app.py\n+++ b/src/app.py\n@@ -1,3 +1,3 @@\n-nothing\n-like\n-this\n+x\n+y\n+z\n"
    )
    ws = restore(bundle(repo, tmp_path / "b.bundle"), commit, tmp_path / "ws")
    with pytest.raises(WorkspaceError, match=r"0003\.diff does not apply.*git-apply:.*patch-fuzz:"):
        apply_patch(ws, bad)
    assert (ws.path / "src/app.py").read_text() == LINES


def test_patch_cannot_escape_workspace(tmp_path: Path, origin: tuple[Path, str]) -> None:
    repo, commit = origin
    evil = tmp_path / "evil.diff"
    evil.write_text("--- /dev/null\n+++ b/../escaped.txt\n@@ -0,0 +1 @@\n+pwned\n")
    ws = restore(bundle(repo, tmp_path / "b.bundle"), commit, tmp_path / "ws")
    with pytest.raises(WorkspaceError):
        apply_patch(ws, evil)
    assert not (tmp_path / "escaped.txt").exists()
