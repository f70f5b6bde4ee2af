"""Cost of the privacy pass: building the same pack with redaction (default-v1) and without, side by side.

Generates deterministic log-like text (100 MB by default: at 20 MB the fixed cost of a build, the same with
redaction or without, weighed on the throughput) with a Bearer token and an e-mail address on every 50th
line (two secrets per ~5.8 KiB), builds a pack from it both ways, prints the settings, the times,
throughputs and their ratio, and the privacy pass's own throughput (size / the extra seconds it adds).
CPU seconds are printed beside wall seconds: on a shared machine the wall clock measures the neighbours;
each side keeps its best of `--rounds` (5). CPU seconds include any child processes. Then a session's
traces apart: a traces.jsonl of `--traces-mb` (20) of spans whose prompts each hold an API key, built both
ways (JSON members are redacted value by value, so they stay valid JSON: a slower path, shown on its own,
with no goal of its own). Prints the build goal of issue 16 with its verdict and writes
bench/out/redaction_bench.json.

    python bench/redaction_bench.py [--mb 100] [--rounds 5] [--traces-mb 20]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from goals import Goal, cpu_now, report, settle, write  # noqa: E402

from runner.pack.build import PackBuilder  # noqa: E402
from runner.privacy.mask import PrivacyOptions  # noqa: E402
from tests.packfactory import make_manifest  # noqa: E402

WORDS = [
    "test",
    "passed",
    "failed",
    "collecting",
    "module",
    "import",
    "error",
    "warning",
    "session",
    "request",
    "response",
    "cache",
]


def make_text(mb: int, seed: int = 3) -> bytes:
    rnd = random.Random(seed)
    lines, size, n = [], 0, 0
    while size < mb << 20:
        n += 1
        line = f"2026-01-01T00:00:{n % 60:02d}Z INFO " + " ".join(rnd.choice(WORDS) for _ in range(12))
        if n % 50 == 0:
            line += f" Authorization: Bearer sk-proj-{rnd.getrandbits(160):040x} user=dev{n}@example.com"
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def make_traces(mb: int, seed: int = 5) -> bytes:
    """Spans as the recorder writes them (OpenTelemetry's JSON), a model call each, its prompt holding an
    API key: a session whose traces are full of secrets."""
    rnd = random.Random(seed)
    lines, size, n = [], 0, 0
    while size < mb << 20:
        n += 1
        span = {
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": f"{n:016x}", "parent_span_id": None,
            "name": "llm.chat", "kind": "CLIENT", "start_time_unix_nano": 1_764_000_000_000_000_000 + n,
            "end_time_unix_nano": 1_764_000_000_000_000_500 + n,
            "attributes": {
                "gen_ai.request.model": "gpt-4o", "gen_ai.request.seed": 7,
                "gen_ai.prompt": f"turn {n}: the tests fail with OPENAI_API_KEY=sk-proj-{rnd.getrandbits(128):032x} "
                + " ".join(rnd.choice(WORDS) for _ in range(60)),
                "gen_ai.completion": " ".join(rnd.choice(WORDS) for _ in range(30)),
            },
            "events": [], "status": {"code": "OK", "description": None},
        }  # fmt: skip
        lines.append(json.dumps(span))
        size += len(lines[-1]) + 1
    return ("\n".join(lines) + "\n").encode()


def build(
    data: bytes, folder: Path, options: PrivacyOptions, name: str, traces: bytes = b""
) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one build: `data` as log artifacts, `traces` as traces.jsonl."""
    start, cpu = time.perf_counter(), cpu_now()
    with PackBuilder(privacy=options) as b:  # as the recorder makes it: the options known from the start
        for i in range(0, len(data), 4 << 20):
            b.add_artifact(data[i : i + (4 << 20)], media_type="text/plain", name=f"log{i}")
        b.add_bytes("traces.jsonl", traces)
        b.add_bytes("env/pip-freeze.txt", b"")
        b.add_bytes("workspace/base.bundle", b"x")
        b.build(make_manifest(), folder / name)
    return time.perf_counter() - start, cpu_now() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traces-mb", type=int, default=20, help="size of the traces.jsonl built apart")
    args = parser.parse_args()
    data = make_text(args.mb)
    planted = 2 * data.count(b" Authorization: Bearer ")
    print(
        f"{len(data) / 1e6:.1f} MB of log text, {planted} secrets (one per {len(data) / planted / 1024:.1f} KiB), "
        f"policy default-v1, best of {args.rounds} builds each way, hyperscan {metadata.version('hyperscan')}"
    )
    runs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    settle()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            runs["off"].append(build(data, Path(tmp), PrivacyOptions(policy=None), "off.tar.zst"))
            runs["on"].append(build(data, Path(tmp), PrivacyOptions(), "on.tar.zst"))
    (off, off_cpu), (on, on_cpu) = min(runs["off"]), min(runs["on"])
    mb = len(data) / 1e6
    print(f"{'build':<24}{'seconds':>10}{'MB/s':>10}{'cpu s':>10}{'MB/cpu-s':>10}")
    print(f"{'redaction off':<24}{off:>10.2f}{mb / off:>10.1f}{off_cpu:>10.2f}{mb / off_cpu:>10.1f}")
    print(f"{'redaction default-v1':<24}{on:>10.2f}{mb / on:>10.1f}{on_cpu:>10.2f}{mb / on_cpu:>10.1f}")
    print(
        f"ratio on/off: {on / off:.2f}x wall, {on_cpu / off_cpu:.2f}x cpu (cpu: this process and its workers)"
    )
    print(
        f"the privacy pass alone: +{on - off:.2f} s wall ({mb / max(on - off, 1e-9):.0f} MB/s), "
        f"+{on_cpu - off_cpu:.2f} cpu s ({mb / max(on_cpu - off_cpu, 1e-9):.0f} MB/cpu-s)"
    )
    # JSON members are redacted value by value (they stay valid JSON): a session's traces, apart.
    traces = make_traces(args.traces_mb)
    json_runs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for side, options in (("off", PrivacyOptions(policy=None)), ("on", PrivacyOptions())):
                json_runs[side].append(build(b"", Path(tmp), options, f"{side}.tar.zst", traces))
    (j_off, _), (j_on, j_on_cpu) = min(json_runs["off"]), min(json_runs["on"])
    spans, j_mb = traces.count(b"\n"), len(traces) / 1e6
    print(
        f"traces.jsonl of {j_mb:.1f} MB ({spans} spans, a secret in each prompt): build {j_on:.2f} s with "
        f"default-v1 ({j_mb / j_on:.1f} MB/s, {j_on_cpu:.2f} cpu s), {j_off:.2f} s without"
    )
    # Issue 16 sets the goal on the whole build (bench/pack_bench.py); the privacy pass alone is shown here.
    goal_list = [Goal("build with default-v1, MB/s (wall)", mb / on, 150, ">=")]
    report(goal_list)
    write(
        "redaction_bench",
        {
            "redaction_policy": "default-v1",
            "mb": args.mb,
            "rounds": args.rounds,
            "secret_every_lines": 50,
            "secrets": planted,
            "redaction_scan": f"hyperscan {metadata.version('hyperscan')}",
        },
        goal_list,
        off={"wall_s": off, "cpu_s": off_cpu},
        on={"wall_s": on, "cpu_s": on_cpu},
        ratio_wall=on / off,
        ratio_cpu=on_cpu / off_cpu,
        traces={"mb": j_mb, "spans": spans, "on_wall_s": j_on, "on_cpu_s": j_on_cpu, "off_wall_s": j_off},
    )


if __name__ == "__main__":
    main()
