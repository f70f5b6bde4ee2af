"""Pack build and unpack throughput against `tar | zstd -3 -T0` and `zstd -dc | tar -x`, on the same tree.

Generates a deterministic tree of mixed text and log files (200 MB by default) in a temp folder, then times
each side in its own process under GNU time, so peak RSS is that process tree's alone. Prints a table and writes JSON to
bench/out/pack_bench.json. Goals: build >= 100 MB/s and within 1.2x of the zstd CLI; peak RSS < 200 MB.

    python bench/pack_bench.py [--mb 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"  # GNU time, for the peak RSS of each measured process tree
sys.path.insert(0, str(ROOT))

LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR"]
WORDS = [
    "request",
    "handler",
    "session",
    "token",
    "retry",
    "timeout",
    "connection",
    "pool",
    "worker",
    "cache",
    "miss",
    "hit",
    "user",
    "commit",
    "patch",
    "test",
    "failed",
    "passed",
    "module",
    "import",
    "error",
    "trace",
    "span",
    "model",
    "prompt",
    "response",
    "latency",
    "bytes",
    "queue",
    "lock",
]


def make_tree(root: Path, total_mb: int, seed: int = 7) -> int:
    """Write ~total_mb of logs, source-like text and JSON lines; return the byte count."""
    rng = random.Random(seed)
    pool = []
    for i in range(20_000):
        words = " ".join(rng.choices(WORDS, k=rng.randint(4, 14)))
        kind = i % 4
        if kind == 0:
            pool.append(
                f"2025-11-24T13:{i % 60:02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}Z {rng.choice(LEVELS)} [{words.split()[0]}] {words} id={rng.getrandbits(48):012x}\n"
            )
        elif kind == 1:
            pool.append(
                f"    def {words.split()[0]}_{i}(self, {words.split()[-1]}: int) -> None:  # {words}\n"
            )
        elif kind == 2:
            pool.append(
                json.dumps({"ts": 1764000000 + i, "span": f"{rng.getrandbits(64):016x}", "msg": words}) + "\n"
            )
        else:
            pool.append(
                f"tests/test_{words.split()[1]}.py::test_{i} {'PASSED' if rng.random() < 0.9 else 'FAILED'} [{i % 100:3d}%]\n"
            )
    written, target, n = 0, total_mb * 1_000_000, 0
    while written < target:
        size = min(rng.choice([4_000, 60_000, 400_000, 2_000_000]), target - written)
        lines = rng.choices(pool, k=size // 80 + 1)
        data = "".join(lines).encode()[:size]
        path = root / f"d{n % 16:02d}" / f"f{n:05d}.{'log' if n % 3 else 'txt'}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        written += len(data)
        n += 1
    return written


def _build(tree: Path, out: Path) -> None:
    from runner.pack.build import PackBuilder
    from runner.privacy.mask import PrivacyOptions
    from tests.packfactory import make_manifest

    start = time.perf_counter()
    with PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"bench")
        b.add_bytes("env/pip-freeze.txt", b"bench==1\n")
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                b.add_artifact(path, media_type="text/plain", name=str(path.relative_to(tree)))
        # The container format alone, like tar | zstd: bench/redaction_bench.py measures the privacy pass.
        b.build(make_manifest(), out, privacy=PrivacyOptions(policy=None))
    print(json.dumps({"seconds": time.perf_counter() - start}))


def _unpack(pack_path: Path, dest: Path) -> None:
    from runner.pack.read import unpack

    start = time.perf_counter()
    unpack(pack_path, dest)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def measure(argv: list[str]) -> tuple[float, float, float]:
    """Run argv in a child process; return (wall seconds, seconds the child reports for the operation
    itself without interpreter start, peak RSS in MB of the child and its children).

    The peak comes from GNU time run as the direct child: Linux carries a process's peak RSS across
    exec, so a process started straight from this (larger) one would report this one's peak as its own.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        done = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *argv], stdout=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{argv} failed with exit code {done.returncode}")
        peak_kb = int(rss.read().split()[-1])
    operation = json.loads(done.stdout)["seconds"] if done.stdout.strip() else elapsed
    return elapsed, operation, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated tree in MB")
    parser.add_argument("--_build", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_unpack", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._build:
        return _build(Path(args._build[0]), Path(args._build[1]))
    if args._unpack:
        return _unpack(Path(args._unpack[0]), Path(args._unpack[1]))
    for tool, package in (("zstd", "zstd"), ("tar", "tar"), (TIME, "time")):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed; install it (apt-get install {package}) to compare")

    console = Console()
    with tempfile.TemporaryDirectory(prefix="pack-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tree = tmp / "tree"
        tree.mkdir()
        with console.status(f"generating a {args.mb} MB tree"):
            size = make_tree(tree, args.mb)
        me = [sys.executable, __file__]
        runs = {}
        with console.status("building with runner and with tar | zstd"):
            runs["cli build"] = measure(
                ["bash", "-c", f"tar -cf - -C {tree} . | zstd -3 -T0 -q -o {tmp / 'cli.tar.zst'}"]
            )
            runs["runner build"] = measure([*me, "--_build", str(tree), str(tmp / "runner.tar.zst")])
        with console.status("unpacking with runner and with zstd -dc | tar -x"):
            (tmp / "cli-out").mkdir()
            runs["cli unpack"] = measure(
                ["bash", "-c", f"zstd -dc {tmp / 'cli.tar.zst'} | tar -x -C {tmp / 'cli-out'}"]
            )
            runs["runner unpack"] = measure(
                [*me, "--_unpack", str(tmp / "runner.tar.zst"), str(tmp / "runner-out")]
            )
        sizes = {
            "cli": (tmp / "cli.tar.zst").stat().st_size,
            "runner": (tmp / "runner.tar.zst").stat().st_size,
        }

    mbps = {name: size / 1e6 / wall for name, (wall, _, _) in runs.items()}
    table = Table(title=f"pack throughput on {size / 1e6:.0f} MB of text and logs ({os.cpu_count()} cores)")
    for col in ("operation", "wall s", "MB/s", "in-process s", "peak RSS MB", "runner / cli (wall)"):
        table.add_column(col, justify="right")
    for op in ("build", "unpack"):
        for who in ("cli", "runner"):
            wall, operation, rss = runs[f"{who} {op}"]
            ratio = f"{wall / runs[f'cli {op}'][0]:.2f}x" if who == "runner" else ""
            table.add_row(
                f"{who} {op}",
                f"{wall:.2f}",
                f"{mbps[f'{who} {op}']:.0f}",
                f"{operation:.2f}",
                f"{rss:.0f}",
                ratio,
            )
    console.print(table)
    console.print(
        f"compressed: runner {sizes['runner'] / 1e6:.1f} MB, cli {sizes['cli'] / 1e6:.1f} MB "
        f"(ratio {size / sizes['runner']:.1f}); runner build goals: >= 100 MB/s, <= 1.2x cli, < 200 MB RSS"
    )
    result = {
        "tree_bytes": size,
        "runs": {
            k: {
                "wall_seconds": round(w, 3),
                "operation_seconds": round(o, 3),
                "mb_per_s": round(mbps[k], 1),
                "peak_rss_mb": round(r, 1),
            }
            for k, (w, o, r) in runs.items()
        },
        "pack_bytes": sizes,
        "build_time_ratio": round(runs["runner build"][0] / runs["cli build"][0], 3),
        "unpack_time_ratio": round(runs["runner unpack"][0] / runs["cli unpack"][0], 3),
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pack_bench.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
