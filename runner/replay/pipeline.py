"""The replay pipeline, top to bottom: one pack in, one `PackOutcome` out.

    unpack (safe) -> environment (image) -> workspace (bundle + baseline)
    -> sidecar (cassettes, no egress) -> workload container -> steps (patch | command, each compared)
    -> verdict (reproduced | diverged at step N with its likely cause | error)

Every stage is a module with one verb that takes typed values and returns typed values; `replay` reads as the
data flow, and `_verdict` is the one place a verdict is decided. Both containers run in the sandbox
`runner.engine.sandbox` describes (non-root, no capabilities, read-only, limited); the outcome says which. Containers, temporary folders and the
workspace are removed on success, divergence, error and Ctrl-C, unless the caller asks to keep them. An
infrastructure failure is reported as `error`, never as a divergence.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from proxy.report import Miss, Report
from runner.engine import containers
from runner.engine import sandbox as sandbox_engine
from runner.engine.host import BuildTrust
from runner.errors import ExitCode, PackError, RunnerError, UsageError
from runner.pack import read as pack_stage
from runner.pack.manifest import Manifest
from runner.privacy.crypto import Keyring
from runner.progress import Progress, Silent
from runner.replay import environment, sidecar
from runner.replay import workspace as workspace_stage
from runner.replay.compare import DEFAULT_AGENT_PRIVATE
from runner.replay.outcome import CassetteUsage, PackOutcome, Verdict, likely_cause
from runner.replay.steps import WORKSPACE, StepRules, StepsResult, run_steps

__all__ = ["ReplayOptions", "StepEvent", "replay", "replay_all", "select_packs"]


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
    rerun_agent: bool = False  # run the recorded agent instead of applying the patch it produced
    keyring: Keyring | None = None  # opens packs whose payloads are encrypted (runner.privacy)
    limits: sandbox_engine.Limits = field(default_factory=sandbox_engine.Limits)
    ignore_agent_files: tuple[str, ...] = DEFAULT_AGENT_PRIVATE  # with rerun_agent: globs not compared


@dataclass(frozen=True)
class StepEvent:
    """Progress of one pack, for a live view: `index` of `total`, and what is happening."""

    pack: str
    index: int
    total: int
    text: str


@dataclass(frozen=True)
class _Known:
    """What the stages have established so far: enough to report an error at any point of the run."""

    pack: str
    run_dir: Path
    started_at: float
    image: str | None = None  # "<ref> (<provenance>)"
    sandbox: str | None = None  # what the containers ran under, in words
    warnings: tuple[str, ...] = ()
    steps: StepsResult = field(default_factory=StepsResult)


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
    pack = pack_path.name
    notify = on_step or (lambda event: None)
    known = _Known(pack, _run_dir(options.runs_dir, pack_path), time.monotonic())
    try:
        with _scratch(options.keep) as scratch:
            notify(StepEvent(pack, 0, 0, "unpacking and verifying"))
            unpacked = _unpack(pack_path, scratch, options)
            total = len(unpacked.manifest.steps)

            notify(StepEvent(pack, 0, total, "resolving the environment image"))
            env = environment.resolve(
                client, unpacked, base_image=options.base_image, trust=options.trust,
                allow_mismatch=options.allow_image_mismatch, progress=progress,
            )  # fmt: skip
            known = replace(known, image=f"{env.image} ({env.how})", warnings=env.warnings)

            notify(StepEvent(pack, 0, total, "restoring the workspace"))
            ws = _restore(unpacked, scratch / "workspace")

            with ExitStack() as stack:
                notify(StepEvent(pack, 0, total, "starting the proxy sidecar"))
                # Every container of this run carries its folder, so a run's containers can be found.
                labels = {"runner.run": str(known.run_dir.resolve())}
                cassette = _cassette(unpacked)
                user = sandbox_engine.sandbox_user()
                workload_options = sandbox_engine.workload_options(client, options.limits, user)
                known = replace(known, sandbox=sandbox_engine.describe(options.limits, user))
                proxy = stack.enter_context(
                    sidecar.serve_cassettes(
                        client, options.proxy_image, cassette, scratch / "proxy", labels=labels, user=user
                    )
                )
                workload = stack.enter_context(
                    _workload(client, env.image, proxy, ws, {**labels, "runner.pack": pack}, workload_options)
                )
                if options.keep:  # the caller prints how to get a shell; nothing is removed
                    containers.keep(workload)
                    containers.keep(proxy.container)
                    known = replace(known, warnings=(*known.warnings, _kept(workload, proxy, ws)))
                drift = _environment_drift(workload, unpacked.manifest)
                known = replace(known, warnings=(*known.warnings, *drift))

                rules = StepRules(
                    options.timeout_scale,
                    options.keep_going,
                    options.rerun_agent,
                    options.limits,
                    user,
                    options.ignore_agent_files,
                )
                steps = run_steps(
                    workload, ws, unpacked, known.run_dir, rules,
                    lambda index, text: notify(StepEvent(pack, index, total, text)),
                )  # fmt: skip
                known = replace(known, steps=steps)
                if options.keep:  # the kept workspace is the sandbox user's, for a shell in the container
                    sandbox_engine.hand_over(ws.path, user)
                if steps.failure is not None:
                    raise steps.failure
                # With --keep the proxy stays up for the kept workload, so its report is not written yet.
                usage = CassetteUsage() if options.keep else _usage(proxy.finish())
            _save_proxy_report(scratch / "proxy", known.run_dir)
            return _verdict(known, usage)
    except (RunnerError, docker.errors.DockerException) as e:
        return _verdict(known, error=e)


def _verdict(
    known: _Known, usage: CassetteUsage | None = None, *, error: Exception | None = None
) -> PackOutcome:
    """The one place a pack's verdict is decided, from what the stages returned."""
    outcome = PackOutcome(
        pack=known.pack, verdict=Verdict.REPRODUCED, steps=known.steps.steps,
        warnings=(*known.warnings, *known.steps.warnings), cassettes=usage or CassetteUsage(),
        run_dir=str(known.run_dir), image=known.image, duration_s=time.monotonic() - known.started_at,
        sandbox=known.sandbox,
    )  # fmt: skip
    if isinstance(error, RunnerError):
        return replace(outcome, verdict=Verdict.ERROR, error=str(error), error_code=error.exit_code)
    if error is not None:  # the docker SDK's own errors: the engine, not the pack
        message = f"Docker engine error: {error}"
        return replace(outcome, verdict=Verdict.ERROR, error=message, error_code=ExitCode.ENVIRONMENT)
    first = known.steps.first_divergence
    if first is None:
        return outcome
    cause = likely_cause(
        first, outcome.cassettes, inexact_patches=bool(known.steps.inexact_patches), warnings=outcome.warnings
    )
    return replace(outcome, verdict=Verdict.DIVERGED, cause=cause)


