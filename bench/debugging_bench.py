"""Costs of time-travel debugging, side by side with what one would write by hand instead.

- span: a recorded span (SQLite file, written at start and end) vs one JSON line appended and flushed
- context: entering and leaving DeterministicExecutionContext (scans every imported module) vs
  unittest.mock.patch of time.time, time.monotonic, random.random and uuid.uuid4 by hand
- checkpoint: save + load of a 10,000-entry state as typed JSON vs pickle to a file and back, and vs a
  plain json.dump to a file and back (same state)

Issue 16 sets no goal here: the ratios are printed and written to bench/out/debugging_bench.json.

    python bench/debugging_bench.py
"""

from __future__ import annotations

import json
import pickle
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from goals import write

from runner.debugging import CheckpointManager, DeterministicExecutionContext
from runner.observability import TracerProvider


def per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


class Agent:
    def __init__(self) -> None:
        self.memory = [{"query": f"q{i}", "result": f"r{i}" * 8, "tags": ("a", "b")} for i in range(10_000)]
        self.total_cost = 12.5


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        provider = TracerProvider(db_path=Path(tmp, "traces.db"))
        tracer = provider.get_tracer("bench")

        def one_span() -> None:
            with tracer.span("step", span_type="tool") as span:
                span.set_output({"ok": True})

        with tracer.span("root") as root:
            span_s = per_call(one_span, 1000)
        with open(Path(tmp, "spans.jsonl"), "a") as log:

            def one_line() -> None:
                start = time.time()
                line = {
                    "name": "step",
                    "type": "tool",
                    "start": start,
                    "end": time.time(),
                    "output": {"ok": True},
                }
                log.write(json.dumps(line) + "\n")
                log.flush()

            line_s = per_call(one_line, 1000)

        agent = Agent()
        trace = provider.trace_store.get_trace(root.trace_id)
        manager = CheckpointManager(Path(tmp, "ckpt"))
        checkpoint = manager.create_checkpoint(agent, trace, root.span_id, capture_git=False)
        enter_s = per_call(lambda: DeterministicExecutionContext(checkpoint).__enter__().__exit__(), 20)

        def by_hand() -> None:
            with (
                mock.patch("time.time", return_value=0.0),
                mock.patch("time.monotonic", return_value=0.0),
                mock.patch("random.random", random.Random(0).random),
                mock.patch("uuid.uuid4", lambda: uuid.UUID(int=0)),
            ):
                pass

        patch_s = per_call(by_hand, 20)

        def typed() -> None:
            manager.load_checkpoint(manager.save_checkpoint(checkpoint, "b.ckpt"))

        def pickled() -> None:
            Path(tmp, "b.pkl").write_bytes(pickle.dumps(checkpoint.agent_state))
            pickle.loads(Path(tmp, "b.pkl").read_bytes())

        def dumped() -> None:
            Path(tmp, "b.json").write_text(json.dumps(checkpoint.agent_state, default=vars))
            json.loads(Path(tmp, "b.json").read_text())

        typed_s, pickle_s, json_s = per_call(typed, 5), per_call(pickled, 5), per_call(dumped, 5)
        provider.trace_store.close()

    rows = [
        ("span in SQLite vs a JSON line appended (µs)", span_s * 1e6, line_s * 1e6),
        (
            f"deterministic context, {len(sys.modules)} modules vs mock.patch x4 (ms)",
            enter_s * 1e3,
            patch_s * 1e3,
        ),
        ("checkpoint 10k entries, typed JSON vs pickle (ms)", typed_s * 1e3, pickle_s * 1e3),
        ("checkpoint 10k entries, typed JSON vs json.dump (ms)", typed_s * 1e3, json_s * 1e3),
    ]
    print(f"{'measure':<72}{'runner':>10}{'by hand':>10}{'ratio':>9}")
    for name, ours, base in rows:
        print(f"{name:<72}{ours:>10.2f}{base:>10.2f}{ours / base:>8.1f}x")
    write(
        "debugging_bench",
        {"spans": 1000, "context_repetitions": 20, "checkpoint_entries": 10_000, "checkpoint_repetitions": 5},
        [],
        rows=[
            {"measure": n, "runner": round(o, 4), "by_hand": round(b, 4), "ratio": round(o / b, 3)}
            for n, o, b in rows
        ],
    )


if __name__ == "__main__":
    main()
