"""Golden-set replay: 10 packs over 2 environments, `runner replay --jobs 2` vs `--jobs 1`, side by side.

Each pack has three commands that take about a second each (`time.sleep(1)` and a line of output), over
one of two small recorded environments (5 packs each). The bench:
1. removes its two environment images when present (nothing else), so the first replay starts cold;
2. replays the set once with --jobs 2 and counts the environment images it built (goal: 2, one each);
3. replays it warm with --jobs 1 and --jobs 2, alternating, `--rounds` times each, and takes the best of
   each; counts the images the warm runs built (goal: 0);
4. prints the wall-time ratio jobs 1 / jobs 2 beside the goal (>= 1.7x on 2 cores) and its verdict, and the
   disk each environment adds on top of the shared base (image size minus base size, from image inspect).
Everything goes to bench/out/golden.json with the settings and the load average (the machine may be shared).

    python bench/golden_bench.py [--rounds 2] [--packs 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker.errors  # noqa: E402

from runner.engine import daemon as engine  # noqa: E402
from runner.engine import images  # noqa: E402
from runner.pack.read import unpack  # noqa: E402
from runner.replay.environment import planned_tag  # noqa: E402
from tests.gitrepo import make_repo  # noqa: E402
from tests.packfactory import command, make_pack  # noqa: E402

GOAL_RATIO = 1.7
ENVIRONMENTS = {  # two small recorded environments, pure-Python wheels
    "env-a": b"iniconfig==2.0.0\npluggy==1.5.0\n",
    "env-b": b"iniconfig==2.0.0\npackaging==24.1\n",
}
STEPS = 3


def _argv(pack: int, step: int) -> list[str]:
    return ["python3", "-c", f"import time; time.sleep(1); print('pack {pack} step {step} done')"]


def make_packs(work: Path, count: int) -> tuple[Path, dict[str, str]]:
    """`count` packs in work/golden, alternating between the environments; returns the folder and the
    environment tags (computed the way replay computes them)."""
    make_repo(work / "repo", {"README": "golden bench\n"})
    folder = work / "golden"
    folder.mkdir()
    names = list(ENVIRONMENTS)
    for i in range(count):
        env = names[i % len(names)]
        steps = [
            command(f"c{k}", _argv(i, k), stdout=f"pack {i} step {k} done\n".encode()) for k in range(STEPS)
        ]
        pack = make_pack(
            work, name=f"golden-{i:02d}.tar.zst", repo=work / "repo",
            files={"env/pip-freeze.txt": ENVIRONMENTS[env]}, steps=steps,
        )  # fmt: skip
        pack.rename(folder / pack.name)
    client = engine.connect()
    base_id = client.images.get(images.ensure(client).base.tag).id
    tags = {}
    (work / "probe").mkdir()
    for env, freeze in ENVIRONMENTS.items():
        probe = make_pack(work / "probe", name=f"{env}.tar.zst", files={"env/pip-freeze.txt": freeze})
        tags[env] = str(planned_tag(unpack(probe, work / "probe" / env), base_id))
    return folder, tags


def replay(folder: Path, jobs: int, runs: Path) -> tuple[float, int]:
    """Wall seconds of `runner replay FOLDER --jobs N` and the environment images it built."""
    report = runs / f"report-{time.monotonic_ns()}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "replay", str(folder), "--jobs", str(jobs), "--runs-dir", str(runs),
         "--json", str(report)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"replay failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    packs = json.loads(report.read_text())["packs"]
    return elapsed, sum(1 for p in packs if str(p.get("image", "")).endswith("(built)"))


def disk(client: Any, base_tag: str, tags: dict[str, str]) -> dict[str, int]:
    """Bytes each environment image adds on top of the base (image size minus base size)."""
    base = int(client.images.get(base_tag).attrs["Size"])
    return {env: int(client.images.get(tag).attrs["Size"]) - base for env, tag in tags.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--packs", type=int, default=10)
    args = parser.parse_args()
    load_before = os.getloadavg()
    client = engine.connect()
    with tempfile.TemporaryDirectory(prefix="golden-bench-") as tmp:
        work = Path(tmp)
        folder, tags = make_packs(work, args.packs)
        for tag in tags.values():  # cold start: only the bench's own two environment images
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag)
        cold_s, cold_builds = replay(folder, 2, work / "runs")
        times: dict[int, list[float]] = {1: [], 2: []}
        warm_builds = 0
        for _ in range(args.rounds):
            for jobs in (1, 2):
                seconds, built = replay(folder, jobs, work / "runs")
                times[jobs].append(seconds)
                warm_builds += built
        added = disk(client, images.plan()[0].tag, tags)
    load_after = os.getloadavg()
    one, two = min(times[1]), min(times[2])
    ratio = one / two
    verdict = "met" if ratio >= GOAL_RATIO else "missed"
    cores = os.cpu_count() or 0
    print(
        f"{args.packs} packs x {STEPS} commands of ~1 s over {len(tags)} environments, best of {args.rounds}:"
    )
    print(f"  runner replay --jobs 1   {one:6.2f} s")
    print(f"  runner replay --jobs 2   {two:6.2f} s   ratio {ratio:.2f}x   goal >= {GOAL_RATIO}x on 2 cores: "
          f"{verdict} ({cores} cores here)")  # fmt: skip
    print(
        f"  first (cold) run --jobs 2: {cold_s:.2f} s, {cold_builds} environment image(s) built (goal {len(tags)})"
    )
    print(f"  warm runs: {warm_builds} image(s) built (goal 0): {'met' if warm_builds == 0 else 'missed'}")
    for env, extra in added.items():
        print(f"  disk added by {env} ({tags[env]}): {extra / 1e6:.1f} MB on top of the base")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    result = {
        "settings": {
            "packs": args.packs,
            "environments": len(tags),
            "commands_per_pack": STEPS,
            "command": "python3 -c 'import time; time.sleep(1); print(...)'",
            "rounds": args.rounds,
            "cores": cores,
        },
        "seconds": {
            "jobs_1": [round(t, 3) for t in times[1]],
            "jobs_2": [round(t, 3) for t in times[2]],
            "cold_jobs_2": round(cold_s, 3),
        },
        "ratio_jobs1_over_jobs2": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "verdict": verdict,
        "builds": {"cold_run": cold_builds, "cold_goal": len(tags), "warm_runs": warm_builds, "warm_goal": 0},
        "disk_added_bytes": added,
        "environment_tags": tags,
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in load_after],
        },
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "golden.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
