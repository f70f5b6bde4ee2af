"""`runner config ...` and `runner rollback`: the configuration registry and one-command rollback.

Inputs: the registry (--registry DIR or $RUNNER_CONFIG_REGISTRY), configuration YAML files, environment
names and version numbers. Outputs: one line per change naming the version, the environment and the
commit; the gate report when a gate ran; tables or JSON for list/current/history. Exit codes: OK; DIVERGED
(1, GateRefused) when the golden gate refused a promotion or rollback; BAD_INPUT for a bad file, an unknown version or
environment, a hand-broken registry, or a concurrent change; ENVIRONMENT when a replaying gate has no engine.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from runner.cli.common import cell, console, handles_errors, live_progress, say
from runner.errors import UsageError

if TYPE_CHECKING:
    from runner.config import Move
    from runner.config.gate import GateReport, Replayer
    from runner.replay.outcome import PackOutcome

__all__ = ["app"]

app = typer.Typer()
config = typer.Typer(
    name="config",
    help="The configuration registry: numbered agent configurations, environment pointers, gated promotion.",
    no_args_is_help=True,
)
app.add_typer(config)

Registry = Annotated[
    Path | None,
    typer.Option(
        "--registry", metavar="DIR", help="The registry (a git repository); default: $RUNNER_CONFIG_REGISTRY."
    ),
]
Reason = Annotated[str, typer.Option("--reason", "-m", help="Why: recorded in the registry's history.")]
Force = Annotated[
    bool, typer.Option("--force", help="Override a failed golden gate (needs --reason; recorded).")
]
RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Where a replaying gate's run folders go.")]


def _root(registry: Path | None) -> Path:
    from runner.config import ENV_VARIABLE

    chosen = registry or (Path(os.environ[ENV_VARIABLE]) if os.environ.get(ENV_VARIABLE) else None)
    if chosen is None:
        raise UsageError(f"which registry? pass --registry DIR or set {ENV_VARIABLE}")
    return chosen


def _report(report: GateReport) -> None:
    for line in report.lines():
        say(line, soft_wrap=True)


def _replayer(runs_dir: Path) -> Replayer:
    from runner.golden.replay import replay_pack

    def replay(pack: Path) -> PackOutcome:
        with live_progress() as live:
            return replay_pack(pack, runs_dir, live)

    return replay


def _moved(move: Move) -> None:
    _report(move.report)
    was = move.previous if move.previous is not None else "nothing"
    note = " (gate overridden with --force)" if move.gate == "forced" else ""
    say(f"{move.environment}: {was} -> version {move.version}{note}; commit {move.commit[:12]}")


def _gated(fn: typer.models.CommandFunctionType) -> typer.models.CommandFunctionType:
    """Print the gate report of a refused move before its one-line error (exit 1)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        from runner.config import GateRefused

        try:
            return fn(*args, **kwargs)
        except GateRefused as e:
            _report(e.report)
            raise

    return wrapper  # type: ignore[return-value]


@config.command(
    "init", help="Make a new registry (a git repository) in DIR.\n\nExample: runner config init cfg/"
)
@handles_errors
def init_cmd(directory: Annotated[Path, typer.Argument(metavar="DIR")]) -> None:
    from runner.config import init

    commit = init(directory)
    say(f"registry made in {directory} (commit {commit[:12]}); push a version: runner config push FILE")


@config.command(
    "push",
    help="Store a configuration YAML file as the next numbered version (validated against the schema).\n\n"
    "Example: runner config push agent.yaml -m 'lower temperature'",
)
@handles_errors
def push_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE")], registry: Registry = None, reason: Reason = ""
) -> None:
    from runner.config import push

    pushed = push(_root(registry), file, reason)
    if pushed.replaced_version is not None:
        say(f"note: the file said version {pushed.replaced_version}; the registry numbers versions itself")
    say(f"pushed {file} as version {pushed.version} (commit {pushed.commit[:12]})")


