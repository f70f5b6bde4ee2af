"""`runner golden check` and `runner golden run`: golden tasks as a CI gate.

Inputs: golden task files (YAML, docs/golden.md), a pack (check) or an agent command after `--` (run).
Outputs: one line per expectation, held or FAILED with why; `run` also says where each pack went.
Exit codes: OK when every expectation of every task held, DIVERGED (1) when one failed, BAD_INPUT for a bad
task file or pack (one line naming the file and field), ENVIRONMENT when `--replay` has no engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runner.cli.common import handles_errors, live_progress, local_pack, say
from runner.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from runner.golden.expect import GoldenResult
    from runner.privacy.crypto import Keyring
    from runner.replay.outcome import PackOutcome

__all__ = ["app"]

app = typer.Typer()
golden = typer.Typer(
    name="golden",
    help="Golden tasks: record an agent on each task and keep the pack only when its expectations hold.",
    no_args_is_help=True,
)
app.add_typer(golden)

_TASK_SUFFIXES = (".yaml", ".yml")


def _print(result: GoldenResult) -> None:
    for line in result.lines():
        say(f"  {line}", soft_wrap=True)


@golden.command(
    "check",
    help="Check a golden task's expectations against a pack: tests_pass from the recorded test steps "
    "(and, with --replay, their hermetic replay), patch_contains from its patches, counts from its spans.\n\n"
    "Exit 0 when every expectation holds, 1 when one fails, 2 for a bad task file or pack.\n\n"
    "Example: runner golden check tasks/fix-serializer.yaml golden/fix-serializer.tar.zst --replay",
)
@handles_errors
def check_cmd(
    task_file: Annotated[Path, typer.Argument(metavar="TASK.yaml", help="The golden task file.")],
    pack: Annotated[str, typer.Argument(metavar="PACK", help="The pack (.tar.zst or oci://REF).")],
    replay: Annotated[
        bool, typer.Option("--replay", help="Also replay the pack in Docker; its test steps must reproduce.")
    ] = False,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where the --replay run folder goes.")] = Path(
        "runs"
    ),
    key: Annotated[
        Path | None, typer.Option("--key", help="Tenant keyring: needed for packs with encrypted payloads.")
    ] = None,
) -> None:
    from runner.golden import check_pack, load_task
    from runner.privacy import crypto

    task = load_task(task_file)
    path = local_pack(pack)
    keyring = crypto.load_keyring(key) if key else None
    replayed = _replay(path, runs_dir, keyring) if replay else None
    result = check_pack(task, path, keyring=keyring, replayed=replayed)
    say(f"{task.name}: {path}: {'every expectation held' if result.held else 'expectations failed'}")
    _print(result)
    raise typer.Exit(ExitCode.OK if result.held else ExitCode.DIVERGED)


def _replay(pack: Path, runs_dir: Path, keyring: Keyring | None) -> PackOutcome:
    """Replay `pack` as `runner replay` does; its outcome feeds tests_pass."""
    from runner.golden.replay import replay_pack

    with live_progress() as live:
        return replay_pack(pack, runs_dir, live, keyring)


@golden.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="Record the agent on each golden task (task files first, then -- and the agent command) and keep "
    "each pack in --out when its expectations hold; else it goes to OUT/failed/ with OUT/failed/NAME.json "
    "saying which expectation failed.\n\n"
    "The agent runs in a fresh clone of the task's repository and gets the task in RUNNER_TASK_PROMPT, "
    "RUNNER_TASK_FAILING_TEST, RUNNER_TASK_SEED, RUNNER_TASK_TEMPERATURE, RUNNER_TASK_NAME and the JSON "
    "file RUNNER_TASK_FILE (.runner/task.json in the workspace).\n\n"
    "Exit 0 when every pack was kept, 1 when one was set aside, 2 for a bad task file or command.\n\n"
    "Example: runner golden run tasks/*.yaml --out golden/ -- python agent.py",
)
@handles_errors
def run_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Where kept packs go.")],
    repo: Annotated[
        Path, typer.Option("--repo", help="The repository of tasks that name no input.repo.")
    ] = Path("."),
    no_http: Annotated[bool, typer.Option("--no-http", help="Do not start the recording proxy.")] = False,
    record_loopback: Annotated[
        bool,
        typer.Option("--record-loopback", help="Also record requests to localhost (local model servers)."),
    ] = False,
    upstream_ca: Annotated[
        Path | None,
        typer.Option("--upstream-ca", help="CA bundle verifying real servers (default: this machine's)."),
    ] = None,
    agent: Annotated[str, typer.Option("--agent", help="The agent's name in the manifests.")] = "agent",
) -> None:
    from runner.golden import load_tasks, run_task
    from runner.recorder import RecordOptions

    args = list(ctx.args)
    # Click drops the `--`: the task files are the leading *.yaml/*.yml arguments, the rest is the agent.
    split = next((i for i, a in enumerate(args) if not a.endswith(_TASK_SUFFIXES)), len(args))
    files, argv = [Path(a) for a in args[:split]], args[split:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not files:
        raise UsageError("no task files: runner golden run TASK.yaml... --out DIR -- AGENT_CMD...")
    if not argv:
        raise UsageError(
            "no agent command: put it after --, e.g. runner golden run t.yaml --out g -- python a.py"
        )
    tasks = load_tasks(files)
    options = RecordOptions(
        agent=agent, http=not no_http, record_loopback=record_loopback, upstream_ca=upstream_ca
    )
    kept = 0
    for task in tasks:
        done = run_task(task, argv, out, repo=repo.resolve(), options=options)
        kept += done.kept
        verb = "kept" if done.kept else "set aside (expectations failed)"
        say(f"{task.name}: {verb}: {done.pack}", soft_wrap=True)
        _print(done.result)
    say(f"{kept} of {len(tasks)} task(s) kept in {out}")
    raise typer.Exit(ExitCode.OK if kept == len(tasks) else ExitCode.DIVERGED)
