"""The replay pipeline, top to bottom: one pack in, one `PackOutcome` out.

    unpack (safe) -> environment (image) -> workspace (bundle + baseline)
    -> sidecar (cassettes, no egress) -> workload container -> for each step: patch | command + compare
    -> outcome (reproduced | diverged at step N with its cause | error)

Every stage is a module with one verb; this file only wires them and decides the verdict. Containers,
temporary folders and the workspace are removed on success, divergence, error and Ctrl-C, unless the caller
asks to keep them. An infrastructure failure is reported as `error`, never as a divergence.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import docker

from proxy.report import Report
from runner.engine.containers import started
from runner.engine.host import BuildTrust
from runner.errors import PackError, RunnerError, UsageError, WorkspaceError
from runner.pack import read as pack_stage
from runner.pack.manifest import AgentCommand, CommandStep, Manifest, PatchStep
from runner.privacy.crypto import Keyring
from runner.progress import Progress, Silent
from runner.replay import environment, execute, sidecar
from runner.replay import workspace as workspace_stage
from runner.replay.compare import Difference, compare_exit_code, compare_file, compare_text
from runner.replay.outcome import CassetteUsage, Cause, PackOutcome, StepOutcome, Verdict

__all__ = ["ReplayOptions", "StepEvent", "replay", "replay_all", "select_packs"]

WORKSPACE = PurePosixPath("/workspace")


@dataclass(frozen=True)
class ReplayOptions:
    base_image: str
    proxy_image: str
    runs_dir: Path = Path("runs")
    keep: bool = False
    keep_going: bool = False
    allow_image_mismatch: bool = False
    trust: BuildTrust | None = None
    timeout_scale: float = 1.0
    rerun_agent: bool = False  # run the recorded agent command instead of applying the patch it produced
    keyring: Keyring | None = None  # opens packs whose payloads are encrypted (runner.privacy)


@dataclass(frozen=True)
class StepEvent:
    """Progress of one pack, for a live view: `index` of `total`, and what is happening."""

    pack: str
    index: int
    total: int
    text: str


@dataclass
class _Run:
    pack: str
    run_dir: Path
    image: str | None = None
    steps: list[StepOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inexact_patches: list[str] = field(default_factory=list)


def _run_dir(runs_dir: Path, pack: Path) -> Path:
    stem = pack.name.removesuffix(".tar.zst") or "pack"
    run = runs_dir / re.sub(r"[^A-Za-z0-9._-]", "_", stem) / time.strftime("%Y%m%dT%H%M%S")
    candidate, n = run, 1
    while candidate.exists():
        n += 1
        candidate = run.with_name(f"{run.name}-{n}")
    candidate.mkdir(parents=True)
    return candidate


def replay(
    client: docker.DockerClient,
    pack_path: Path,
    options: ReplayOptions,
    *,
    progress: Progress | None = None,
    on_step: Callable[[StepEvent], None] | None = None,
) -> PackOutcome:
    """Replay one pack. Bad packs and broken infrastructure come back as `error` outcomes, not exceptions."""
    progress = progress or Silent()
    notify = on_step or (lambda event: None)
    started_at = time.monotonic()
    run = _Run(pack=pack_path.name, run_dir=_run_dir(options.runs_dir, pack_path))

    def ended(verdict: Verdict, **kw: Any) -> PackOutcome:
        return PackOutcome(
            pack=run.pack, verdict=verdict, steps=tuple(run.steps), warnings=tuple(run.warnings),
            run_dir=str(run.run_dir), image=run.image, duration_s=time.monotonic() - started_at, **kw,
        )  # fmt: skip

    try:
        with _scratch(options.keep) as scratch:
            return _replay(client, pack_path, options, run, scratch, progress, notify, ended)
    except (PackError, WorkspaceError) as e:
        return ended(Verdict.ERROR, error=str(e), error_code=2)
    except RunnerError as e:
        return ended(Verdict.ERROR, error=str(e), error_code=e.exit_code)
    except docker.errors.DockerException as e:
        return ended(Verdict.ERROR, error=f"Docker engine error: {e}", error_code=3)


@contextmanager
def _scratch(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="runner-replay-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _replay(
    client: docker.DockerClient,
    pack_path: Path,
    options: ReplayOptions,
    run: _Run,
    scratch: Path,
    progress: Progress,
    notify: Callable[[StepEvent], None],
    ended: Callable[..., PackOutcome],
) -> PackOutcome:
    notify(StepEvent(run.pack, 0, 0, "unpacking and verifying"))
    unpacked = pack_stage.unpack(pack_path, scratch / "pack", keyring=options.keyring)
    m = unpacked.manifest
    total = len(m.steps)
    if options.rerun_agent and (m.agent.command is None or m.agent.patch is None):
        raise PackError(
            f"{pack_path.name}: the pack records no agent command; replay it without --rerun-agent "
            "(packs made by `runner record -- CMD` have one)"
        )

    notify(StepEvent(run.pack, 0, total, "resolving the environment image"))
    env = environment.resolve(
        client, unpacked, base_image=options.base_image, trust=options.trust,
        allow_mismatch=options.allow_image_mismatch, progress=progress,
    )  # fmt: skip
    run.warnings.extend(env.warnings)
    run.image = f"{env.image} ({env.how})"

    notify(StepEvent(run.pack, 0, total, "restoring the workspace"))
    baseline = unpacked.path / m.git.baseline_patch if m.git.baseline_patch else None
    ws = workspace_stage.restore(
        unpacked.path / m.git.bundle, m.git.base_commit, scratch / "workspace", baseline
    )
    cassette = unpacked.path / m.cassettes[0].path if m.cassettes else None

    with ExitStack() as stack:
        notify(StepEvent(run.pack, 0, total, "starting the proxy sidecar"))
        # Every container of this run carries its folder, so a run's containers can be found (and counted).
        run_label = {"runner.run": str(run.run_dir.resolve())}
        proxy = stack.enter_context(
            sidecar.serve_cassettes(
                client, options.proxy_image, cassette, scratch / "proxy", labels=run_label
            )
        )
        workload = stack.enter_context(
            started(
                client,
                env.image,
                name_prefix="runner-workload",
                command=["sleep", "infinity"],
                init=True,
                network_mode=proxy.network_mode,
                environment=proxy.workload_env(),
                working_dir=str(WORKSPACE),
                volumes={
                    str(ws.path.resolve()): {"bind": str(WORKSPACE), "mode": "rw"},
                    **proxy.workload_volumes(),
                },
                extra_labels={**run_label, "runner.role": "workload", "runner.pack": run.pack},
            )
        )
        if options.keep:
            stack.pop_all()  # the caller prints how to get a shell; nothing is removed
            run.warnings.append(
                f"kept: `docker exec -it {workload.name} bash` (workspace {ws.path}); "
                f"remove with `docker rm -f {workload.name} {proxy.container.name}`"
            )
        run.warnings.extend(_environment_drift(workload, m))
        for index, step in enumerate(m.steps, start=1):
            notify(StepEvent(run.pack, index, total, _describe(step)))
            if isinstance(step, PatchStep) and options.rerun_agent and step.id == m.agent.patch:
                assert m.agent.command is not None
                outcome = _rerun_agent(workload, ws, unpacked.path / step.patch, step, m.agent.command, run)
            elif isinstance(step, PatchStep):
                outcome = _apply(ws, unpacked.path / step.patch, step, run)
            else:
                outcome = _command(workload, ws.path, unpacked, step, run, options)
            run.steps.append(outcome)
            if not outcome.ok and not options.keep_going:
                break
        # With --keep the proxy stays up for the kept workload, so its report is not written yet.
        usage = CassetteUsage() if options.keep else _usage(proxy.finish())
    _save_proxy_report(scratch / "proxy", run.run_dir)
    first = next((s for s in run.steps if not s.ok), None)
    if first is None:
        return ended(Verdict.REPRODUCED, cassettes=usage)
    return ended(Verdict.DIVERGED, cassettes=usage, cause=_likely_cause(first, run, usage))


def _describe(step: PatchStep | CommandStep) -> str:
    if isinstance(step, PatchStep):
        return f"{step.id}: apply {step.patch}"
    return f"{step.id}: {' '.join(step.argv)[:80]}"


def _apply(ws: workspace_stage.Workspace, patch: Path, step: PatchStep, run: _Run) -> StepOutcome:
    started_at = time.monotonic()
    try:
        result = workspace_stage.apply_patch(ws, patch)
    except WorkspaceError as e:
        return StepOutcome(
            step.id, "patch", False, f"{step.patch} does not apply",
            (Difference(step.patch, str(e)),), time.monotonic() - started_at,
        )  # fmt: skip
    if not result.exact:
        run.inexact_patches.append(step.id)
        run.warnings.append(
            f"{step.patch} applied only with {result.tier}: the tree differs from the recording"
        )
    return StepOutcome(step.id, "patch", True, f"applied ({result.tier})", (), time.monotonic() - started_at)


def _workdir(cwd: str, field: str) -> str:
    """The container path of a recorded working directory; one that leaves the workspace is a bad pack."""
    rel = PurePosixPath(cwd)
    if rel.is_absolute() or ".." in rel.parts:
        raise PackError(f"{field} {cwd!r} leaves the workspace")
    return str(WORKSPACE / rel)


# Clients refuse to start without an API key; the proxy answers from the cassette whatever key is sent.
_PLACEHOLDER_KEYS = {
    "OPENAI_API_KEY": "sk-replay-placeholder",
    "ANTHROPIC_API_KEY": "sk-ant-replay-placeholder",
}


def _rerun_agent(
    workload: Any,
    ws: workspace_stage.Workspace,
    patch: Path,
    step: PatchStep,
    command: AgentCommand,
    run: _Run,
) -> StepOutcome:
    """Run the recorded agent again (answered by the cassettes) and compare the tree it leaves with the
    tree the recorded patch makes."""
    workdir = _workdir(command.cwd, "agent.command.cwd")
    before = workspace_stage.tree(ws)
    recorded = workspace_stage.tree_with_patch(ws, before, patch)
    result = execute.run_command(
        workload, list(command.argv), workdir=workdir,
        env={**_PLACEHOLDER_KEYS, **command.env}, timeout=command.timeout or 3600,
        log_dir=run.run_dir / "steps", name=f"{step.id}.agent",
    )  # fmt: skip
    replayed = workspace_stage.tree(ws)
    diff = workspace_stage.diff_trees(ws, recorded, replayed)
    if result.timed_out:
        return StepOutcome(step.id, "patch", False, "the re-run agent was killed at its timeout",
                           (Difference("timeout", "killed after its timeout"),), result.duration_s)  # fmt: skip
    if diff:
        changed = sum(1 for line in diff.splitlines() if line.startswith("diff --git"))
        summary = f"the re-run agent's patch differs from the recorded one in {changed} file(s)"
        return StepOutcome(
            step.id, "patch", False, summary, (Difference("patch", summary, diff),), result.duration_s
        )
    return StepOutcome(
        step.id,
        "patch",
        True,
        f"re-run agent reproduced the patch (exit {result.exit_code})",
        (),
        result.duration_s,
    )


def _command(
    workload: Any,
    workspace: Path,
    unpacked: pack_stage.UnpackedPack,
    step: CommandStep,
    run: _Run,
    options: ReplayOptions,
) -> StepOutcome:
    result = execute.run_command(
        workload, list(step.argv), workdir=_workdir(step.cwd, f"steps {step.id}: cwd"), env=dict(step.env),
        timeout=step.timeout * options.timeout_scale, log_dir=run.run_dir / "steps", name=step.id,
    )  # fmt: skip
    diffs: list[Difference] = []
    if result.timed_out:
        diffs.append(Difference("timeout", f"killed after its timeout of {step.timeout:g}s"))
    else:
        assert result.exit_code is not None
        if (d := compare_exit_code(step.expect.exit_code, result.exit_code)) is not None:
            diffs.append(d)
        for name, digest, rules, path in (
            ("stdout", step.expect.stdout, step.compare.stdout, result.stdout),
            ("stderr", step.expect.stderr, step.compare.stderr, result.stderr),
        ):
            if digest is not None:
                expected = unpacked.artifact(digest).read_bytes()
                if (d := compare_text(name, expected, path.read_bytes(), rules)) is not None:
                    diffs.append(d)
        for rel, digest in step.expect.outputs.items():
            rule = step.compare.outputs.get(rel, "exact")
            actual = execute.read_output(workspace, step.cwd, rel)
            if actual is not None:
                _copy_output(run.run_dir / "outputs" / step.id / rel, actual)
            expected = unpacked.artifact(digest).read_bytes()
            if (d := compare_file(rel, rule, expected, actual, step.compare.stdout)) is not None:
                diffs.append(d)
    code = "timeout" if result.timed_out else f"exit {result.exit_code}"
    summary = diffs[0].summary if diffs else f"{code}, outputs match"
    return StepOutcome(
        step.id, "command", not diffs, summary, tuple(diffs), result.duration_s, str(run.run_dir / "steps")
    )


def _copy_output(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


_PROBE = (
    "import json, platform, pathlib; f = pathlib.Path('/opt/agent-env/.runner-failed');"
    "print(json.dumps({'python': platform.python_version(),"
    " 'failed': f.read_text().split() if f.exists() else []}))"
)


def _environment_drift(workload: Any, manifest: Manifest) -> list[str]:
    """What the image cannot reproduce exactly: interpreter version, packages that did not install."""
    snap = manifest.environment.snapshot
    if snap is None:
        return []
    result = workload.exec_run(["python3", "-c", _PROBE])
    if result.exit_code != 0:
        return ["python3 is not available in the replay image; recorded Python commands will fail"]
    probe = json.loads(result.output.decode("utf-8", "replace").strip().splitlines()[-1])
    warnings = [f"package {req} did not install in the replay image" for req in probe["failed"]]
    if probe["python"] != snap.python:
        warnings.insert(0, f"Python {snap.python} was recorded, the replay image has {probe['python']}")
    return warnings


def _save_proxy_report(proxy_dir: Path, run_dir: Path) -> None:
    if (proxy_dir / "report.json").is_file():
        shutil.copyfile(proxy_dir / "report.json", run_dir / "proxy-report.json")


def _usage(report: Report) -> CassetteUsage:
    misses = tuple(f"{m.method} {m.url}: {m.reason}" for m in report.misses)
    return CassetteUsage(served=report.served, misses=misses, unused=len(report.unused))


_VOLATILE = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")


def _likely_cause(first: StepOutcome, run: _Run, usage: CassetteUsage) -> Cause:
    if any(d.subject == "timeout" for d in first.differences):
        return Cause.TIMEOUT
    if usage.misses:
        return Cause.CASSETTE_MISS
    if first.kind == "patch":
        return Cause.PATCH
    if run.inexact_patches:
        return Cause.PATCH
    if _only_volatile(first.differences):
        return Cause.NONDETERMINISTIC
    if run.warnings:
        return Cause.ENVIRONMENT
    return Cause.BEHAVIOUR


def _only_volatile(diffs: tuple[Difference, ...]) -> bool:
    """True when every changed line differs only in numbers or hex ids: likely nondeterminism."""
    text_diffs = [d for d in diffs if d.diff]
    if not text_diffs or len(text_diffs) != len(diffs):
        return False
    for d in text_diffs:
        lines = d.diff.splitlines()
        removed = [
            _VOLATILE.sub("#", ln[1:]) for ln in lines if ln.startswith("-") and not ln.startswith("---")
        ]
        added = [
            _VOLATILE.sub("#", ln[1:]) for ln in lines if ln.startswith("+") and not ln.startswith("+++")
        ]
        if removed != added:
            return False
    return True


def select_packs(paths: list[Path], shard: str | None = None) -> list[Path]:
    """Packs named on the command line (folders contribute their *.tar.zst), optionally one shard `I/N`."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob("*.tar.zst")))
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such pack or folder")
    if not found:
        raise UsageError("no packs to replay: name .tar.zst files or folders holding them")
    if shard is None:
        return found
    match = re.fullmatch(r"(\d+)/(\d+)", shard)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UsageError(f"--shard {shard!r}: expected I/N with 1 <= I <= N, e.g. --shard 2/4")
    index, count = int(match.group(1)), int(match.group(2))
    return [p for i, p in enumerate(sorted(found)) if i % count == index - 1]


def replay_all(
    client: docker.DockerClient,
    packs: list[Path],
    options: ReplayOptions,
    *,
    jobs: int = 1,
    progress: Progress | None = None,
    on_step: Callable[[StepEvent], None] | None = None,
) -> list[PackOutcome]:
    """Replay packs, `jobs` at a time; outcomes come back in the order of `packs`."""
    if jobs <= 1 or len(packs) <= 1:
        return [replay(client, p, options, progress=progress, on_step=on_step) for p in packs]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="replay") as pool:
        futures = [pool.submit(replay, client, p, options, progress=progress, on_step=on_step) for p in packs]
        return [f.result() for f in futures]
