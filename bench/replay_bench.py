"""Replay overhead: `runner replay` of a pack vs the same commands through plain `docker exec` (the API).

Both run in the same (warm) image, side by side in one process, rounds interleaved, best of each:
- baseline: through the docker SDK, a container `sleep infinity` started, N x exec_run, removed;
- replay:   `runner replay PACK` (the CLI): unpack and verify, workspace from the bundle, proxy sidecar,
            workload container, the N commands with output comparison, report, cleanup; with its
            defaults, so each replay claims the spare sidecar and workload the previous one left
            (docs/sandbox.md) and leaves a pair for the next; the first, warming, replay starts its own.
            The claimed pair is removed by a detached process the CLI starts as it ends (the user has
            the result without waiting for the engine to stop the containers); it is not timed.
Each side runs with 1 and with 20 commands: the slope is the cost per command, the intercept the fixed
part. Goals: fixed overhead (replay intercept - baseline intercept) <= 0.6 s; per-command cost <= 1.2x
the baseline's. Writes bench/out/replay_bench.json (replay_bench_local.json with `--backend local`: the
same packs replayed without Docker, in a virtualenv and a network namespace, against the same baseline).
For information (no goal), the CLI's own start: `runner --help` and `runner replay --help` wall time, the
median of --cli-runs runs.

    python bench/replay_bench.py [--rounds 3] [--backend local] [--cli-runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from goals import Goal, report, write  # noqa: E402

from runner.engine import daemon as engine  # noqa: E402
from runner.engine import images  # noqa: E402
from tests.gitrepo import make_repo  # noqa: E402
from tests.packfactory import command, make_pack  # noqa: E402

COMMANDS = [["python3", "-c", f"print('step {i}', sum(range({i} * 1000)))"] for i in range(20)]


def _expected(argv: list[str]) -> bytes:
    i = int(argv[2].split("'step ")[1].split("'")[0])
    return f"step {i} {sum(range(i * 1000))}\n".encode()


def baseline(client: docker.DockerClient, image: str, commands: list[list[str]]) -> float:
    started = time.perf_counter()
    container = client.containers.run(
        image, ["sleep", "infinity"], detach=True, network_mode="none", init=True
    )
    try:
        for argv in commands:
            code, out = container.exec_run(argv, workdir="/")
            if code != 0 or out != _expected(argv):
                raise SystemExit(f"baseline: {argv} gave {code} {out!r}")
    finally:
        container.remove(force=True)
    return time.perf_counter() - started


def replay(pack: Path, runs: Path, backend: str = "docker") -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "replay", str(pack), "--runs-dir", str(runs), "--json", "-",
         "--backend", backend],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"replay failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def cli_start(runs: int) -> dict[str, float]:
    """Median wall time of `runner --help` and `runner replay --help`: the interpreter, the CLI's imports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    medians = {}
    for args in (["--help"], ["replay", "--help"]):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "runner", *args], capture_output=True, env=env, check=True)
            times.append(time.perf_counter() - started)
        medians[" ".join(["runner", *args])] = statistics.median(times)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=("docker", "local"), default="docker")
    parser.add_argument("--cli-runs", type=int, default=10)
    args = parser.parse_args()
    client = engine.connect()
    counts = (1, len(COMMANDS))
    base: dict[int, list[float]] = {n: [] for n in counts}
    runs: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        work = Path(tmp)
        make_repo(work / "repo", {"README": "bench\n"})
        packs = {}
        for n in counts:
            (work / f"p{n}").mkdir()
            steps = [
                command(f"c{i:02d}", argv, stdout=_expected(argv)) for i, argv in enumerate(COMMANDS[:n])
            ]
            packs[n] = make_pack(
                work / f"p{n}", repo=work / "repo", files={"env/pip-freeze.txt": b""}, steps=steps
            )
        replay(packs[1], work / "runs", args.backend)  # warm: builds the (empty) environment image once
        from runner.pack.read import unpack
        from runner.replay import environment

        own = images.ensure(client)
        image = environment.resolve(
            client, unpack(packs[1], work / "unpacked"), base_image=own.base.tag
        ).image
        for _ in range(args.rounds):
            for n in counts:
                base[n].append(baseline(client, image, COMMANDS[:n]))
                runs[n].append(replay(packs[n], work / "runs", args.backend))
    b = {n: min(v) for n, v in base.items()}
    r = {n: min(v) for n, v in runs.items()}
    span = counts[1] - counts[0]
    b_slope, r_slope = (b[counts[1]] - b[1]) / span, (r[counts[1]] - r[1]) / span
    b_fixed, r_fixed = b[1] - b_slope, r[1] - r_slope
    print(f"best of {args.rounds} interleaved rounds, warm images:")
    for n in counts:
        print(
            f"  {n:2d} commands: docker exec (API) {b[n]:6.2f} s   runner replay ({args.backend}) {r[n]:6.2f} s"
        )
    print(f"  per command: baseline {b_slope * 1e3:.0f} ms, replay {r_slope * 1e3:.0f} ms")
    print(f"  fixed part:  baseline {b_fixed:.2f} s, replay {r_fixed:.2f} s")
    goal_list = [
        Goal("replay fixed overhead over docker exec", r_fixed - b_fixed, 0.6, "<=", " s"),
        Goal("replay per-command cost / docker exec", r_slope / b_slope, 1.2, "<=", "x"),
    ]
    report(goal_list)
    started = cli_start(args.cli_runs)
    for what, seconds in started.items():
        print(f"  {what}: {seconds:.2f} s (median of {args.cli_runs}; information, no goal)")
    write(
        "replay_bench" if args.backend == "docker" else f"replay_bench_{args.backend}",
        {"commands": list(counts), "rounds": args.rounds, "image": image, "redaction_policy": "none (test pack)",
         "backend": args.backend, "load_average": os.getloadavg()[0],
         "spare_containers": os.environ.get("RUNNER_SPARE_PROXY", "1") not in ("0", "off", "no", "false")},
        goal_list,
        baseline_s=b, replay_s=r, per_command_s={"baseline": b_slope, "replay": r_slope},
        fixed_s={"baseline": b_fixed, "replay": r_fixed}, cli_start_median_s=started,
    )  # fmt: skip


if __name__ == "__main__":
    main()
