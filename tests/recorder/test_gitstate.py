"""The pack's git bundle: the base tree alone by default, history on request, and a scan of what it carries."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from proxy.detectors import DETECTORS
from proxy.redact import Redactor
from runner.errors import RecordError
from runner.pack.read import read_manifest
from runner.recorder.gitstate import bundle, diff_trees, read_state, worktree_tree
from runner.replay.workspace import restore
from tests.gitrepo import git, make_repo, write
from tests.helpers.secret_corpus import corpus, history_secret

LEAK = history_secret()


def _repo(tmp_path: Path) -> tuple[Path, str]:
    """Three commits: the second adds a key in config.py, the third removes it."""
    repo = tmp_path / "repo"
    make_repo(repo, {"app.py": "print('hi')\n"})
    write(repo, {"config.py": LEAK.context + "\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "add config")
    leaked = git(repo, "rev-parse", "HEAD").strip()
    write(repo, {"config.py": "OPENAI_API_KEY = None\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "drop the key")
    return repo, leaked


def _record(repo: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    return subprocess.run(
        [sys.executable, "-m", "runner", "record", "--out", str(out), "--no-http", *flags, "--",
         "sh", "-c", "echo 'x = 1' >> app.py"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _members(pack: Path) -> dict[str, bytes]:
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(pack.read_bytes()), read_across_frames=True)
    with tarfile.open(fileobj=io.BytesIO(raw.read()), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _bundle_objects(bundle: bytes, tmp: Path) -> tuple[bytes, int]:
    """Every object the bundle holds, uncompressed, and the number of commits in it."""
    (tmp / "b.bundle").write_bytes(bundle)
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", "--mirror", str(tmp / "b.bundle"), str(clone)], check=True)
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=clone, capture_output=True, check=True
    ).stdout
    count = subprocess.run(["git", "rev-list", "--count", "--all"], cwd=clone, capture_output=True, text=True)
    return objects, int(count.stdout)


def test_default_bundle_is_the_base_tree_alone_and_replays(tmp_path: Path) -> None:
    repo, _ = _repo(tmp_path)
    base = git(repo, "rev-parse", "HEAD").strip()
    out = tmp_path / "p.tar.zst"
    proc = _record(repo, out)
    assert proc.returncode == 0, proc.stderr
    members = _members(out)
    objects, commits = _bundle_objects(members["workspace/base.bundle"], tmp_path)
    assert commits == 1
    assert LEAK.value.encode() not in objects
    assert not any(LEAK.value.encode() in data for data in members.values())
    assert "secret" not in proc.stderr  # the base tree holds none
    manifest, _ = read_manifest(out)
    assert manifest.git.base_commit == base and manifest.git.history == "base"
    assert manifest.git.bundle_commit and manifest.git.bundle_commit != base
    assert manifest.privacy.extra["bundle_scan"] == {"history": "base", "secrets": 0, "findings": []}
    ws = restore(_write(tmp_path, members), manifest.git.checkout, tmp_path / "ws")
    assert git(ws.path, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"{base}^{{tree}}")


def _write(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "again.bundle"
    path.write_bytes(members["workspace/base.bundle"])
    return path


def test_full_history_is_scanned_and_the_warning_names_the_commit(tmp_path: Path) -> None:
    repo, leaked = _repo(tmp_path)
    out = tmp_path / "p.tar.zst"
    proc = _record(repo, out, "--history", "full")
    assert proc.returncode == 0, proc.stderr
    assert "1 secret(s)" in proc.stderr and f"config.py@{leaked[:12]}" in proc.stderr
    assert "--history base" in proc.stderr
    manifest, _ = read_manifest(out)
    assert manifest.git.history == "full" and manifest.git.bundle_commit is None
    scan = manifest.privacy.extra["bundle_scan"]
    assert scan["secrets"] == 1
    assert scan["findings"] == [{"kind": "openai-key", "path": "config.py", "commit": leaked}]
    assert LEAK.value not in out.read_bytes().decode("latin-1")  # the finding never carries the value
    _, commits = _bundle_objects(_members(out)["workspace/base.bundle"], tmp_path)
    assert commits == 3


def test_the_history_scan_finds_what_every_added_line_holds_and_blocks_across_lines(tmp_path: Path) -> None:
    """Each added line read alone by the plain redactor is the floor (a base64 blob on a line of its own
    included); private-key blocks spanning lines come on top, a line that reads like a diff header
    (`++ ...` added) is a line, not a file name, and a file name git quotes is named as it is."""
    planted = corpus()
    noise = "def handler(token: int) -> None:  # a type, not a secret\n"
    body = "".join(f"{noise}{p.context}\n" for p in planted) + f"++ {LEAK.context}\n"
    repo = tmp_path / "repo"
    make_repo(repo, {"app.py": "print('hi')\n"})
    write(repo, {"notes/naïve café.txt": body})  # git quotes this name in its patches
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "add secrets")
    added = git(repo, "rev-parse", "HEAD").strip()
    write(repo, {"notes/naïve café.txt": "gone\n"})
    git(repo, "commit", "-qam", "drop them")
    per_line: set[str] = set()
    plain = Redactor(b"k", DETECTORS, found=lambda kind, secret, token: per_line.add(secret))
    for line in body.splitlines():
        plain.text(line)
    bundled = bundle(read_state(repo), tmp_path / "b.bundle", "full", DETECTORS)
    blocks = [p for p in planted if p.kind == "private-key"]
    assert blocks and not any(p.value in per_line for p in blocks)  # no line alone holds a whole block
    assert bundled.secrets == len(per_line) + len(blocks)
    assert {p.kind for p in planted} <= {f.kind for f in bundled.findings}
    assert {(f.path, f.commit) for f in bundled.findings} == {("notes/naïve café.txt", added)}


def test_history_n_keeps_the_last_commits_on_a_squashed_root(tmp_path: Path) -> None:
    repo, leaked = _repo(tmp_path)
    base = git(repo, "rev-parse", "HEAD").strip()
    out = tmp_path / "p.tar.zst"
    proc = _record(repo, out, "--history", "1")
    assert proc.returncode == 0, proc.stderr
    manifest, _ = read_manifest(out)
    assert manifest.git.history == "1"
    members = _members(out)
    objects, commits = _bundle_objects(members["workspace/base.bundle"], tmp_path)
    assert commits == 2  # the squashed tree before the kept commit, then the commit itself
    assert b"drop the key" in objects and b"add config" not in objects
    # The squashed root is the tree of the commit that added the key: the warning names that commit.
    assert f"config.py@{leaked[:12]}" in proc.stderr
    ws = restore(_write(tmp_path, members), manifest.git.checkout, tmp_path / "ws")
    assert git(ws.path, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"{base}^{{tree}}")


def test_secret_in_the_base_tree_points_at_encryption(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"settings.py": corpus()[0].context + "\n"})
    proc = _record(repo, tmp_path / "p.tar.zst")
    assert proc.returncode == 0, proc.stderr
    assert "in the base tree (settings.py)" in proc.stderr and "RUNNER_ENCRYPT_PAYLOADS=1" in proc.stderr


def test_bad_history_fails_before_the_agent_runs(tmp_path: Path) -> None:
    repo, _ = _repo(tmp_path)
    proc = _record(repo, tmp_path / "p.tar.zst", "--history", "0")
    assert proc.returncode == 2 and "--history '0'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert git(repo, "status", "--porcelain") == ""  # the agent never ran


def test_sdk_records_history_on_request(tmp_path: Path) -> None:
    from runner.recorder import record

    repo, leaked = _repo(tmp_path)
    out = tmp_path / "p.tar.zst"
    with record(out, repo=repo, http=False, history=2) as session:
        session.run_tool(["true"])
    manifest, _ = read_manifest(out)
    assert manifest.git.history == "2"
    assert session.summary is not None
    assert any(f"config.py@{leaked[:12]}" in w for w in session.summary.warnings)


def test_the_state_is_read_from_any_folder_of_the_repository_and_a_missing_commit_is_named(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    commit = make_repo(repo, {"pkg/a.py": "x = 1\n"})
    git(repo, "remote", "add", "origin", "https://example.invalid/r.git")
    state = read_state(repo / "pkg")
    assert (state.root, state.base_commit, state.branch) == (repo, commit, "main")
    assert state.head_tree == git(repo, "rev-parse", "HEAD^{tree}").strip()
    assert state.remote == "https://example.invalid/r.git"
    git(repo, "tag", "main")  # a tag of the branch's name: the branch is named as `symbolic-ref --short` does
    assert (
        read_state(repo).branch == git(repo, "symbolic-ref", "-q", "--short", "HEAD").strip() == "heads/main"
    )
    git(repo, "checkout", "-q", "--detach")
    assert read_state(repo).branch is None
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(RecordError, match="the repository has no commit yet"):
        read_state(empty)


def _masking_diff_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's git config with a text conversion for *.env files (as git-crypt or notebook tools set up),
    through a global attributes file, which reaches every repository, bare ones too; and patches without
    their a/ and b/ prefixes; and logs that hide a root commit's diff."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "attributes").write_text("*.env diff=masked\n")
    (home / ".gitconfig").write_text(
        f"[core]\n\tattributesFile = {home / 'attributes'}\n"
        '[diff "masked"]\n\ttextconv = sh -c \'tr a-zA-Z0-9 x < "$0"\'\n'
        "[diff]\n\tnoprefix = true\n[log]\n\tshowRoot = false\n"
    )
    monkeypatch.setenv("HOME", str(home))


def test_the_history_scan_reads_the_bytes_not_a_diff_drivers_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _masking_diff_driver(tmp_path, monkeypatch)
    repo = tmp_path / "repo"
    make_repo(repo, {"app.py": "print('hi')\n"})
    write(repo, {"prod.env": LEAK.context + "\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "add env")
    bundled = bundle(read_state(repo), tmp_path / "b.bundle", "full", DETECTORS)
    assert bundled.secrets == 1 and [f.path for f in bundled.findings] == ["prod.env"]


def test_a_patch_holds_the_change_itself_not_a_diff_drivers_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converted, both versions read `xxxxxx=xxx`: the patch came out empty and the change was lost; without
    prefixes, `git apply` could not place it. It applies to a clone of the base."""
    _masking_diff_driver(tmp_path, monkeypatch)
    repo = tmp_path / "repo"
    make_repo(repo, {"conf/a.env": "secret=abc\n"})
    state = read_state(repo)
    write(repo, {"conf/a.env": "secret=def\n"})
    patch = diff_trees(state, state.head_tree, worktree_tree(state))
    assert b"--- a/conf/a.env\n+++ b/conf/a.env\n" in patch and b"-secret=abc\n+secret=def\n" in patch
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    subprocess.run(["git", "apply", "-"], cwd=clone, input=patch, check=True)
    assert (clone / "conf" / "a.env").read_text() == "secret=def\n"


