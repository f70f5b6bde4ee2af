"""Pack building: round trips, the layout the builder enforces, changed files, crash safety, determinism."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import PackError
from runner.pack import build as pack
from runner.pack import layout
from runner.pack import manifest as mf
from runner.pack import read as pack_read
from runner.privacy.mask import PrivacyOptions
from tests.pack.conftest import DIFF, REPO
from tests.packfactory import make_manifest, make_pack, patch, raw_members


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- build and round trip ------------------------------------------------------------------------


def test_round_trip(small_pack: Path, tmp_path: Path) -> None:
    out = pack_read.unpack(small_pack, tmp_path / "out")
    files = _tree(tmp_path / "out")
    assert dict(raw_members(small_pack)) == files
    assert files["patches/0001.diff"] == DIFF.encode()
    assert mf.load(files["manifest.yaml"]) == out.manifest
    step = out.manifest.steps[1]
    assert isinstance(step, mf.CommandStep) and step.expect.stdout
    assert out.artifact(step.expect.stdout).read_bytes() == b"1 passed in 0.01s\n"
    with pytest.raises(PackError, match="no artifact"):
        out.artifact("0" * 64)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_manifest_is_the_first_member_and_zstd_carries_a_checksum(small_pack: Path) -> None:
    assert raw_members(small_pack)[0][0] == "manifest.yaml"
    assert zstandard.get_frame_parameters(small_pack.read_bytes()).has_checksum


def test_artifacts_are_stored_once_however_often_added(tmp_path: Path) -> None:
    with pack.PackBuilder() as b:
        first = b.add_artifact(b"same log\n", media_type="text/plain", name="a.log")
        src = tmp_path / "b.log"
        src.write_bytes(b"same log\n")
        second = b.add_artifact(src, media_type="text/plain", name="b.log")
        assert first == second
        assert [a.name for a in b.artifacts] == ["a.log", "b.log"]
        assert list(b.members) == [f"artifacts/sha256/{first}"]
        assert b.member_bytes(f"artifacts/sha256/{first}") == b"same log\n"
        b.add_bytes("workspace/base.bundle", b"bundle")
        b.add_bytes("env/pip-freeze.txt", b"pytest==8\n")
        b.build(make_manifest(), tmp_path / "p.tar.zst", privacy=PrivacyOptions(policy=None))
    names = [n for n, _ in raw_members(tmp_path / "p.tar.zst")]
    assert names.count(f"artifacts/sha256/{first}") == 1


@pytest.mark.parametrize(
    "member", ["../x", "/etc/passwd", "manifest.yaml", "env/../x", "notes.txt", "env/a//b"]
)
def test_builder_refuses_names_outside_the_layout(member: str) -> None:
    with pack.PackBuilder() as b, pytest.raises(PackError, match="cannot add member"):
        b.add_bytes(member, b"x")


@pytest.mark.parametrize(
    ("first", "second"), [("env/A.txt", "env/a.txt"), ("env/sub", "env/sub/x"), ("env/sub/x", "env/SUB")]
)
def test_builder_refuses_names_that_clash(first: str, second: str) -> None:
    with pack.PackBuilder() as b:
        b.add_bytes(first, b"x")
        with pytest.raises(PackError, match="clashes"):
            b.add_bytes(second, b"x")


def test_build_refuses_a_manifest_pointing_at_a_missing_member(tmp_path: Path) -> None:
    with pack.PackBuilder() as b, pytest.raises(PackError, match=r"points at .* not added"):
        b.build(make_manifest(), tmp_path / "p.tar.zst")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("new_content", [b"y", b"longer"])
def test_build_refuses_a_file_changed_after_add(tmp_path: Path, new_content: bytes) -> None:
    src = tmp_path / "pip-freeze.txt"
    src.write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    with pack.PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"x")
        b.add_file("env/pip-freeze.txt", src)
        src.write_bytes(new_content)  # same size and, likely, the same timestamp tick: the hash decides
        with pytest.raises(PackError, match="changed after it was added"):
            b.build(make_manifest(), out / "p.tar.zst")
    assert list(out.iterdir()) == []  # the temp file was removed


def test_build_into_a_missing_folder_is_a_pack_error(tmp_path: Path) -> None:
    with pack.PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"x")
        b.add_bytes("env/pip-freeze.txt", b"x")
        with pytest.raises(PackError, match=r"cannot write .*check the folder"):
            b.build(make_manifest(), tmp_path / "absent" / "p.tar.zst")


def test_real_git_bundle(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "base"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    out = pack_read.unpack(make_pack(tmp_path, repo=repo), tmp_path / "out")
    verified = subprocess.run(
        ["git", "bundle", "verify", str(tmp_path / "out/workspace/base.bundle")],
        cwd=repo,
        capture_output=True,
    )
    assert verified.returncode == 0, verified.stderr
    assert len(out.manifest.git.base_commit) == 40


# --- crash safety ---------------------------------------------------------------------------------

KILLED_BUILDER = """
import random, sys, time
from pathlib import Path
from runner.pack import manifest as mf
from runner.pack.build import PackBuilder
from tests.packfactory import make_manifest
rng = random.Random(1)
with PackBuilder() as b:
    b.add_bytes("workspace/base.bundle", b"x")
    b.add_bytes("env/pip-freeze.txt", b"x")
    for i in range(64):
        b.add_artifact(rng.randbytes(1 << 20), media_type="application/octet-stream")
    b.build(make_manifest(), Path(sys.argv[1]), progress=lambda done, total: time.sleep(0.05))
