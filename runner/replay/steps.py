"""Steps stage: a pack's steps, in order, against the restored workspace and the running workload.

Inputs: the workload (`runner.replay.backends.Workload`: a container, or a local namespace), the workspace,
the unpacked pack, the run's folder and `StepRules` (how to run them). Output: a `StepsResult`: one
`StepOutcome` per step that ran, the warnings they raised, the patches that applied only inexactly, and the
infrastructure failure that stopped them, if one did.

Rules: a patch step applies on the host (the workload sees the same folder); a command step runs in the
workload and is judged by `compare.compare_command`. With `rerun_agent`, the step holding the agent's patch
re-runs the recorded agent instead and `compare.compare_agent` judges its exit and the tree it leaves
(agent-private files left out). The re-run agent gets `runner.pack.agentenv.replay_env` (verbatim values,
placeholders for secrets), pinned PYTHONHASHSEED/locale/TZ (and FAKETIME at the recorded start when the image
has libfaketime and the cassettes hold no HTTPS exchange), its own files back (`~/` is the workload's HOME; a path the workload refuses goes under its
relocation folder and argv follows it), and no stdin (closed, as recorded). Steps stop at the first one that
disagrees unless `keep_going`. A recorded working directory that leaves the workspace is a bad pack. A command
that hits a limit of the workload's sandbox (memory, processes) fails its step with the limit named and stops
the steps as an infrastructure failure, so the pack's verdict is `error`, not a divergence."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from proxy.cassette import CassetteError, iter_exchanges
from runner.errors import ExecuteError, PackError, RunnerError, WorkspaceError
from runner.pack.agentenv import replay_env
from runner.pack.manifest import AgentCommand, CommandStep, PatchStep
from runner.pack.read import UnpackedPack
from runner.replay import execute
from runner.replay import workspace as workspace_stage
from runner.replay.backends import Workload
from runner.replay.compare import (
    DEFAULT_AGENT_PRIVATE,
    Difference,
    Replayed,
    compare_agent,
    compare_command,
)
from runner.replay.outcome import StepKind, StepOutcome

__all__ = ["StepRules", "StepsResult", "run_steps"]

# What the re-run agent gets pinned, so the files it writes for itself match the recording's: hash order,
# locale and timezone. The recorded start time is pinned too when the image has libfaketime (FAKETIME_LIBS).
_PINNED = {"PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"}
# Debian's libfaketime, under the workload's multiarch folder.
FAKETIME_LIBS = tuple(
    PurePosixPath(f"/usr/lib/{arch}-linux-gnu/faketime/libfaketime.so.1")
    for arch in ("x86_64", "aarch64", "arm", "i386", "powerpc64le", "riscv64", "s390x")
)
# The agent's own files go back from here (inside .git, so no tree the comparison reads ever holds them).
_STAGE = ".git/runner-agent-files"
_CONTAINER_HOME = PurePosixPath("/tmp")  # the sandbox user's HOME in a container (runner.engine.sandbox)
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z\Z")


@dataclass(frozen=True)
class StepRules:
    timeout_scale: float = 1.0
    keep_going: bool = False
    rerun_agent: bool = False  # run the recorded agent instead of applying the patch it produced
    ignore_agent_files: tuple[str, ...] = DEFAULT_AGENT_PRIVATE  # globs of agent-private files not compared


@dataclass(frozen=True)
class StepsResult:
    steps: tuple[StepOutcome, ...] = ()
    warnings: tuple[str, ...] = ()
    inexact_patches: tuple[str, ...] = ()  # ids of patch steps that needed a fuzzy tier
    failure: Exception | None = None  # the infrastructure error that stopped the steps

    @property
    def first_divergence(self) -> StepOutcome | None:
        return next((s for s in self.steps if not s.ok), None)


def run_steps(
    workload: Workload,
    ws: workspace_stage.Workspace,
    pack: UnpackedPack,
    run_dir: Path,
    rules: StepRules,
    on_step: Callable[[int, str], None] = lambda index, text: None,
) -> StepsResult:
    """Run the pack's steps; an infrastructure failure ends them and comes back as `failure`, with the
    outcomes of the steps before it."""
    m = pack.manifest
    steps: list[StepOutcome] = []
    warnings: list[str] = []
    inexact: list[str] = []
    try:
        for index, step in enumerate(m.steps, start=1):
            on_step(index, _describe(step))
            if isinstance(step, PatchStep) and rules.rerun_agent and step.id == m.agent.patch:
                assert m.agent.command is not None
                outcome = _rerun_agent(workload, ws, pack, step, m.agent.command, run_dir, rules)
            elif isinstance(step, PatchStep):
                outcome, applied = _apply(ws, pack.path / step.patch, step)
                if applied is not None and not applied.exact:
                    inexact.append(step.id)
                    warnings.append(
                        f"{step.patch} applied only with {applied.tier}: the tree differs from the recording"
                    )
            else:
                outcome = _command(workload, ws.path, pack, step, run_dir, rules)
            steps.append(outcome)
            if outcome.limit is not None:
                raise ExecuteError(
                    f"step {step.id} hit {outcome.limit}; the replay stopped there. If the recording needs "
                    "more, raise the limit (runner replay --memory/--pids); if not, the pack is hostile"
                )
            if not outcome.ok and not rules.keep_going:
                break
    except RunnerError as e:
        return StepsResult(tuple(steps), tuple(warnings), tuple(inexact), failure=e)
    return StepsResult(tuple(steps), tuple(warnings), tuple(inexact))


def _describe(step: PatchStep | CommandStep) -> str:
    if isinstance(step, PatchStep):
        return f"{step.id}: apply {step.patch}"
    return f"{step.id}: {' '.join(step.argv)[:80]}"


def _apply(
    ws: workspace_stage.Workspace, patch: Path, step: PatchStep
) -> tuple[StepOutcome, workspace_stage.PatchResult | None]:
    started_at = time.monotonic()
    try:
        result = workspace_stage.apply_patch(ws, patch)
    except WorkspaceError as e:
        return StepOutcome(
            step.id, "patch", False, f"{step.patch} does not apply",
            (Difference(step.patch, str(e)),), time.monotonic() - started_at,
        ), None  # fmt: skip
    took = time.monotonic() - started_at
    return StepOutcome(step.id, "patch", True, f"applied ({result.tier})", (), took), result


def _workdir(workload: Workload, cwd: str, field: str) -> str:
    """The workload's path of a recorded working directory; one that leaves the workspace is a bad pack."""
    rel = PurePosixPath(cwd)
    if rel.is_absolute() or ".." in rel.parts:
        raise PackError(f"{field} {cwd!r} leaves the workspace")
    return str(workload.workspace / rel)


