"""The addon in the proxy sidecar image, network `none`, serving a workload container that joins it.

This is the replay topology: the workload's only way out is the proxy on 127.0.0.1:8080 of the shared
network namespace, and the proxy itself has no route anywhere. The current `proxy/` folder is mounted
over /opt/proxy so the test exercises this checkout, loaded by path as in the image.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from proxy.cassette import CassetteWriter, Chunk, Exchange, RecordedRequest, RecordedResponse
from proxy.ready import READY_PATTERN
from proxy.report import read_report
from runner.cassettes.process import ProxySettings, mitmdump_args
from runner.cassettes.tls import make_ca
from runner.engine import images
from tests.helpers.containers import isolated, output

pytestmark = pytest.mark.docker
PROXY_DIR = Path(__file__).parents[2] / "proxy"
PROGRAM = ("python3", "/opt/proxy/main.py")  # the proxy program in its image (images/proxy/Dockerfile)
SSE = (Chunk(0.0, b"data: one\n\n"), Chunk(0.05, b"data: two\n\n"), Chunk(0.1, b"data: [DONE]\n\n"))


def test_sidecar_replays_with_no_network(own_images: images.ImageSet, tmp_path: Path) -> None:
    image = own_images.proxy.tag  # built when missing, never skipped
    make_ca(tmp_path / "confdir")
    with CassetteWriter(tmp_path / "http.jsonl") as writer:
        writer.write(
            Exchange(
                RecordedRequest("GET", "https", "api.example.com", 443, "/hello", (), (), b""),
                RecordedResponse(200, "OK", (("content-type", "text/plain"),), b"hello from the cassette\n"),
            )
        )
        writer.write(
            Exchange(
                RecordedRequest(
                    "POST", "https", "api.example.com", 443, "/v1/chat", (), (), b'{"stream": true}'
                ),
                RecordedResponse(200, "OK", (("content-type", "text/event-stream"),), b"", SSE),
            )
        )
    tmp_path.chmod(0o777)
    settings = ProxySettings("replay", tmp_path / "http.jsonl", tmp_path)
    args = mitmdump_args(
        settings,
        confdir=Path("/data/confdir"),
        cassette=Path("/data/http.jsonl"),
        report=Path("/data/report.json"),
        listen_port=8080,
    )
    sidecar = (
        isolated(image, [*PROGRAM, *args])
        .with_env("PYTHONUNBUFFERED", "1")  # the readiness line must reach the log at once
        .with_volume_mapping(PROXY_DIR, "/opt/proxy", "ro")
        .with_volume_mapping(tmp_path, "/data", "rw")
        .waiting_for(LogMessageWaitStrategy(READY_PATTERN).with_startup_timeout(60))
    )
    curl = "curl -sS --fail-with-body https://api.example.com"
    script = f"{curl}/hello && {curl}/v1/chat -d '{{\"stream\": true}}' && {curl}/not-recorded; echo rc=$?"
    with sidecar:
        workload = (
            isolated(image, ["sh", "-c", script], network_mode=f"container:{sidecar.get_container_id()}")
            .with_env("HTTPS_PROXY", "http://127.0.0.1:8080")
            .with_env("SSL_CERT_FILE", "/data/confdir/mitmproxy-ca-cert.pem")
            .with_volume_mapping(tmp_path, "/data", "ro")
        )
        with workload:
            out = output(workload)
        sidecar.get_wrapped_container().stop(timeout=15)  # SIGTERM: the addon writes its report
        logs = b"".join(sidecar.get_logs()).decode(errors="replace")
    assert out.startswith("hello from the cassette\ndata: one\n\ndata: two\n\ndata: [DONE]\n\n"), logs
    assert '"type": "cassette_miss"' in out and out.rstrip().endswith("rc=22")
    report = read_report(tmp_path / "report.json")
    assert (report.served, len(report.misses), report.refused_upstream) == (2, 1, ())
