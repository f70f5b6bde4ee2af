"""A session starts without waiting for its recording proxy or its environment snapshot, and loses nothing.

The agent's very first request goes out the moment `record` returns, while mitmdump is still starting:
it must wait in the proxy's socket and be recorded like any other.
"""

from __future__ import annotations

import inspect
import ssl
from pathlib import Path

import httpx
import pytest

from runner.pack import traces
from runner.recorder import record
from tests.gitrepo import make_repo
from tests.helpers.https_server import https_server
from tests.recorder.test_session import members

pytestmark = pytest.mark.slow


def test_the_first_request_sent_before_the_proxy_runs_is_recorded(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.py": "x = 1\n"})
    out = tmp_path / "pack.tar.zst"
    options = {"record_loopback": True, "set_environ": False}
    with (
        https_server(tmp_path / "server") as server,
        record(out=out, repo=repo, upstream_ca=server.ca.cert_path, **options) as session,
    ):
        env = session.proxy_env
        started_before = session._proxy.ready
        via = "proxy" if "proxy" in inspect.signature(httpx.Client).parameters else "proxies"
        with httpx.Client(
            **{via: env["HTTPS_PROXY"]},
            verify=ssl.create_default_context(cafile=env["SSL_CERT_FILE"]),
            trust_env=False,
        ) as c:  # type: ignore[arg-type]
            answer = c.post(
                f"{server.base}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "first"}]},
                timeout=60,
            )
        assert not started_before  # sent while mitmdump was still starting
        assert answer.status_code == 200
        recorded_snapshot = session.snapshot  # taken alongside: waits for it
    assert session.summary.exchanges == 1
    assert recorded_snapshot.git["commit"] == session.git.base_commit
    assert session.summary.warnings == ()


def test_the_snapshot_is_taken_alongside_and_still_lands_in_every_span(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.py": "x = 1\n"})
    out = tmp_path / "pack.tar.zst"
    with record(out=out, repo=repo, http=False) as session:
        pending = not session._snapshot.done()
        with session.task("first"):
            pass
    assert pending  # the session started before its snapshot was done
    target = tmp_path / "traces.jsonl"
    target.write_bytes(members(out)["traces.jsonl"])
    spans = traces.read_spans(target)
    assert spans and all(s.attributes["runner.env.snapshot_id"] for s in spans)
    assert all(str(s.attributes["runner.runtime"]).startswith("python ") for s in spans)
