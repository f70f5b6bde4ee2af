"""Changes to the registry: push a version, promote a version to an environment, roll an environment back.

Inputs: the registry folder and what to change; for moves, an optional replayer (Docker) for a gate with
`replay: true`. Outputs: `Pushed` or `Move` (what changed, the commit, the gate report). Rules: a move
first runs the golden gate against the target version and is refused with the report (`GateRefused`)
when it fails, unless `force` with a reason, which is recorded in the commit; rollback picks the previous
known-good version (one that went live in the environment before with its gate passed, or ungated); every
change is one commit under the registry lock, compare-and-swapped from the commit it was computed on.
`rollback` is the one code path behind both `runner rollback` and the viewer's rollback button.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from runner.config import registry as reg
from runner.config.document import Environment, GateMark, LiveEntry, load_yaml, parse_config
from runner.config.gate import GateReport, Replayer, run_gate
from runner.errors import ConfigError, ExitCode

__all__ = ["GateRefused", "Move", "Pushed", "promote", "push", "rollback"]


class GateRefused(ConfigError):
    """The golden gate failed for the target version; `report` says which task and why."""

    exit_code = ExitCode.DIVERGED

    def __init__(self, message: str, report: GateReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Pushed:
    version: int
    commit: str
    replaced_version: int | None  # the file named a version of its own; the registry numbers it


@dataclass(frozen=True)
class Move:
    action: Literal["promote", "rollback"]
    environment: str
    previous: int | None
    version: int
    gate: GateMark
    report: GateReport
    commit: str


def push(root: Path, file: Path, reason: str = "") -> Pushed:
    """Store `file` as the next numbered version (validated first); nothing is written if it is bad."""
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise ConfigError(f"{file}: cannot read the configuration ({e.strerror})") from None
    data = load_yaml(raw, str(file))
    parse_config(data, str(file), None)
    current = reg.open_registry(root)
    version = max(current.versions, default=0) + 1
    stated = data.get("version")
    doc: dict[str, Any] = {**data, "version": version}
    with reg.locked(root):
        commit = reg.commit(
            root, current.head, {reg.version_path(version): doc}, f"push version {version}",
            reason or f"from {file.name}", {"Action": "push", "Version": str(version)},
        )  # fmt: skip
    return Pushed(version, commit, stated if isinstance(stated, int) and stated != version else None)


def promote(
    root: Path, environment: str, version: int, *, force: bool = False, reason: str = "",
    replayer: Replayer | None = None,
) -> Move:  # fmt: skip
    """Point `environment` at `version` after its gate passes (or `force` with a reason)."""
    reg.check_env_name(environment)
    current = reg.open_registry(root)
    current.config(version)
    env = current.environments.get(environment)
    if env is not None and env.version == version:
        raise ConfigError(f"{environment} is already at version {version}; nothing to promote")
    live = env.live if env else ()
    return _move(current, "promote", environment, env, version, live, force, reason, replayer)


def rollback(
    root: Path, environment: str, *, to: int | None = None, force: bool = False, reason: str = "",
    replayer: Replayer | None = None,
) -> Move:  # fmt: skip
    """Move `environment` back to its previous known-good version (or `to`, which must have been live there)."""
    current = reg.open_registry(root)
    env = current.environment(reg.check_env_name(environment))
    earlier = env.live[:-1]
    if to is None:
        index = next((i for i in range(len(earlier) - 1, -1, -1) if earlier[i].gate != "forced"), None)
        if index is None:
            raise ConfigError(
                f"{environment}: no known-good version before {env.version} (none went live here with its "
                f"gate passed); promote one: runner config promote {environment} VERSION"
            )
    else:
        current.config(to)
        if to == env.version:
            raise ConfigError(f"{environment} is already at version {to}; nothing to roll back")
        index = next((i for i in range(len(earlier) - 1, -1, -1) if earlier[i].version == to), None)
        if index is None:
            raise ConfigError(
                f"{environment}: version {to} was never live here before {env.version}; "
                f"use runner config promote {environment} {to}"
            )
        if earlier[index].gate == "forced" and not force:
            raise ConfigError(
                f"{environment}: version {to} went live here by --force, so it is not known-good; "
                "add --force --reason TEXT to go back to it anyway"
            )
    target = earlier[index].version
    return _move(current, "rollback", environment, env, target, earlier[:index], force, reason, replayer)


def _move(
    current: reg.Registry,
    action: Literal["promote", "rollback"],
    name: str,
    env: Environment | None,
    version: int,
    kept: tuple[LiveEntry, ...],
    force: bool,
    reason: str,
    replayer: Replayer | None,
) -> Move:
    if force and not reason.strip():
        raise ConfigError("--force needs --reason TEXT: the override is recorded in the registry's history")
    report = run_gate(current.root, current.settings.gate, version, replayer)
    mark: GateMark = "ungated" if not report.configured else ("passed" if report.passed else "forced")
    if mark == "forced" and not force:
        raise GateRefused(
            f"{action} of {name} to version {version} refused: the golden gate failed "
            "(fix the version, or override with --force --reason TEXT)",
            report,
        )
    new_env = Environment(name, version, (*kept, LiveEntry(version, mark)))
    previous = env.version if env else None
    trailers = {
        "Action": action, "Environment": name, "Version": str(version),
        "Previous": str(previous) if previous is not None else "none", "Gate": mark,
    }  # fmt: skip
    if mark == "forced":
        trailers["Override"] = reason.strip().replace("\n", " ")
    body = "\n".join([reason.strip() or f"({action} without a reason)", "", *report.lines()])
    with reg.locked(current.root):
        commit = reg.commit(
            current.root, current.head, {reg.environment_path(name): new_env.as_dict()},
            f"{action} {name}: {previous if previous is not None else '-'} -> {version}", body, trailers,
        )  # fmt: skip
    return Move(action, name, previous, version, mark, report, commit)
