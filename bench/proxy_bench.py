"""Replay latency of the cassette proxy next to mitmproxy's own server playback, by cassette size.

For cassettes of 10, 1,000 and 10,000 LLM-like exchanges (POST JSON to /v1/chat/completions; every odd
one asks `"stream": true` and gets an SSE stream of 20 events, recorded as chunks), both proxies run side
by side as local processes with the same CA (ours as the product runs it, proxy/main.py through
ProxyProcess; server playback as users run it, `mitmdump --server-replay`), one keep-alive httpx client
each; every request goes to both, the order alternating, reading every response to its end and checking
its bytes. 400 requests per size by default, half JSON and half SSE, so each p95 is the 10th slowest of
200: a cassette smaller than that is replayed in rounds, each round with fresh proxies (each recording
answers once).
SSE, apples to apples: both serve the same bytes of the same 21 events at once. Neither waits between
events: server_replay cannot stream an answer it makes up, and ours replays a stream chunk by chunk only
when asked to reproduce its timing (`cassette_pace` above 0; the bench runs the default, 0).
Prints p50/p95 per request for JSON and SSE, the ratios ours / server_replay with a 95% bootstrap
interval (resampling the requests, each timed on both), and each goal with its verdict on the measured
ratio (an interval holding 1.0 means no difference resolved at that noise); writes
bench/out/proxy_bench.json.
Goal: p50 and p95 <= 1.0x mitmproxy's server playback at every size, SSE included.

    python bench/proxy_bench.py [--sizes 10,1000,10000] [--requests 400]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from mitmproxy import http, io
from mitmproxy.test import tflow
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from goals import Goal, report, write

from proxy.cassette import CassetteWriter, Chunk, Exchange, RecordedRequest, RecordedResponse
from runner.cassettes.process import ProxyProcess, ProxySettings
from runner.cassettes.tls import CertificateAuthority, make_ca

HOST, PORT = "api.example.com", 443
HTTP2 = os.environ.get("BENCH_HTTP2") == "1"
console = Console(stderr=True)


def streams(i: int) -> bool:
    return i % 2 == 1


def sse_events(i: int) -> list[bytes]:
    return [
        b"data: "
        + json.dumps(
            {"id": f"chatcmpl-{i}", "choices": [{"delta": {"content": f"part {k} dolor "}}]}
        ).encode()
        + b"\n\n"
        for k in range(20)
    ] + [b"data: [DONE]\n\n"]


def expected_body(i: int) -> bytes:
    return b"".join(sse_events(i)) if streams(i) else response_body(i)


def request_body(i: int) -> bytes:
    history = [
        {"role": "user" if j % 2 == 0 else "assistant", "content": f"turn {j} " + "lorem ipsum " * 20}
        for j in range(4)
    ]
    return json.dumps(
        {
            "model": "gpt-4o-mini",
            "temperature": 0,
            "messages": [*history, {"role": "user", "content": f"question {i}"}],
            "stream": streams(i),
        }
    ).encode()


def response_body(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"answer {i} " + "dolor sit amet " * 30},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 60},
        }
    ).encode()


def write_cassette(path: Path, size: int) -> None:
    with CassetteWriter(path) as writer:
        for i in range(size):
            writer.write(
                Exchange(
                    RecordedRequest(
                        "POST",
                        "https",
                        HOST,
                        PORT,
                        "/v1/chat/completions",
                        (),
                        (("content-type", "application/json"),),
                        request_body(i),
                    ),
                    RecordedResponse(200, "OK", (("content-type", "application/json"),), response_body(i))
                    if not streams(i)
                    else RecordedResponse(
                        200,
                        "OK",
                        (("content-type", "text/event-stream"),),
                        expected_body(i),
                        tuple(Chunk(0.0, e) for e in sse_events(i)),
                    ),
                )
            )


def write_flows(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        writer = io.FlowWriter(handle)
        for i in range(size):
            req = http.Request.make(
                "POST",
                f"https://{HOST}/v1/chat/completions",
                request_body(i),
                {"content-type": "application/json"},
            )
            kind = "text/event-stream" if streams(i) else "application/json"
            resp = http.Response.make(200, expected_body(i), {"content-type": kind})
            writer.add(tflow.tflow(req=req, resp=resp))


@contextmanager
def server_replay(flows: Path, ca: CertificateAuthority, workdir: Path) -> Iterator[str]:
    argv = [
        sys.executable,
        "-c",
        "from mitmproxy.tools.main import mitmdump; mitmdump()",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        "0",
        "--server-replay",
        str(flows),
        "--set",
        f"confdir={ca.confdir}",
        "--set",
        "server_replay_extra=404",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "upstream_cert=false",
        "--set",
        "flow_detail=0",
        "--set",
        "termlog_verbosity=info",
    ]
    log = (workdir / "server_replay.log").open("wb")
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    port: list[int] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            found = re.search(rb"proxy listening at .*?:(\d+)", line)
            if found and not port:
                port.append(int(found.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not ready.wait(120) or not port:
            raise RuntimeError(f"server_replay did not start; see {workdir / 'server_replay.log'}")
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def client(proxy_url: str, ca: Path) -> Iterator[httpx.Client]:
    # httpx 0.26 renamed `proxies` to `proxy`; accept both.
    key = "proxy" if "proxy" in inspect.signature(httpx.Client).parameters else "proxies"
    with httpx.Client(**{key: proxy_url}, verify=str(ca), trust_env=False, http2=HTTP2) as made:  # type: ignore[arg-type]
        # CONNECT and TLS once, outside the measurement; waits for a proxy still loading its cassette.
        made.get(f"https://{HOST}/warm-up", timeout=120)
        yield made


def timed(session: httpx.Client, i: int) -> float:
    start = time.perf_counter()
    response = session.post(
        f"https://{HOST}/v1/chat/completions",
        content=request_body(i),
        headers={"content-type": "application/json"},
    )
    elapsed = time.perf_counter() - start
    if response.status_code != 200 or response.content != expected_body(i):
        raise RuntimeError(f"request {i} was not replayed ({response.status_code})")
    return elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def interval(
    ours: list[float], theirs: list[float], stat: Callable[[list[float]], float], rounds: int = 2000
) -> tuple[float, float]:
    """95% bootstrap interval of stat(ours) / stat(theirs), resampling the requests (each sent to both)."""
    rnd = random.Random(1)
    n = len(ours)
    ratios = []
    for _ in range(rounds):
        picks = rnd.choices(range(n), k=n)
        ratios.append(stat([ours[j] for j in picks]) / stat([theirs[j] for j in picks]))
    ratios.sort()
    return ratios[int(0.025 * rounds)], ratios[int(0.975 * rounds) - 1]


def run_rounds(
    size: int, count: int, ours: Callable[[], Iterator[str]], theirs: Callable[[], Iterator[str]], ca: Path
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Both proxies run side by side; each request goes to one then the other, the order alternating, so
    a neighbour's burst of load falls on both alike. Small cassettes are replayed in several rounds (each
    recording answers once), each round with fresh proxies, until `count` requests were timed."""
    per_round = min(size, count)
    rounds = math.ceil(count / per_round)
    step = max(1, size // per_round)
    # JSON and SSE alternate: an index of the wrong kind moves one up.
    indices = [k * step + (streams(k * step) != streams(k)) for k in range(per_round)]
    a: list[tuple[int, float]] = []
    b: list[tuple[int, float]] = []
    for _ in range(rounds):
        with (
            contextmanager(ours)() as ours_url,
            contextmanager(theirs)() as theirs_url,
            client(ours_url, ca) as ours_client,
            client(theirs_url, ca) as theirs_client,
        ):
            for k, i in enumerate(indices):
                if k % 4 < 2:  # ours first for two requests (one JSON, one SSE), then theirs first
                    a.append((i, timed(ours_client, i)))
                    b.append((i, timed(theirs_client, i)))
                else:
                    b.append((i, timed(theirs_client, i)))
                    a.append((i, timed(ours_client, i)))
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        work = Path(tmp)
        ca = make_ca(work / "confdir")
        for size in sizes:
            console.log(f"cassette of {size} exchanges")
            cassette, flows = work / f"http-{size}.jsonl", work / f"flows-{size}.mitm"
            write_cassette(cassette, size)
            write_flows(flows, size)

            def ours(cassette: Path = cassette, size: int = size) -> Iterator[str]:
                p = ProxyProcess(
                    ProxySettings("replay", cassette, work / f"ours-{size}", ca=ca, start_timeout=120)
                )
                try:
                    p.start(wait=False)  # starts while server playback does; its port queues the warm-up
                    yield p.url
                finally:
                    p.stop()

            def theirs(flows: Path = flows, size: int = size) -> Iterator[str]:
                with server_replay(flows, ca, work) as url:
                    yield url

            a, b = run_rounds(size, args.requests, ours, theirs, ca.cert_path)
            for kind in ("json", "sse"):
                ours_s = [t for i, t in a if streams(i) == (kind == "sse")]
                theirs_s = [t for i, t in b if streams(i) == (kind == "sse")]
                results.append(
                    {
                        "exchanges": size,
                        "kind": kind,
                        "requests": len(ours_s),
                        "cassette_p50_ms": statistics.median(ours_s) * 1e3,
                        "cassette_p95_ms": percentile(ours_s, 0.95) * 1e3,
                        "server_replay_p50_ms": statistics.median(theirs_s) * 1e3,
                        "server_replay_p95_ms": percentile(theirs_s, 0.95) * 1e3,
                        "ratio_p50_ci95": interval(ours_s, theirs_s, statistics.median),
                        "ratio_p95_ci95": interval(ours_s, theirs_s, lambda v: percentile(v, 0.95)),
                    }
                )
    table = Table(title="replay latency per request (keep-alive, HTTPS through the proxy)")
    for column in (
        "exchanges",
        "kind",
        "requests",
        "ours p50",
        "ours p95",
        "server_replay p50",
        "server_replay p95",
        "ratio p50 (95% interval)",
        "ratio p95 (95% interval)",
    ):
        table.add_column(column, justify="right")
    goal_list = []
    for r in results:
        r["ratio_p50"] = r["cassette_p50_ms"] / r["server_replay_p50_ms"]
        r["ratio_p95"] = r["cassette_p95_ms"] / r["server_replay_p95_ms"]
        table.add_row(
            str(r["exchanges"]),
            r["kind"],
            str(r["requests"]),
            f"{r['cassette_p50_ms']:.2f} ms",
            f"{r['cassette_p95_ms']:.2f} ms",
            f"{r['server_replay_p50_ms']:.2f} ms",
            f"{r['server_replay_p95_ms']:.2f} ms",
            f"{r['ratio_p50']:.2f}x ({r['ratio_p50_ci95'][0]:.2f}-{r['ratio_p50_ci95'][1]:.2f})",
            f"{r['ratio_p95']:.2f}x ({r['ratio_p95_ci95'][0]:.2f}-{r['ratio_p95_ci95'][1]:.2f})",
        )
        for q in ("p50", "p95"):
            name = f"{r['kind']} {q} / server playback, {r['exchanges']} exchanges"
            goal_list.append(Goal(name, r[f"ratio_{q}"], 1.0, "<=", "x"))
    Console(width=140).print(table)
    report(goal_list)
    settings = {"sizes": sizes, "requests_per_size": args.requests, "http2": HTTP2, "sse_events": 21}
    out = write("proxy_bench", settings, goal_list, results=results)
    console.log(f"wrote {out}")


if __name__ == "__main__":
    main()