@config.command(
    "list",
    help="Every version, newest first, with the environments pointing at it and who pushed it when.\n\n"
    "Example: runner config list --registry cfg/ --json",
)
@handles_errors
def list_cmd(registry: Registry = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    from runner.config import history, open_registry

    reg = open_registry(_root(registry))
    pushes = {
        e.trailers.get("Runner-Version"): e
        for e in history(reg.root, limit=100_000)
        if e.trailers.get("Runner-Action") == "push"
    }
    rows = []
    for n in sorted(reg.versions, reverse=True):
        doc, pushed = reg.versions[n].data, pushes.get(str(n))
        envs = sorted(e.name for e in reg.environments.values() if e.version == n)
        rows.append({
            "version": n, "model": doc["model"], "environments": envs, "description": doc.get("description", ""),
            "pushed_by": pushed.who if pushed else None, "pushed_at": pushed.when if pushed else None,
        })  # fmt: skip
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("version", "model", "live in", "pushed", "description", box=None)
    for r in rows:
        by = cell(f"{r['pushed_by'] or '?'} {r['pushed_at'] or ''}")
        live = ", ".join(r["environments"])
        table.add_row(str(r["version"]), cell(str(r["model"])), live, by, cell(str(r["description"])))
    console.print(table)


@config.command("show", help="Print one version's YAML document.\n\nExample: runner config show 3")
@handles_errors
def show_cmd(version: Annotated[int, typer.Argument(metavar="VERSION")], registry: Registry = None) -> None:
    from runner.config import open_registry
    from runner.config.document import dump

    print(dump(open_registry(_root(registry)).config(version).data), end="")


@config.command("diff", help="A unified diff of two versions' documents.\n\nExample: runner config diff 2 3")
@handles_errors
def diff_cmd(
    a: Annotated[int, typer.Argument(metavar="A")], b: Annotated[int, typer.Argument(metavar="B")],
    registry: Registry = None,
) -> None:  # fmt: skip
    from runner.config import open_registry
    from runner.config.document import dump

    reg = open_registry(_root(registry))
    left, right = ({k: v for k, v in reg.config(n).data.items() if k != "version"} for n in (a, b))
    lines = difflib.unified_diff(
        dump(left).splitlines(), dump(right).splitlines(), f"version {a}", f"version {b}", lineterm=""
    )
    text = "\n".join(lines)
    print(text if text else f"versions {a} and {b} hold the same configuration")


@config.command(
    "promote",
    help="Point ENV at VERSION after the registry's golden gate passes for it; refused with the report "
    "when it fails (exit 1) unless --force --reason TEXT, which the history records.\n\n"
    "Example: runner config promote production 3 -m 'ticket OPS-12'",
)
@handles_errors
@_gated
def promote_cmd(
    environment: Annotated[str, typer.Argument(metavar="ENV")],
    version: Annotated[int, typer.Argument(metavar="VERSION")],
    registry: Registry = None, force: Force = False, reason: Reason = "", runs_dir: RunsDir = Path("runs"),
) -> None:  # fmt: skip
    from runner.config import promote

    _moved(
        promote(
            _root(registry), environment, version, force=force, reason=reason, replayer=_replayer(runs_dir)
        )
    )


@config.command(
    "current",
    help="The version ENV points at; --json prints it with its whole configuration (what a deploy reads).\n\n"
    "Example: runner config current production --json",
)
@handles_errors
def current_cmd(
    environment: Annotated[str, typer.Argument(metavar="ENV")], registry: Registry = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:  # fmt: skip
    from runner.config import open_registry

    reg = open_registry(_root(registry))
    env = reg.environment(environment)
    if as_json:
        doc = {
            "environment": env.name, "version": env.version, "gate": env.live[-1].gate,
            "registry_commit": reg.head, "config": reg.config(env.version).data,
        }  # fmt: skip
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    say(f"{env.name}: version {env.version} (went live {env.live[-1].gate})")


@config.command(
    "history",
    help="The audit log, newest first: who changed what, when and why.\n\n"
    "Example: runner config history --env production",
)
@handles_errors
def history_cmd(
    registry: Registry = None,
    environment: Annotated[
        str | None, typer.Option("--env", help="Only the moves of this environment.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    from runner.config import history

    entries = history(_root(registry), environment)
    if as_json:
        print(json.dumps([{**e.__dict__, "trailers": dict(e.trailers)} for e in entries], indent=2))
        return
    for e in entries:
        say(f"{e.commit[:12]} {e.when} {e.who}: {e.subject}", soft_wrap=True)
        why = e.reason.splitlines()[0] if e.reason else ""
        if why:
            say(f"    why: {why}", soft_wrap=True)
        if "Runner-Override" in e.trailers:
            say(f"    gate overridden: {e.trailers['Runner-Override']}", soft_wrap=True)


@app.command(
    "rollback",
    help="Move ENV's pointer back to the previous known-good version (one that went live there with its "
    "gate passed), or --to VERSION, after the golden gate passes for it.\n\n"
    "Example: runner rollback production -m 'error rate up'",
)
@handles_errors
@_gated
def rollback_cmd(
    environment: Annotated[str, typer.Argument(metavar="ENV")],
    to: Annotated[int | None, typer.Option("--to", metavar="VERSION", help="The version to go back to.")] = None,
    registry: Registry = None, force: Force = False, reason: Reason = "", runs_dir: RunsDir = Path("runs"),
) -> None:  # fmt: skip
    from runner.config import rollback

    _moved(
        rollback(
            _root(registry), environment, to=to, force=force, reason=reason, replayer=_replayer(runs_dir)
        )
    )
