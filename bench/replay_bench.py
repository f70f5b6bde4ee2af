"""Replay overhead: `runner replay` of a 20-command pack vs the same commands through plain `docker exec`.

Both run in the same (warm) image, side by side in one process, best of a few rounds each:
- baseline: `docker run -d IMAGE sleep infinity`, 20 x `docker exec`, `docker rm -f` (the docker CLI);
- replay:   `runner replay PACK` (the CLI): unpack and verify, workspace from the bundle, proxy sidecar,
            workload container, the 20 commands with output comparison, report, cleanup.
Goal: replay <= 1.2 x baseline + 1.5 s of fixed start-up.

    python bench/replay_bench.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.engine import daemon as engine  # noqa: E402
from runner.engine import images  # noqa: E402
from tests.gitrepo import make_repo  # noqa: E402
from tests.packfactory import command, make_pack  # noqa: E402

COMMANDS = [["python3", "-c", f"print('step {i}', sum(range({i} * 1000)))"] for i in range(20)]


def _expected(argv: list[str]) -> bytes:
    i = int(argv[2].split("'step ")[1].split("'")[0])
    return f"step {i} {sum(range(i * 1000))}\n".encode()


def baseline(image: str) -> float:
    started = time.perf_counter()
    cid = subprocess.run(
        ["docker", "run", "-d", "--network", "none", "--init", image, "sleep", "infinity"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    try:
        for argv in COMMANDS:
            subprocess.run(["docker", "exec", "-w", "/", cid, *argv], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)
    return time.perf_counter() - started


def replay(pack: Path, runs: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "replay", str(pack), "--runs-dir", str(runs), "--json", "-"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"replay failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    client = engine.connect()
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        work = Path(tmp)
        make_repo(work / "repo", {"README": "bench\n"})
        pack = make_pack(
            work, repo=work / "repo", files={"env/pip-freeze.txt": b""},
            steps=[command(f"c{i:02d}", argv, stdout=_expected(argv)) for i, argv in enumerate(COMMANDS)],
        )  # fmt: skip
        replay(pack, work / "runs")  # warm: builds the (empty) environment image once
        from runner.pack.read import unpack
        from runner.replay import environment

        own = images.ensure(client)
        image = environment.resolve(client, unpack(pack, work / "unpacked"), base_image=own.base.tag).image
        base_times, replay_times = [], []
        for _ in range(args.rounds):
            base_times.append(baseline(image))
            replay_times.append(replay(pack, work / "runs"))
    b, r = min(base_times), min(replay_times)
    budget = 1.2 * b + 1.5
    print(f"20 commands, best of {args.rounds}:")
    print(f"  docker exec baseline  {b:6.2f} s")
    print(f"  runner replay         {r:6.2f} s   ratio {r / b:.2f}x, fixed overhead {r - b:+.2f} s")
    print(f"  goal <= 1.2 x baseline + 1.5 s = {budget:.2f} s: {'met' if r <= budget else 'MISSED'}")


if __name__ == "__main__":
    main()
