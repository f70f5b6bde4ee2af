"""Tool running: timeouts, the recorded environment of a command step, the cwd rule."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pytest

from runner.errors import RecordError
from runner.pack import manifest as mf
from runner.pack import summary as pack_summary
from runner.pack.snapshot import REPLAYED_ENV
from runner.recorder import record
from runner.recorder.tools import BlobStore, run_process
from tests.gitrepo import make_repo
from tests.recorder.test_session import members


def test_run_tool_records_timeouts_secret_free_env_and_refuses_a_cwd_outside_the_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    out = tmp_path / "tools.tar.zst"
    with record(out=out, repo=repo, http=False) as s:
        slow = s.run_tool([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
        assert slow.exit_code is None and slow.step_id is None
        env = s.run_tool(["sh", "-c", "echo $MODE"], env={"MODE": "fast", "API_TOKEN": "tok-secret-123"})
        assert env.stdout == b"fast\n"
        with pytest.raises(RecordError, match="inside the repository"):
            s.run_tool(["true"], cwd=tmp_path)
    m = pack_summary.inspect(out).manifest
    (step,) = m.steps
    # The command's own variables (no credential) and the portable ones that change output, as they were.
    portable = {k: v for k, v in os.environ.items() if k in REPLAYED_ENV}
    assert isinstance(step, mf.CommandStep) and step.env == {**portable, "MODE": "fast"}
    assert b"tok-secret-123" not in b"".join(members(out).values())


def test_blobs_are_kept_by_sha256_and_large_ones_are_staged_on_disk(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    small = store.add(b"hello", "text/plain", "s.txt", "0" * 16)
    assert small.data == b"hello" and small.sha256 == hashlib.sha256(b"hello").hexdigest()
    big = b"x" * ((8 << 20) + 1)
    staged = store.add(big, "application/octet-stream", "b.bin", "0" * 16)
    assert staged.data == tmp_path / "blobs" / staged.sha256 and staged.data.read_bytes() == big


def test_a_killed_command_takes_its_process_group_with_it(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    argv = ("sh", "-c", f"(sleep 2; touch {marker}) & sleep 30")
    assert run_process(argv, tmp_path, None, 0.5) == (None, b"", b"")
    time.sleep(2.5)
    assert not marker.exists()
