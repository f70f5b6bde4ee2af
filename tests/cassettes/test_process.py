"""Record through the local proxy process with real clients, then replay with the server gone.

The upstream is a real HTTPS server on 127.0.0.1 (its own test CA) with an OpenAI-compatible endpoint.
Replay must give byte-identical bodies, streams as several chunks in order, and open no socket to
anything but the proxy: a tripwire listens on the server's old port and must see no connection.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import requests

from proxy.cassette import read_exchanges
from proxy.redact import PLACEHOLDER_RE, Redactor
from proxy.report import Report
from runner.cassettes.process import KEY_FILE, ProxyProcess, ProxySettings, sealing_options
from runner.errors import ProxyError
from runner.privacy import crypto
from runner.privacy.mask import PrivacyOptions
from tests.gitrepo import make_repo
from tests.helpers.https_server import BINARY, STREAM_WORDS, https_server
from tests.packfactory import raw_members

pytestmark = pytest.mark.slow
KEY = "0f" * 16
API_KEY = "sk-test-" + "A1b2C3d4" * 4


def via(proxy_url: str) -> dict[str, Any]:
    """httpx's proxy keyword: `proxy` since 0.26, `proxies` before."""
    key = "proxy" if "proxy" in inspect.signature(httpx.Client).parameters else "proxies"
    return {key: proxy_url}


@dataclass
class Outcome:
    bodies: dict[str, bytes]
    stream_deltas: list[str]
    raw_stream_chunks: int
    report: Report | None
    http_versions: list[str]


def _exercise(proxy: ProxyProcess, base: str) -> Outcome:
    ca = str(proxy.ca.cert_path) if proxy.ca else ""
    bodies: dict[str, bytes] = {}
    env = {**os.environ, "NO_PROXY": "", "no_proxy": ""}
    curl = ["curl", "-sS", "--fail", "--proxy", proxy.url, "--cacert", ca]
    bodies["curl"] = subprocess.run(
        [*curl, f"{base}/hello?from=curl"], capture_output=True, check=True, env=env, timeout=30
    ).stdout
    # curl prefers HTTP/2: without an upstream to mirror, replay speaks it to the client.
    stream_request = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "curl"}]}
    )
    out = proxy.settings.workdir / "curl-body"
    versions = subprocess.run(
        [
            *curl,
            "--http2",
            "-N",
            "-o",
            str(out),
            "-w",
            "%{http_version}",
            "-H",
            "content-type: application/json",
            "--data-binary",
            stream_request,
            f"{base}/v1/chat/completions",
        ],
        capture_output=True,
        check=True,
        env=env,
        timeout=30,
        text=True,
    ).stdout.split()
    bodies["curl-h2-stream"] = out.read_bytes()
    with requests.Session() as session:
        session.trust_env = False
        session.proxies = {"https": proxy.url}
        session.verify = ca
        bodies["requests"] = session.get(f"{base}/binary", timeout=30).content
        bodies["requests-gzip"] = session.get(f"{base}/gzip", timeout=30).content
    with httpx.Client(**via(proxy.url), verify=ca, trust_env=False) as client:
        bodies["httpx"] = client.get(f"{base}/hello?from=httpx").content
        bodies["httpx-post"] = client.post(
            f"{base}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "plain"}], "user": "u-1"},
            headers={"authorization": f"Bearer {API_KEY}"},
        ).content
        raw_chunks = 0
        with client.stream(
            "POST",
            f"{base}/v1/chat/completions",
            json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "raw"}]},
        ) as response:
            for chunk in response.iter_raw():
                raw_chunks += 1
                bodies["httpx-stream"] = bodies.get("httpx-stream", b"") + chunk

    async def with_async() -> tuple[bytes, bytes]:
        async with httpx.AsyncClient(**via(proxy.url), verify=ca, trust_env=False, http2=True) as client:
            plain = (await client.get(f"{base}/hello?from=httpx-async")).content
            streamed = b""
            request = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "h2"}]}
            async with client.stream("POST", f"{base}/v1/chat/completions", json=request) as response:
                async for chunk in response.aiter_raw():
                    streamed += chunk
            return plain, streamed

    bodies["httpx-async-h2"], bodies["httpx-async-h2-stream"] = asyncio.run(with_async())

    http_client = httpx.Client(**via(proxy.url), verify=ca, trust_env=False)
    sdk = openai.OpenAI(base_url=f"{base}/v1", api_key=API_KEY, http_client=http_client, max_retries=0)
    completion = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "sdk"}])
    bodies["openai"] = (completion.choices[0].message.content or "").encode()
    deltas = [
        c.choices[0].delta.content or ""
        for c in sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "sdk stream"}], stream=True
        )
        if c.choices
    ]
    http_client.close()
    report = proxy.stop()
    return Outcome(bodies, deltas, raw_chunks, report, versions)


