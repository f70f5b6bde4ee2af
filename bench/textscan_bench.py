"""The searches a session's big texts go through, side by side with the plain form of each.

- normalisers: the replay's output normalisers (`runner.replay.compare`) over a test log of `--log-mb`
  (10) MB, against the same rules as first written (each pattern by `re.sub` over the whole text, the
  `secrets` rule through the plain redactor; the reference forms `tests/replay/test_compare.py` checks
  them against)
- risks: the audit's risky-command search (`runner.privacy.audit.risks_in`) over a traces.jsonl of
  `--traces-mb` (20) MB whose prompts each hold the session's commands, against each pattern searched
  over the whole text
- request body: the recording proxy's redactor (`proxy.redact.Redactor`, no hyperscan) on a 100 KB
  chat request (one JSON line naming `max_tokens`), against the same detectors with the assignment
  detector's `reach` removed (searched along the whole line)

Best of `--rounds` (3) each. Issue 16 sets no goal here: the times and ratios are printed and written to
bench/out/textscan_bench.json.

    python bench/textscan_bench.py [--log-mb 10] [--traces-mb 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from goals import write  # noqa: E402
from redaction_bench import WORDS  # noqa: E402

from proxy.detectors import DETECTORS, EXTRA_DETECTORS  # noqa: E402
from proxy.redact import Redactor, collapse  # noqa: E402
from runner.privacy import audit  # noqa: E402
from runner.replay import compare  # noqa: E402
from tests.replay.test_compare import _REFERENCE  # noqa: E402

COMMANDS = ["pytest -q tests/", "git status", "rm -rf build/", "git push origin main", "chmod 755 run.sh"]


def best(f: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def test_log(mb: int, rnd: random.Random) -> str:
    lines, size, i = [], 0, 0
    while size < mb << 20:
        i += 1
        words = " ".join(rnd.choice(WORDS) for _ in range(8))
        lines.append(
            f"tests/test_{rnd.choice(WORDS)}.py::test_{i} PASSED [{i % 100:3d}%] {words} in 0.{i % 100:02d}s "
            f"at 2026-01-01 12:00:{i % 60:02d} pid 0x7f{i:08x} localhost:{8000 + i % 100}"
        )
        size += len(lines[-1]) + 1
    return "\n".join(lines)


def traces(mb: int, rnd: random.Random) -> str:
    lines, size, n = [], 0, 0
    while size < mb << 20:
        n += 1
        history = " ".join(f"$ {c}\\n" for c in COMMANDS) + " ".join(rnd.choice(WORDS) for _ in range(60))
        lines.append(
            json.dumps({"span_id": f"{n:016x}", "name": "llm.chat", "prompt": f"turn {n}: {history}"})
        )
        size += len(lines[-1]) + 1
    return "\n".join(lines)


def request_body(rnd: random.Random) -> str:
    messages, body = [{"role": "system", "content": "You fix failing Python tests."}], ""
    while len(body) < 100_000:
        messages.append({"role": "user", "content": " ".join(rnd.choice(WORDS) for _ in range(40))})
        body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 1024, "messages": messages})
    return body


def reference_normalise(text: str, plain: Redactor) -> str:
    text = collapse(plain.text(text))
    for pairs in _REFERENCE.values():
        for pattern, repl in pairs:
            text = re.sub(pattern, repl, text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-mb", type=int, default=10)
    parser.add_argument("--traces-mb", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rnd = random.Random(11)
    log, spans, body = test_log(args.log_mb, rnd), traces(args.traces_mb, rnd), request_body(rnd)
    plain = Redactor(b"compare", DETECTORS + EXTRA_DETECTORS)
    assert compare.normalise(log, compare.NORMALISERS) == reference_normalise(log, plain)
    wide = tuple(replace(d, reach=None) for d in DETECTORS)
    proxy, proxy_wide = Redactor(b"k" * 32), Redactor(b"k" * 32, wide)
    assert proxy.text(body) == proxy_wide.text(body)

    def risks_whole() -> list[str]:
        return [m.group(0) for _, pattern, _ in audit.RISK_PATTERNS for m in pattern.finditer(spans)]

    rows = [
        (
            f"normalisers, all, over a {len(log) / 1e6:.1f} MB test log (s)",
            best(lambda: compare.normalise(log, compare.NORMALISERS), args.rounds),
            best(lambda: reference_normalise(log, plain), args.rounds),
        ),
        (
            f"audit risk search over a {len(spans) / 1e6:.1f} MB traces.jsonl (s)",
            best(lambda: audit.risks_in(spans, "traces.jsonl"), args.rounds),
            best(risks_whole, args.rounds),
        ),
        (
            f"proxy redactor on a {len(body) / 1e3:.0f} KB request body (ms)",
            best(lambda: proxy.text(body), args.rounds) * 1e3,
            best(lambda: proxy_wide.text(body), args.rounds) * 1e3,
        ),
    ]
    print(f"{'measure':<64}{'runner':>10}{'plain form':>12}{'ratio':>9}")
    for name, ours, base in rows:
        print(f"{name:<64}{ours:>10.3f}{base:>12.3f}{ours / base:>8.2f}x")
    write(
        "textscan_bench",
        {"log_mb": args.log_mb, "traces_mb": args.traces_mb, "rounds": args.rounds},
        [],
        rows=[
            {"measure": n, "runner": round(o, 4), "plain_form": round(b, 4), "ratio": round(o / b, 3)}
            for n, o, b in rows
        ],
    )


if __name__ == "__main__":
    main()
