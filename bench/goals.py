"""What every bench shares: goals checked against measurements, the machine, the JSON written to bench/out/.

`Goal(name, value, limit, op, unit)` prints as `name: value (goal op limit): met|missed`, the verdict computed
from the numbers. `write(name, settings, goals, **data)` writes bench/out/<name>.json with the settings, the
machine (cores, load average before and after, how busy it was when `settle` let the bench start) and each
goal with its verdict. `settle()` waits (a minute and a half at most) until the other processes leave the
CPUs at least 90 % idle over a second: what an earlier bench leaves behind (containers stopping, a spare
proxy starting) then does not land in a throughput measurement. `cpu_now()` is the CPU seconds of this
process and its reaped children.

Importing this module compiles runner/ and proxy/ to bytecode (`compileall`, which writes even under
PYTHONDONTWRITEBYTECODE): the processes a bench starts then load the runner as an installed one does (its
installer compiles it), instead of compiling every module from source at each start.
"""

from __future__ import annotations

import compileall
import json
import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

OUT = Path(__file__).resolve().parent / "out"
LOAD_AT_START = os.getloadavg()
_SETTLED: dict[str, float] = {}
for _package in ("runner", "proxy"):
    compileall.compile_dir(OUT.parents[1] / _package, quiet=1)


@dataclass(frozen=True)
class Goal:
    name: str
    value: float
    limit: float
    op: Literal["<=", ">=", "<"]
    unit: str = ""

    @property
    def met(self) -> bool:
        if self.op == "<=":
            return self.value <= self.limit
        if self.op == "<":
            return self.value < self.limit
        return self.value >= self.limit

    def line(self) -> str:
        return (
            f"{self.name}: {self.value:.3g}{self.unit} (goal {self.op} {self.limit:g}{self.unit}): "
            f"{'met' if self.met else 'missed'}"
        )

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "verdict": "met" if self.met else "missed"}


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in LOAD_AT_START],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        **({"busy_before_measuring": _SETTLED} if _SETTLED else {}),
    }


def cpu_now() -> float:
    """CPU seconds (user + system) of this process and of its children reaped so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def settle(idle: float = 0.9, wait: float = 90.0) -> float:
    """Wait until the CPUs were at least `idle` idle over the last second (or `wait` seconds passed);
    print and return how busy they were then (a fraction)."""
    start = time.monotonic()
    while True:
        busy0, total0 = _cpu_times()
        time.sleep(1.0)
        busy1, total1 = _cpu_times()
        busy = (busy1 - busy0) / max(total1 - total0, 1)
        if busy <= 1 - idle or time.monotonic() - start >= wait:
            break
    waited = time.monotonic() - start
    _SETTLED.update(busy=round(busy, 3), waited_s=round(waited, 1))
    print(f"machine {busy:.0%} busy before measuring (waited {waited:.0f} s for it to settle)")
    return busy


def report(goals: list[Goal]) -> None:
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    for goal in goals:
        print("  " + goal.line())


def write(name: str, settings: dict[str, Any], goals: list[Goal], **data: Any) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    body = {"settings": settings, "machine": machine(), "goals": [g.to_json() for g in goals], **data}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path