@dataclass
class Session:
    record: Outcome
    replay: Outcome
    cassette: Path
    tripwire_hits: int


class Tripwire:
    """Listens on a port and counts every connection made to it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    work = tmp_path_factory.mktemp("proxy")
    cassette = work / "cassettes" / "http.jsonl"
    with https_server(work) as server:
        settings = ProxySettings(
            "record", cassette, work / "record", redact_key=KEY, upstream_ca=server.ca.cert_path
        )
        with ProxyProcess(settings) as proxy:
            recorded = _exercise(proxy, server.base)
    tripwire = Tripwire(server.port)
    try:
        settings = ProxySettings("replay", cassette, work / "replay", redact_key=KEY, pace=1.0)
        with ProxyProcess(settings) as proxy:
            replayed = _exercise(proxy, server.base)
    finally:
        tripwire.close()
    yield Session(recorded, replayed, cassette, tripwire.hits)


def test_replay_bodies_are_byte_identical(session: Session) -> None:
    assert set(session.record.bodies) == set(session.replay.bodies)
    for name, body in session.record.bodies.items():
        assert session.replay.bodies[name] == body, name
    assert session.record.bodies["requests"] == BINARY
    assert json.loads(session.replay.bodies["requests-gzip"]) == {"compressed": True}


def test_streams_replay_as_several_chunks_in_order(session: Session) -> None:
    assert session.record.stream_deltas == STREAM_WORDS
    assert session.replay.stream_deltas == STREAM_WORDS
    assert session.replay.raw_stream_chunks > 1
    assert session.replay.http_versions == ["2"]
    exchanges = read_exchanges(session.cassette)
    streamed = [e for e in exchanges if e.response.chunks is not None]
    assert len(streamed) == 4
    assert all(len(e.response.chunks or ()) == len(STREAM_WORDS) + 1 for e in streamed)


def test_unpaced_streams_go_out_at_once_with_the_same_bytes(tmp_path: Path, session: Session) -> None:
    recorded = next(e for e in read_exchanges(session.cassette) if b'"raw"' in e.request.body)
    settings = ProxySettings("replay", session.cassette, tmp_path / "unpaced", redact_key=KEY)
    with ProxyProcess(settings) as proxy:
        ca = str(proxy.ca.cert_path) if proxy.ca else ""
        with httpx.Client(**via(proxy.url), verify=ca, trust_env=False) as client:
            response = client.post(recorded.request.url, content=recorded.request.body)
    assert recorded.response.chunks is not None and len(recorded.response.chunks) > 1
    assert response.content == recorded.response.body == session.replay.bodies["httpx-stream"]
    assert response.headers["content-length"] == str(len(response.content))  # one piece, no pauses


def test_replay_opens_no_socket_but_the_proxy(session: Session) -> None:
    assert session.tripwire_hits == 0
    report = session.replay.report
    assert report is not None
    assert report.refused_upstream == ()
    assert report.misses == ()
    assert (
        report.served == report.exchanges == len(session.record.bodies) + 1
    )  # the SDK stream is not in `bodies`
    assert report.unused == ()


def test_secrets_never_reach_the_cassette(session: Session) -> None:
    text = session.cassette.read_text()
    assert API_KEY not in text
    assert "abc123" not in text  # set-cookie value
    assert "REDACTED_" in text
    record_report = session.record.report
    assert record_report is not None and record_report.exchanges == len(read_exchanges(session.cassette))


def test_a_miss_answers_locally_and_lists_the_nearest(tmp_path: Path, session: Session) -> None:
    settings = ProxySettings("replay", session.cassette, tmp_path, redact_key=KEY)
    with (
        ProxyProcess(settings) as proxy,
        httpx.Client(
            **via(proxy.url), verify=str(proxy.ca.cert_path if proxy.ca else ""), trust_env=False
        ) as client,
    ):
        exchanges = read_exchanges(session.cassette)
        post = next(e for e in exchanges if e.request.method == "POST")
        target = f"https://{post.request.host}:{post.request.port}{post.request.path}"
        response = client.post(
            target, json={"model": "m", "messages": [{"role": "user", "content": "other"}]}
        )
    assert response.status_code == 502
    assert response.headers["x-cassette-miss"] == "no recorded request matches"
    body: dict[str, Any] = response.json()
    assert body["error"]["type"] == "cassette_miss"
    report = proxy.report
    assert report is not None and len(report.misses) == 1
    nearest = report.misses[0].candidates[0]
    assert nearest.url.endswith("/v1/chat/completions")
    assert [f.matcher for f in nearest.failed] == ["body"]
    assert '"content": "other"' in nearest.failed[0].difference


def test_a_proxy_that_cannot_start_says_why(tmp_path: Path) -> None:
    settings = ProxySettings("replay", tmp_path / "missing.jsonl", tmp_path / "work", start_timeout=60)
    with pytest.raises(ProxyError, match="exited with code") as caught:
        ProxyProcess(settings).__enter__()
    assert "does not exist" in "\n".join(caught.value.__notes__)


def test_the_redaction_key_is_never_on_the_command_line(tmp_path: Path) -> None:
    settings = ProxySettings("record", tmp_path / "http.jsonl", tmp_path / "work", redact_key=KEY)
    with ProxyProcess(settings) as proxy:
        assert proxy._proc is not None
        cmdline = Path(f"/proc/{proxy._proc.pid}/cmdline").read_bytes()
        key_file = tmp_path / "work" / KEY_FILE
        assert KEY.encode() not in cmdline and str(key_file).encode() in cmdline
        assert key_file.read_text() == KEY and key_file.stat().st_mode & 0o777 == 0o600
    options = sealing_options(tmp_path / "work", PrivacyOptions())
    assert options.redaction_key == bytes.fromhex(KEY) and options.known == ()


SPLIT = "sk-proj-" + "Split0secret1" * 3
HEADER = "tok-" + "Hdr7value" * 3
BODY = "ghp_" + "B0dyChunked9" * 3
CLIENT = """
import os, requests
s = requests.Session()
base = os.environ["UPSTREAM"]
r = s.post(base + "/v1/chat/completions", json={"model": "m", "stream": True, "split": os.environ["SPLIT"],
           "messages": [{"role": "user", "content": "hi"}]}, headers={"X-Api-Token": os.environ["HEADER"]},
           stream=True)