def _rerun_agent(
    workload: Workload,
    ws: workspace_stage.Workspace,
    pack: UnpackedPack,
    step: PatchStep,
    command: AgentCommand,
    run_dir: Path,
    rules: StepRules,
) -> StepOutcome:
    """Run the recorded agent again (answered by the cassettes) with its recorded environment, its own files
    back in place and stdin closed, then compare the tree it leaves with the tree the recorded patch makes."""
    workdir = _workdir(workload, command.cwd, "agent.command.cwd")
    before = workspace_stage.tree(ws)
    recorded = workspace_stage.tree_with_patch(ws, before, pack.path / step.patch)
    argv = _restore_files(workload, ws.path, pack, command)
    env = {**_PINNED, **replay_env(pack.manifest), **_faketime(workload, pack)}
    result = workload.run(
        argv, workdir=workdir, env=env, timeout=command.timeout or 3600, log_dir=run_dir / "steps",
        name=f"{step.id}.agent",
    )  # fmt: skip
    shutil.rmtree(ws.path / _STAGE, ignore_errors=True)
    if result.limit is not None:
        return _limited(step.id, "patch", result)
    replayed = workspace_stage.tree(ws)
    stderr = result.stderr.read_bytes().decode("utf-8", "replace") if result.stderr.exists() else ""
    diffs, ignored = compare_agent(
        workspace_stage.diff_trees(ws, recorded, replayed),
        result.timed_out,
        exit_code=result.exit_code,
        stderr=stderr,
        ignore=rules.ignore_agent_files,
        recorded_exit=command.exit_code,
    )
    note = f"; ignored agent-private file(s): {', '.join(ignored)}" if ignored else ""
    if diffs:
        summary = diffs[0].summary
    else:
        summary = f"re-run agent reproduced the patch (exit {result.exit_code}){note}"
    return StepOutcome(step.id, "patch", not diffs, summary, diffs, result.duration_s, str(run_dir / "steps"))