@contextmanager
def _scratch(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="runner-replay-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _unpack(pack_path: Path, scratch: Path, options: ReplayOptions) -> pack_stage.UnpackedPack:
    unpacked = pack_stage.unpack(pack_path, scratch / "pack", keyring=options.keyring)
    agent = unpacked.manifest.agent
    if options.rerun_agent and (agent.command is None or agent.patch is None):
        raise PackError(
            f"{pack_path.name}: the pack records no agent command; replay it without --rerun-agent "
            "(packs made by `runner record -- CMD` have one)"
        )
    return unpacked


def _restore(unpacked: pack_stage.UnpackedPack, dest: Path) -> workspace_stage.Workspace:
    git = unpacked.manifest.git
    baseline = unpacked.path / git.baseline_patch if git.baseline_patch else None
    return workspace_stage.restore(unpacked.path / git.bundle, git.checkout, dest, baseline)


def _cassette(unpacked: pack_stage.UnpackedPack) -> Path | None:
    cassettes = unpacked.manifest.cassettes
    return unpacked.path / cassettes[0].path if cassettes else None


def _workload(
    client: docker.DockerClient,
    image: str,
    proxy: sidecar.Sidecar,
    ws: workspace_stage.Workspace,
    labels: dict[str, str],
    hardening: dict[str, Any],
) -> AbstractContextManager[Container]:
    """The container the steps run in: idle until they exec into it, in the sidecar's network namespace,
    under the sandbox's user, privileges and limits (`hardening`)."""
    hardening = dict(hardening)
    return containers.started(
        client,
        image,
        name_prefix="runner-workload",
        command=["sleep", "infinity"],
        init=True,
        network_mode=proxy.network_mode,
        environment={**hardening.pop("environment", {}), **proxy.workload_env()},
        working_dir=str(WORKSPACE),
        volumes={str(ws.path.resolve()): {"bind": str(WORKSPACE), "mode": "rw"}, **proxy.workload_volumes()},
        extra_labels={**labels, "runner.role": "workload"},
        **hardening,
    )


def _kept(workload: Container, proxy: sidecar.Sidecar, ws: workspace_stage.Workspace) -> str:
    return (
        f"kept: `docker exec -it {workload.name} bash` (workspace {ws.path}); "
        f"remove with `docker rm -f {workload.name} {proxy.container.name}`"
    )


_PROBE = (
    f"import json, platform, pathlib; f = pathlib.Path({environment.FAILED_LIST!r});"
    "print(json.dumps({'python': platform.python_version(),"
    " 'failed': f.read_text().split() if f.exists() else []}))"
)


def _environment_drift(workload: Container, manifest: Manifest) -> list[str]:
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
    misses = tuple(_miss(m) for m in report.misses)
    return CassetteUsage(served=report.served, misses=misses, unused=len(report.unused))


def _miss(miss: Miss) -> str:
    """A missed request, the nearest recorded one and why they differ, in one line."""
    text = f"{miss.method} {miss.url}: {miss.reason}"
    if miss.candidates:
        near = miss.candidates[0]
        why = "; ".join(f"{f.matcher}: {f.difference}" for f in near.failed) or "it was already served"
        text += f"; nearest recorded #{near.index} {near.method} {near.url} differs in {why}"
    return text[:1000]


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
