"""Build the example packs from their readable sources: packs/src/<name>/session.yaml -> packs/<name>.tar.zst.

A source folder holds a `session.yaml` (agent, model defaults, environment, ordered steps), the repository
the session started from, the patches, the expected outputs of each command and, optionally, an HTTP
cassette. The repository is committed with fixed names and dates, so the base commit (and the pack) are
the same on every machine.

    python packs/build.py                 # every folder under packs/src
    python packs/build.py demo-fix        # one of them
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from runner import gitcmd  # noqa: E402
from runner.pack import manifest as mf  # noqa: E402
from runner.pack.build import PackBuilder  # noqa: E402
from runner.pack.traces import Span, span_line  # noqa: E402

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
    "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    "GIT_AUTHOR_DATE": "2026-11-20T09:00:00Z", "GIT_COMMITTER_DATE": "2026-11-20T09:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin",
}  # fmt: skip
TEXT_RULES = ("durations", "timestamps", "tmp_paths", "addresses", "ports")


def _git(repo: Path, *args: str) -> str:
    return gitcmd.output(repo, *args, env=_GIT_ENV)


def _bundle(source: Path, work: Path) -> tuple[Path, str]:
    repo = work / "repo"
    shutil.copytree(source, repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Base of the demo session")
    bundle = work / "base.bundle"
    _git(repo, "bundle", "create", "-q", str(bundle), "main")
    return bundle, _git(repo, "rev-parse", "HEAD").strip()


def _span(name: str, index: int, span_type: str, parent: str | None, trace_id: str) -> Span:
    span_id = hashlib.sha256(f"{trace_id}/{name}".encode()).hexdigest()[:16]
    start = 1_764_000_000_000_000_000 + index * 1_000_000_000
    return Span(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name,
        start_time_unix_nano=start, end_time_unix_nano=start + 900_000_000,
        attributes={"runner.span.type": span_type},
    )  # fmt: skip


def build(src: Path, out: Path) -> Path:
    spec: dict[str, Any] = yaml.safe_load((src / "session.yaml").read_text(encoding="utf-8"))
    trace_id = hashlib.sha256(spec["session"]["id"].encode()).hexdigest()[:32]
    root = _span("session", 0, "session", None, trace_id)
    spans = [root]
    with tempfile.TemporaryDirectory(prefix="pack-src-") as tmp, PackBuilder() as builder:
        bundle, commit = _bundle(src / spec["repo"], Path(tmp))
        builder.add_file(mf.BUNDLE_PATH, bundle)
        packages = "".join(f"{p}\n" for p in spec["packages"])
        builder.add_bytes("env/pip-freeze.txt", packages.encode())
        steps: list[mf.Step] = []
        for index, step in enumerate(spec["steps"], start=1):
            if "patch" in step:
                span = _span(step["id"], index, "patch", root.span_id, trace_id)
                member = f"patches/{len(steps) + 1:04d}.diff"
                builder.add_file(member, src / step["patch"])
                steps.append(
                    mf.PatchStep(id=step["id"], patch=member, span_id=span.span_id, reason=step.get("reason"))
                )
            else:
                span = _span(step["id"], index, "tool", root.span_id, trace_id)

                def artifact(path: str, name: str, span_id: str = span.span_id) -> str:
                    return builder.add_artifact(
                        src / path, media_type="text/plain", name=name, span_id=span_id
                    )

                outputs = step.get("outputs", {})
                steps.append(
                    mf.CommandStep(
                        id=step["id"],
                        argv=tuple(step["run"]),
                        timeout=float(step.get("timeout", 120)),
                        env=dict(step.get("env", {})),
                        expect=mf.Expectation(
                            exit_code=step.get("exit_code", 0),
                            stdout=artifact(step["stdout"], f"{step['id']}.stdout"),
                            outputs={rel: artifact(path, rel) for rel, path in outputs.items()},
                        ),
                        compare=mf.Comparison(
                            stdout=TEXT_RULES,
                            outputs={rel: "junit" if rel.endswith(".xml") else "text" for rel in outputs},
                        ),
                        span_id=span.span_id,
                    )
                )
            spans.append(span)
        builder.add_bytes("traces.jsonl", "".join(span_line(s) + "\n" for s in spans).encode())
        cassettes: tuple[mf.CassetteIndex, ...] = ()
        if "cassette" in spec:
            cassette = src / spec["cassette"]
            builder.add_file("cassettes/http.jsonl", cassette)
            count = sum(1 for line in cassette.read_text(encoding="utf-8").splitlines() if line.strip())
            cassettes = (mf.CassetteIndex(path="cassettes/http.jsonl", format_version=1, count=count),)
        manifest = mf.Manifest(
            session=mf.Session(**spec["session"]),
            agent=mf.Agent(**spec["agent"]),
            git=mf.GitInputs(base_commit=commit, branch="main"),
            environment=mf.Environment(
                kind="snapshot",
                snapshot=mf.EnvSnapshot(python=spec["python"], packages="env/pip-freeze.txt", os=spec["os"]),
                runtimes={"python": spec["python"]},
            ),
            llm=mf.LlmDefaults(**spec["llm"]),
            steps=tuple(steps),
            cassettes=cassettes,
        )
        target = out / f"{src.name}.tar.zst"
        builder.build(manifest, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="source folders under packs/src (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT, help="where the packs go (default: packs/)")
    args = parser.parse_args()
    names = args.names or sorted(p.name for p in (ROOT / "src").iterdir() if (p / "session.yaml").is_file())
    for name in names:
        print(f"built {build(ROOT / 'src' / name, args.out)}")


if __name__ == "__main__":
    main()