def _restore_files(
    workload: Workload, workspace: Path, pack: UnpackedPack, command: AgentCommand
) -> list[str]:
    """Put the agent's own files back (`~/` is the workload's HOME) and return the argv to run: a file whose
    recorded path the workload refuses goes under its relocation folder instead, and argv follows it."""
    argv = list(command.argv)
    if not command.files:
        return argv
    stage = workspace / _STAGE
    stage.mkdir(parents=True, exist_ok=True)
    for index, agent_file in enumerate(command.files):
        member = PurePosixPath(agent_file.member)
        if member.is_absolute() or ".." in member.parts or member.parts[:2] != ("agent", "files"):
            raise PackError(f"agent.command.files: member {agent_file.member!r} is not under agent/files/")
        source = pack.path / member
        if not source.is_file():
            raise PackError(f"agent.command.files: {agent_file.member} is missing from the pack")
        target = _container_path(agent_file.path, workload.home)
        staged = stage / f"{index:04d}"
        shutil.copyfile(source, staged)
        if not workload.copy_in(staged, target):  # a path the workload refuses: relocate, point argv there
            moved = workload.relocated / target.relative_to("/")
            if not workload.copy_in(staged, moved):
                raise ExecuteError(f"could not put the agent's file {agent_file.path} back in the workload")
            argv = [str(moved) if arg == agent_file.path else arg for arg in argv]
    return argv


def _container_path(path: str, home: PurePosixPath = _CONTAINER_HOME) -> PurePosixPath:
    # `~/` is the workload's HOME (/tmp in a container: runner.engine.sandbox)
    target = home / path[2:] if path.startswith("~/") else PurePosixPath(path)
    if not target.is_absolute() or ".." in target.parts:
        raise PackError(f"agent.command.files: path {path!r} is neither absolute nor under ~/")
    return target


def _faketime(workload: Workload, pack: UnpackedPack) -> dict[str, str]:
    """FAKETIME at the recorded start, when the workload has libfaketime and the agent spoke no HTTPS: the
    replay proxy's certificates are made now, so a client whose clock is back at the recording would find
    them not yet valid. Nothing otherwise."""
    found = _RFC3339.match(pack.manifest.session.created_at)
    if found is None or _spoke_https(pack):  # an odd start: leave the clock real rather than pass it on
        return {}
    lib = next((str(p) for p in FAKETIME_LIBS if workload.exists(p)), None)
    if lib is None:
        return {}
    started = f"{found[1]} {found[2]}"
    return {"LD_PRELOAD": lib, "FAKETIME": f"@{started}", "FAKETIME_DONT_RESET": "1"}


def _spoke_https(pack: UnpackedPack) -> bool:
    """Whether the cassettes hold an HTTPS exchange (a cassette that does not read counts as one)."""
    try:
        return any(
            e.request.scheme != "http"
            for cassette in pack.manifest.cassettes
            for e in iter_exchanges(pack.path / cassette.path)
        )
    except CassetteError:
        return True


def _command(
    workload: Workload,
    workspace: Path,
    pack: UnpackedPack,
    step: CommandStep,
    run_dir: Path,
    rules: StepRules,
) -> StepOutcome:
    result = workload.run(
        list(step.argv), workdir=_workdir(workload, step.cwd, f"steps {step.id}: cwd"), env=dict(step.env),
        timeout=step.timeout * rules.timeout_scale, log_dir=run_dir / "steps", name=step.id,
    )  # fmt: skip
    if result.limit is not None:
        return _limited(step.id, "command", result, str(run_dir / "steps"))
    if result.timed_out:
        replayed = Replayed(exit_code=None)
    else:
        assert result.exit_code is not None
        outputs = {rel: execute.read_output(workspace, step.cwd, rel) for rel in step.expect.outputs}
        for rel, data in outputs.items():
            if data is not None:  # kept beside the logs, for a look at what differed
                target = run_dir / "outputs" / step.id / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        replayed = Replayed(result.exit_code, result.stdout.read_bytes(), result.stderr.read_bytes(), outputs)
    diffs = compare_command(step, lambda digest: pack.artifact(digest).read_bytes(), replayed)
    code = "timeout" if result.timed_out else f"exit {result.exit_code}"
    summary = diffs[0].summary if diffs else f"{code}, outputs match"
    return StepOutcome(
        step.id, "command", not diffs, summary, diffs, result.duration_s, str(run_dir / "steps")
    )


def _limited(
    step_id: str, kind: StepKind, result: execute.CommandRun, log_dir: str | None = None
) -> StepOutcome:
    summary = f"stopped: hit {result.limit}"
    return StepOutcome(
        step_id,
        kind,
        False,
        summary,
        (Difference("limit", summary),),
        result.duration_s,
        log_dir,
        result.limit,
    )
