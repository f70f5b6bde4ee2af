"""The gate in front of promotion and rollback: the registry's golden set, judged for one version.

Inputs: the registry's gate settings (golden task files and, at the same position, the pack of each; a
`{version}` in a pack path is the target version), the target version, and optionally a replayer
(`runner.golden.replay.replay_pack` in the CLI).
Outputs: `GateReport`, one `GateCheck` per task with every line of why. Rules: a pack applies to a
configuration version only if it recorded it (`agent.config_version` in its manifest, set by
`runner record --config-version` or the SDK's `record(config_version=...)`); a missing pack, a pack recorded
under another version, a bad task file and a failed expectation all fail the gate; with `replay: true` the
packs' test steps must also reproduce in a hermetic replay, as `runner golden check --replay` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.config.document import GateSettings
from runner.errors import RunnerError
from runner.golden import check_pack, load_task
from runner.pack import read as pack_read

if TYPE_CHECKING:
    from runner.replay.outcome import PackOutcome

__all__ = ["GateCheck", "GateReport", "Replayer", "run_gate"]

Replayer = Callable[[Path], "PackOutcome"]


@dataclass(frozen=True)
class GateCheck:
    task: str  # the task file, as the registry names it
    pack: str  # the pack path, with {version} filled in
    held: bool
    lines: tuple[str, ...]  # one per expectation or problem


@dataclass(frozen=True)
class GateReport:
    version: int
    configured: bool  # False: the registry has no gate; the move is "ungated"
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.held for c in self.checks)

    def lines(self) -> list[str]:
        if not self.configured:
            return [f"gate: none configured in registry.yaml; version {self.version} goes ungated"]
        held = sum(c.held for c in self.checks)
        out = [f"gate for version {self.version}: {held} of {len(self.checks)} golden task(s) held"]
        for c in self.checks:
            out.append(f"  {'held  ' if c.held else 'FAILED'} {c.task}: {c.pack}")
            out += [f"      {line}" for line in c.lines]
        return out


def run_gate(
    root: Path, gate: GateSettings | None, version: int, replayer: Replayer | None = None
) -> GateReport:
    """Judge `version` against the golden set; never raises for a failing pack, it fails the check."""
    if gate is None:
        return GateReport(version, configured=False, checks=())
    if gate.replay and replayer is None:
        raise RunnerError("the registry's gate wants replay: true, but no replay engine was given")
    checks = [
        _check(
            root, task, pack.replace("{version}", str(version)), version, replayer if gate.replay else None
        )
        for task, pack in zip(gate.tasks, gate.packs, strict=True)
    ]
    return GateReport(version, configured=True, checks=tuple(checks))


def _check(root: Path, task_file: str, pack_name: str, version: int, replayer: Replayer | None) -> GateCheck:
    pack = root / pack_name
    inside = root.resolve()
    for name in (task_file, pack_name):
        if not (root / name).resolve().is_relative_to(inside):
            return GateCheck(
                task_file, pack_name, False, (f"{name}: outside the registry; keep the golden set in it",)
            )
    if not pack.is_file():
        return GateCheck(
            task_file, pack_name, False,
            (f"no golden pack for version {version}; record one under it (runner record --config-version "
             f"{version} ...) and put it at {pack_name}",),
        )  # fmt: skip
    try:
        task = load_task(root / task_file)
        manifest, _ = pack_read.read_manifest(pack)
        recorded = manifest.agent.config_version
        if recorded != str(version):
            return GateCheck(
                task_file, pack_name, False,
                (f"the pack was recorded under config version {recorded or '(none)'}, not {version}",),
            )  # fmt: skip
        replayed = replayer(pack) if replayer is not None else None
        result = check_pack(task, pack, replayed=replayed)
    except RunnerError as e:
        return GateCheck(task_file, pack_name, False, (str(e),))
    return GateCheck(task_file, pack_name, result.held, result.lines())