print(b"".join(r.iter_content(None)).decode())
body = ('{"model": "m", "messages": [{"role": "user", "content": "' + os.environ["BODY"] + '"}]}').encode()
def chunked():  # the request body goes out in two chunks, cut in the middle of the token
    yield body[: body.index(b"ghp_") + 9]
    yield body[body.index(b"ghp_") + 9 :]
print(s.post(base + "/v1/chat/completions", data=chunked(), headers={"content-type": "application/json"}).text)
"""


def _record_client(tmp_path: Path, keyring: Path | None) -> dict[str, bytes]:
    """`runner record -- python client.py` against the loopback HTTPS server; every member, decompressed."""
    repo = tmp_path / "repo"
    make_repo(repo, {"client.py": CLIENT})
    pack = tmp_path / "pack.tar.zst"
    with https_server(tmp_path) as server:
        env = {**os.environ, "UPSTREAM": server.base, "SPLIT": SPLIT, "HEADER": HEADER, "BODY": BODY}
        env.pop("RUNNER_KEYRING", None)
        env.update({"RUNNER_KEYRING": str(keyring)} if keyring else {})
        run = subprocess.run(
            [sys.executable, "-m", "runner", "record", "--out", str(pack), "--upstream-ca",
             str(server.ca.cert_path), "--record-loopback", "--", sys.executable, "client.py"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert SPLIT in run.stdout  # the agent got the real stream
    members = dict(raw_members(pack))
    for name, data in members.items():
        for secret in (SPLIT, HEADER, BODY):
            for piece in (secret, secret[: len(secret) // 2], secret[len(secret) // 2 :]):
                assert piece.encode() not in data, (name, piece)
    return {**members, "pack": str(pack).encode()}


def _one_placeholder(members: dict[str, bytes]) -> str:
    """The placeholder of SPLIT, the same in the cassette (the proxy's) and the agent's stdout (the
    pack builder's): one value, one placeholder in the pack."""
    tokens = {
        m.group(0) for data in members.values() for m in PLACEHOLDER_RE.finditer(data.decode("latin-1"))
    }
    (token,) = [t for t in tokens if t.startswith("REDACTED_openai-key_")]
    holders = [name for name, data in members.items() if token.encode() in data]
    assert "cassettes/http.jsonl" in holders and any(n.startswith("artifacts/") for n in holders)
    return token


def test_runner_record_seals_the_proxys_placeholders_and_leaks_no_split_secret(tmp_path: Path) -> None:
    keys = tmp_path / "acme.keys"
    ring = crypto.new_keyring("acme")
    crypto.save_keyring(ring, keys)
    members = _record_client(tmp_path, keys)
    token = _one_placeholder(members)
    assert token == Redactor(ring.redaction_key).text(SPLIT)  # the tenant key made the proxy's too
    reveal = subprocess.run(
        [sys.executable, "-m", "runner", "inspect", members["pack"].decode(), "--reveal", "--key", str(keys),
         "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert reveal.returncode == 0, reveal.stderr
    values = {s["token"]: s["value"] for s in json.loads(reveal.stdout)["secrets"]}
    assert values[token] == SPLIT
    assert HEADER in values.values() and BODY in values.values()


def test_without_a_keyring_the_proxy_and_the_pack_share_one_key(tmp_path: Path) -> None:
    _one_placeholder(_record_client(tmp_path, None))
