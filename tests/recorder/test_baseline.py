"""`runner record`'s start: the agent is spawned before the recorder's heavy parts are imported, and a
session that cannot start after that stops the agent and leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from runner.errors import PrivacyError, RecordError
from runner.recorder import baseline, wrap
from runner.recorder.options import RecordOptions
from runner.recorder.proxy import RecordingProxy
from runner.recorder.session import Session
from tests.gitrepo import make_repo

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from pathlib import Path
from runner.recorder import wrap
from runner.recorder.options import RecordOptions
loaded = []
spawn = wrap._Agent.__init__
def spy(self, *args, **kwargs):
    loaded.append(sorted(m for m in ("opentelemetry", "runner.recorder.session", "runner.pack.build")
                         if m in sys.modules))
    spawn(self, *args, **kwargs)
wrap._Agent.__init__ = spy
wrap.record_command(["true"], Path(sys.argv[1]), repo=Path("."), options=RecordOptions())
print(json.dumps(loaded))
"""


def _repo_and_private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A one-file repository, and an empty folder that temp files go to (to check nothing is left there)."""
    repo, work = tmp_path / "repo", tmp_path / "tmp"
    make_repo(repo, {"a.py": "x = 1\n"})
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    return repo, work


def test_the_agent_is_spawned_before_opentelemetry_and_the_session_are_imported(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.py": "x = 1\n"})
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "pack.tar.zst")], cwd=repo, capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [[]]  # spawned once, none of them loaded yet
    assert (tmp_path / "pack.tar.zst").is_file()


def test_a_session_that_cannot_start_stops_the_running_agent_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, work = _repo_and_private_tmp(tmp_path, monkeypatch)
    monkeypatch.chdir(repo)
    pid_file = tmp_path / "agent.pid"
    agent = [
        sys.executable,
        "-c",
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)",
    ]

    def broken_start(self: Session) -> Session:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:  # the agent runs by now
            time.sleep(0.05)
        raise RecordError("the session could not start")

    monkeypatch.setattr(Session, "start", broken_start)
    with pytest.raises(RecordError, match="could not start"):
        wrap.record_command(agent, tmp_path / "pack.tar.zst", repo=repo, options=RecordOptions(http=False))
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # stopped and reaped
    assert list(work.iterdir()) == [] and not (tmp_path / "pack.tar.zst").exists()


def test_a_bad_setting_is_raised_first_and_the_started_proxy_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, work = _repo_and_private_tmp(tmp_path, monkeypatch)
    monkeypatch.setenv("RUNNER_REDACTION_POLICY", "no-such-policy")
    proxy = RecordingProxy(b"k" * 32, upstream_ca=None, record_loopback=False, set_environ=False)
    options = RecordOptions(history="not-a-history")  # a git-side problem too: the setting's comes first
    with pytest.raises(PrivacyError, match="no-such-policy"):
        baseline.take(tmp_path / "pack.tar.zst", repo, options, proxy)
    assert proxy.env and proxy.stop() == 0  # it was started (its variables are set), and is stopped already
    assert list(work.iterdir()) == []