"""


def test_a_builder_killed_mid_write_leaves_no_pack(tmp_path: Path) -> None:
    out = tmp_path / "big.tar.zst"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILDER, str(out)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial") and p.stat().st_size > 0]
            if partial:
                break
            time.sleep(0.01)
        assert partial, "the builder never started writing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()


def test_a_big_pack_is_sent_to_disk_as_it_is_written_and_is_the_same_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = [os.urandom(2 << 20) for _ in range(5)]  # incompressible: 10 MiB in frames of 2 MiB, so the
    # writing to disk starts twice on the way (past 4 and 8 MiB)
    started: list[str] = []

    def record(fd: int) -> None:
        started.append(os.readlink(f"/proc/self/fd/{fd}"))

    def build(name: str) -> bytes:
        with pack.PackBuilder(privacy=PrivacyOptions(policy=None)) as b:
            b.add_bytes("workspace/base.bundle", b"bundle")
            b.add_bytes("env/pip-freeze.txt", b"a==1\n")
            for i, blob in enumerate(blobs):
                b.add_artifact(blob, name=f"blob{i}.bin")
            b.build(make_manifest(), tmp_path / name)
        return (tmp_path / name).read_bytes()

    monkeypatch.setattr(layout, "start_writeback", lambda: record)
    with_writeback = build("a.tar.zst")
    assert len(started) == 2 and all(Path(p).name.startswith(".a.tar.zst.") for p in started)
    monkeypatch.setattr(layout, "start_writeback", lambda: None)  # where the system has none
    assert build("b.tar.zst") == with_writeback
    assert pack_read.unpack(tmp_path / "a.tar.zst", tmp_path / "out").manifest.artifacts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_writeback_starts_through_libc_on_linux(tmp_path: Path) -> None:
    start = layout.start_writeback()
    assert start is not None
    with open(tmp_path / "f", "wb") as f:
        f.write(b"x" * 8192)
        f.flush()
        assert start(f.fileno()) == 0  # the arguments are what the call takes: EINVAL otherwise
        assert start(-1) == -1  # and its failures are only reported, never raised


def test_builder_output_is_deterministic(tmp_path: Path) -> None:
    a = make_pack(tmp_path, name="a.tar.zst", steps=[patch("p1", DIFF)])
    b = make_pack(tmp_path, name="b.tar.zst", steps=[patch("p1", DIFF)])
    assert a.read_bytes() == b.read_bytes()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=110),
        st.text(alphabet=st.characters(max_codepoint=127), min_size=95, max_size=101),
        st.just("artifacts/sha256/" + "0" * 64),
    ),
    st.one_of(st.integers(0, 8**11 + 5), st.sampled_from([0, 1, 8**11 - 1, 8**11, 2**40])),
)
def test_member_headers_are_what_tarfile_writes(name: str, size: int) -> None:
    header = tarfile.TarInfo(name)
    header.size, header.mode, header.mtime, header.uname, header.gname = size, 0o644, 0, "", ""
    try:
        expected = header.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    except UnicodeEncodeError:  # lone surrogates: no header at all
        with pytest.raises(UnicodeEncodeError):
            layout.tar_header(name, size)
        return
    assert layout.tar_header(name, size) == expected
