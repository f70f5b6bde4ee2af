"""The replay pipeline, top to bottom: one pack in, one `PackOutcome` out.

    unpack (safe) -> environment (image | virtualenv)
    -> session (cassette proxy with no egress + workload; the workspace restored from bundle + baseline
       while the environment is prepared and the proxy starts, then moved into a claimed spare's folder)
    -> steps (patch | command, each compared)
    -> verdict (reproduced | diverged at step N with its likely cause | error)

Every stage is a module with one verb that takes typed values and returns typed values; `replay` reads as the
data flow, and `_verdict` is the one place a verdict is decided. Where the commands run is the backend's
(`runner.replay.backends`: Docker containers in the sandbox `runner.engine.sandbox` describes, or a local
virtualenv in a network namespace); the outcome says which backend and sandbox. Containers, processes,
temporary folders and the workspace are removed on success, divergence, error and Ctrl-C, unless the caller
asks to keep them. An infrastructure failure is reported as `error`, never as a divergence.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors

from proxy.report import Miss, Report
from runner.engine import sandbox as sandbox_engine
from runner.engine.host import BuildTrust
from runner.errors import ExitCode, PackError, RunnerError, UsageError
from runner.pack import read as pack_stage
from runner.progress import Progress, Silent
from runner.replay import backends
from runner.replay import workspace as workspace_stage
from runner.replay.backends.docker import DockerBackend
from runner.replay.compare import DEFAULT_AGENT_PRIVATE
from runner.replay.outcome import CassetteUsage, PackOutcome, Verdict, likely_cause
from runner.replay.steps import StepRules, StepsResult, run_steps

if TYPE_CHECKING:
    from runner.privacy.crypto import Keyring

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
    backend: backends.Backend | None = None  # None: Docker, through the client `replay` is given


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
    backend: str | None = None  # which backend ran the steps
    isolated: bool = True  # False: the steps could reach the host's network (local --no-isolation)
    image: str | None = None  # "<ref> (<provenance>)"
    sandbox: str | None = None  # what the commands ran under, in words
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


def _backend(client: docker.DockerClient | None, options: ReplayOptions) -> backends.Backend:
    if options.backend is not None:
        return options.backend
    if client is None:
        raise UsageError("replay: no backend and no Docker client given")
    return DockerBackend(
        client, options.base_image, options.proxy_image, options.trust, options.allow_image_mismatch,
        options.limits, spares=not options.keep,
    )  # fmt: skip


def replay(
    client: docker.DockerClient | None,
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
    backend = _backend(client, options)
    known = _Known(
        pack, _run_dir(options.runs_dir, pack_path), time.monotonic(), backend.name, backend.isolated
    )
    try:
        with _scratch(options.keep) as scratch:
            notify(StepEvent(pack, 0, 0, "unpacking and verifying"))
            unpacked = _unpack(pack_path, scratch, options)
            total = len(unpacked.manifest.steps)

            notify(StepEvent(pack, 0, total, f"preparing the environment ({backend.name})"))
            own = scratch / "workspace"
            own.mkdir()
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore") as restorer:
                # Restored while the environment is prepared and the proxy and the workload start.
                restoring = restorer.submit(_restore, unpacked, own)
                env = backend.prepare(unpacked, progress)
                known = replace(known, image=env.shown, warnings=env.warnings)

                notify(StepEvent(pack, 0, total, "starting the cassette proxy and the workload"))
                run = backends.Run(pack, known.run_dir)
                workspace = env.workspace or own  # a claimed spare's, or our own
                with backend.start(env, unpacked, workspace, scratch, run=run, keep=options.keep) as session:
                    known = replace(
                        known, sandbox=session.sandbox, warnings=(*known.warnings, *session.warnings)
                    )
                    if options.keep:  # the caller prints how to get at it; nothing is removed
                        known = replace(known, warnings=(*known.warnings, session.kept()))
                    ws = _moved(restoring.result(), workspace, unpacked)
                    drift = backends.drift(session.probe(), unpacked.manifest, _where(backend.name))
                    known = replace(known, warnings=(*known.warnings, *drift))
                    session.ready()

                    rules = StepRules(
                        options.timeout_scale,
                        options.keep_going,
                        options.rerun_agent,
                        options.ignore_agent_files,
                    )
                    steps = run_steps(
                        session, ws, unpacked, known.run_dir, rules,
                        lambda index, text: notify(StepEvent(pack, index, total, text)),
                    )  # fmt: skip
                    known = replace(known, steps=steps)
                    if steps.failure is not None:
                        raise steps.failure
                    # With --keep the proxy stays up for the kept workload, so its report is not written yet.
                    usage = CassetteUsage() if options.keep else _usage(session.finish())
            _save_proxy_report(scratch / "proxy", known.run_dir)
            return _verdict(known, usage)
    except (RunnerError, docker.errors.DockerException) as e:
        return _verdict(known, error=e)


def _where(backend: str) -> str:
    return "the replay image" if backend == "docker" else "the replay virtualenv"


def _verdict(
    known: _Known, usage: CassetteUsage | None = None, *, error: Exception | None = None
) -> PackOutcome:
    """The one place a pack's verdict is decided, from what the stages returned."""
    outcome = PackOutcome(
        pack=known.pack, verdict=Verdict.REPRODUCED, steps=known.steps.steps,
        warnings=(*known.warnings, *known.steps.warnings), cassettes=usage or CassetteUsage(),
        run_dir=str(known.run_dir), image=known.image, duration_s=time.monotonic() - known.started_at,
        sandbox=known.sandbox, backend=known.backend,
        isolated=known.isolated,
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


def _moved(
    ws: workspace_stage.Workspace, dest: Path, unpacked: pack_stage.UnpackedPack
) -> workspace_stage.Workspace:
    """The restored workspace in `dest` (a claimed spare's folder, which its container has mounted): moved
    there, or restored there again from another file system."""
    if ws.path == dest:
        return ws
    try:
        return workspace_stage.move_into(ws, dest)
    except OSError:
        return _restore(unpacked, dest)


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
    client: docker.DockerClient | None,
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
