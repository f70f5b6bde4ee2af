"""Pack size against the repository's history: a one-line change recorded in a repository with a long one.

Generates a repository with `git fast-import` (400 commits by default, each rewriting its 20 files of
16 KB of code-like lines: a `.git` of about 50 MB), records a session with the SDK (one line of one file changed,
one command run, the default redaction policy, no proxy) once with the default history (`base`: the base
tree alone) and once with `history="full"`, and prints each pack's size beside the yardstick of issue 16:
the zstd -3 size of the base tree (`git archive` of the base commit) plus that of the session's own data
(every member of the pack but the git bundle, the manifest included). Checks that the default pack's bundle
holds the base commit's tree exactly (what replay restores), else exits non-zero. Goal: the default pack
<= 1.2x the yardstick. Writes bench/out/history_bench.json.

    python bench/history_bench.py [--commits 400] [--files 20] [--kb 16]
"""

from __future__ import annotations

import argparse
import io
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from goals import Goal, report, write  # noqa: E402

from runner.pack.model import BUNDLE_PATH  # noqa: E402
from runner.pack.read import extract  # noqa: E402
from runner.recorder import record  # noqa: E402

LEVEL = 3
WORDS = ["cache", "retry", "session", "handler", "parse", "commit", "patch", "worker", "queue", "token_count"]


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()


def make_repo(path: Path, commits: int, files: int, kb: int, seed: int = 16) -> None:
    """A repository whose every commit rewrites every file (fast-import writes it in one pass)."""
    rng = random.Random(seed)
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    stream = io.BytesIO()
    for c in range(commits):
        message = f"change {c}\n".encode()
        stream.write(b"commit refs/heads/main\n")
        stream.write(f"committer Bench <bench@localhost> {1_700_000_000 + 60 * c} +0000\n".encode())
        stream.write(b"data %d\n%s\n" % (len(message), message))
        for f in range(files):
            lines = [
                f"    {rng.choice(WORDS)}_{n} = {rng.choice(WORDS)}({rng.randbytes(12).hex()!r}, {n})  # {c}"
                for n in range(kb * 1024 // 64)
            ]
            body = ("\n".join(lines) + "\n").encode()
            stream.write(b"M 100644 inline src/file%02d.txt\ndata %d\n%s\n" % (f, len(body), body))
    git(path, "fast-import", "--quiet", stdin=stream.getvalue())
    git(path, "reset", "-q", "--hard", "main")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def zstd_size(data: bytes) -> int:
    return len(zstandard.ZstdCompressor(level=LEVEL).compress(data))


def session_data_size(pack: Path, tmp: Path) -> int:
    """zstd -3 size of a tar of every member of `pack` but the git bundle."""
    folder = tmp / f"{pack.stem}-members"
    extract(pack, folder)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(folder.rglob("*")):
            name = p.relative_to(folder).as_posix()
            if p.is_file() and name != BUNDLE_PATH:
                tar.add(p, arcname=name)
    return zstd_size(buf.getvalue())


def record_session(repo: Path, out: Path, history: str) -> None:
    with record(out=out, repo=repo, agent="bench", http=False, history=history) as session:
        target = repo / "src" / "file00.txt"
        lines = target.read_text().splitlines(keepends=True)
        lines[len(lines) // 2] = "the one line this session changes\n"
        target.write_text("".join(lines))
        session.run_tool(["git", "diff", "--stat"], cwd=repo)


def bundled_tree(pack: Path, tmp: Path) -> str:
    """The tree of the commit the default pack's bundle carries (what replay checks out)."""
    folder = tmp / "restore"
    extract(pack, folder / "pack")
    clone = folder / "clone"
    git(tmp, "init", "-q", "--bare", str(clone))
    git(clone, "fetch", "-q", str(folder / "pack" / BUNDLE_PATH), "refs/heads/base:refs/heads/base")
    return git(clone, "rev-parse", "base^{tree}").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=400, help="commits in the generated history")
    parser.add_argument("--files", type=int, default=20, help="files, each rewritten by every commit")
    parser.add_argument("--kb", type=int, default=16, help="size of each file in KB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="history-bench-") as tmp_name:
        tmp = Path(tmp_name)
        repo = tmp / "repo"
        print(f"generating {args.commits} commits of {args.files} files of {args.kb} KB with git fast-import")
        make_repo(repo, args.commits, args.files, args.kb)
        base_tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
        git_bytes = folder_bytes(repo / ".git")
        tree_zstd = zstd_size(subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=repo,
                                             capture_output=True, check=True).stdout)  # fmt: skip
        packs, seconds = {}, {}
        for history in ("base", "full"):
            out = tmp / f"{history}.tar.zst"
            started = time.perf_counter()
            record_session(repo, out, history)
            seconds[history] = time.perf_counter() - started
            git(repo, "checkout", "-q", "--", ".")  # the next session starts from the same base
            packs[history] = out
        own = session_data_size(packs["base"], tmp)
        yardstick = tree_zstd + own
        sizes = {history: pack.stat().st_size for history, pack in packs.items()}
        restored = bundled_tree(packs["base"], tmp)
    if restored != base_tree:
        raise SystemExit(f"the default pack's bundle holds tree {restored}, not the base tree {base_tree}")
    mb, w = 1e6, 50
    print(f"{'repository .git':<{w}}{git_bytes / mb:>8.1f} MB  ({args.commits} commits)")
    print(f"{'base tree, zstd -3':<{w}}{tree_zstd / mb:>8.2f} MB")
    print(f"{'session data (members but the bundle), zstd -3':<{w}}{own / mb:>8.2f} MB")
    print(f"{'yardstick (their sum)':<{w}}{yardstick / mb:>8.2f} MB")
    for history, label in (("base", "pack, default (--history base)"), ("full", "pack, --history full")):
        print(
            f"{label:<{w}}{sizes[history] / mb:>8.2f} MB  {sizes[history] / yardstick:7.2f}x"
            f"  recorded in {seconds[history]:.1f} s (the bundle's secret scan included)"
        )
    print("the default pack's bundle holds the base commit's tree: yes")
    goal_list = [
        Goal("default pack / (base tree + session data, zstd -3)", sizes["base"] / yardstick, 1.2, "<=", "x")
    ]
    report(goal_list)
    write(
        "history_bench",
        {"commits": args.commits, "files": args.files, "file_kb": args.kb, "zstd_level": LEVEL,
         "redaction_policy": "default-v1", "proxy": False},
        goal_list,
        git_bytes=git_bytes, base_tree_zstd_bytes=tree_zstd, session_data_zstd_bytes=own,
        yardstick_bytes=yardstick, pack_bytes=sizes, record_seconds=seconds,
    )  # fmt: skip


if __name__ == "__main__":
    main()