def test_the_scan_of_the_default_bundle_reads_its_root_whatever_the_users_log_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default bundle is one squashed root commit: with log.showRoot=false, git log showed no diff."""
    _masking_diff_driver(tmp_path, monkeypatch)
    repo = tmp_path / "repo"
    make_repo(repo, {"settings.py": LEAK.context + "\n"})
    bundled = bundle(read_state(repo), tmp_path / "b.bundle", "base", DETECTORS)
    assert bundled.secrets == 1 and [(f.path, f.commit) for f in bundled.findings] == [("settings.py", None)]


def test_a_shallow_clone_bundles_the_history_it_has_and_replays(tmp_path: Path) -> None:
    """A shallow clone's oldest commit names a parent it does not hold: `full` (or more commits than it
    has) failed at the end of the recording; the bundle now holds what there is, rewritten onto a root."""
    origin = tmp_path / "origin"
    make_repo(origin, {"f.txt": "0\n"})
    for i in range(1, 4):
        write(origin, {"f.txt": f"{i}\n"})
        git(origin, "commit", "-qam", f"change {i}")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{origin}", str(clone)], check=True)
    state = read_state(clone)
    for asked, held, short in (("full", "2", True), ("5", "2", True), ("1", "1", False)):
        out = tmp_path / f"{asked}.bundle"
        bundled = bundle(state, out, asked, DETECTORS)
        assert (bundled.history, bundled.shallow) == (held, short)
        assert (
            bundled.commit != state.base_commit
        )  # rewritten: a bundle of the clone's commits would not fetch
        ws = restore(out, bundled.commit, tmp_path / f"ws-{asked}")
        assert git(ws.path, "rev-parse", "HEAD^{tree}") == git(clone, "rev-parse", "HEAD^{tree}")
        assert int(git(ws.path, "rev-list", "--count", "HEAD")) == int(held) + (0 if short else 1)


def test_submodules_are_named_in_the_scan_and_warned_about(tmp_path: Path) -> None:
    """A submodule is another repository's commit: the pack holds none of its files (replay restores the
    folder empty), which the recording says rather than letting a replayed command fail on it."""
    lib = tmp_path / "lib"
    make_repo(lib, {"lib.txt": "lib\n"})
    repo = tmp_path / "repo"
    make_repo(repo, {"app.txt": "app\n"})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "-q", "add", str(lib), "vendor/lib")
    git(repo, "commit", "-qm", "add the submodule")
    out = tmp_path / "p.tar.zst"
    proc = _record(repo, out)
    assert proc.returncode == 0, proc.stderr
    manifest, _ = read_manifest(out)
    assert manifest.privacy.extra["bundle_scan"]["submodules"] == ["vendor/lib"]
    assert "submodules (vendor/lib)" in proc.stderr and "restores those folders empty" in proc.stderr
