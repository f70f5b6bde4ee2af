"""Costs of time-travel debugging, side by side with the baseline each one adds to.

- span: a recorded span (SQLite file, written at start and end) vs an empty `with` block
- context: entering and leaving DeterministicExecutionContext (scans every imported module) vs a bare call
- checkpoint: save + load of a 10,000-entry state as typed JSON vs pickle.dumps + pickle.loads

Run from the repository root: PYTHONPATH=. python bench/bench_debugging.py
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
        bare_s = per_call(contextlib.nullcontext, 1000)

        agent = Agent()
        trace = provider.trace_store.get_trace(root.trace_id)
        manager = CheckpointManager(Path(tmp, "ckpt"))
        checkpoint = manager.create_checkpoint(agent, trace, root.span_id, capture_git=False)
        enter_s = per_call(lambda: DeterministicExecutionContext(checkpoint).__enter__().__exit__(), 20)
        call_s = per_call(lambda: None, 20)

        def typed() -> None:
            manager.load_checkpoint(manager.save_checkpoint(checkpoint, "b.ckpt"))

        def pickled() -> None:
            Path(tmp, "b.pkl").write_bytes(pickle.dumps(checkpoint.agent_state))
            pickle.loads(Path(tmp, "b.pkl").read_bytes())

        typed_s, pickle_s = per_call(typed, 5), per_call(pickled, 5)
        provider.trace_store.close()

    print(f"{'measure':<44}{'runner':>12}{'baseline':>12}{'ratio':>9}")
    rows = [
        ("span recorded in SQLite vs empty with (µs)", span_s * 1e6, bare_s * 1e6),
        (f"deterministic context, {len(sys.modules)} modules (ms)", enter_s * 1e3, call_s * 1e3),
        ("checkpoint 10k entries, JSON vs pickle (ms)", typed_s * 1e3, pickle_s * 1e3),
    ]
    for name, ours, base in rows:
        print(f"{name:<44}{ours:>12.2f}{base:>12.4f}{ours / base:>8.0f}x")


if __name__ == "__main__":
    main()
