"""`runner replay PACK...`: replay repro packs hermetically (Docker, or local) and diff every recorded output.

Inputs: packs or folders and options; `--backend` picks where the commands run (`runner.replay.backends`:
docker, local, or auto: Docker when an engine answers, else local, said on stderr). Outputs: progress on
stderr, the terminal table on stdout, reports where asked (JSON, JUnit, Markdown, HTML) and report.json in
each run folder. Exit codes: the gravest outcome, as `runner.replay.report.exit_code` grades it (OK, DIVERGED,
BAD_INPUT, ENVIRONMENT)."""

from __future__ import annotations

import gc
from contextlib import ExitStack, closing
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import (
    BASE_FROM_OPTION,
    CA_BUNDLE_OPTION,
    console,
    err_console,
    handles_errors,
    live_progress,
    local_pack,
)
from runner.engine import sandbox
from runner.engine.host import BuildTrust
from runner.errors import ExitCode, UsageError

__all__ = ["app"]

app = typer.Typer()


@app.command(
    "replay",
    help="Replay repro packs hermetically and diff every recorded command's outputs.\n\n"
    "The commands run in Docker containers (--backend docker, the default), or on this machine in a "
    "cached virtualenv and a private network namespace (--backend local); --backend auto takes Docker "
    "when an engine answers, else local.\n\n"
    "Exit 0 when every pack reproduced, 1 when one diverged, 2 for a bad pack, 3 for an environment "
    "problem. Logs, outputs and report.json go to RUNS_DIR/<pack>/<run>/.\n\n"
    "Examples: runner replay session.tar.zst | runner replay packs/golden --jobs 2 --junit replay.xml | "
    "runner replay session.tar.zst --backend local",
)
@handles_errors
def replay_cmd(
    packs: Annotated[
        list[str],
        typer.Argument(metavar="PACK...", help="Packs, folders of *.tar.zst, or oci://REF[@sha256:DIGEST]."),
    ],
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Packs replayed at once.")] = 1,
    shard: Annotated[
        str | None, typer.Option("--shard", metavar="I/N", help="Replay only shard I of N.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON report here (- for stdout).")
    ] = None,
    junit_out: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report here.")] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="Write a Markdown report here.")
    ] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write an HTML report here.")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where per-run folders go.")] = Path("runs"),
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep containers and the workspace for a shell.")
    ] = False,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="Run the steps after a divergence.")
    ] = False,
    rerun_agent: Annotated[
        bool,
        typer.Option(
            "--rerun-agent", help="Re-run the recorded agent against the cassettes; compare its patch."
        ),
    ] = False,
    ignore_agent_file: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-agent-file",
            metavar="GLOB",
            help="With --rerun-agent: a file the agent writes for itself (chat history, log) left out of the "
            "comparison, on top of the defaults (.aider*, *.log, .cache/, ...); `dir/` names a folder.",
        ),
    ] = None,
    allow_image_mismatch: Annotated[
        bool,
        typer.Option("--allow-image-mismatch", help="Replay even when the image differs from the pack's."),
    ] = False,
    base_from: str | None = BASE_FROM_OPTION,
    ca_bundle: Path | None = CA_BUNDLE_OPTION,
    key: Annotated[
        Path | None, typer.Option("--key", help="Tenant keyring: needed for packs with encrypted payloads.")
    ] = None,
    memory: Annotated[
        str, typer.Option("--memory", metavar="SIZE", help="Memory of the workload, swap included (e.g. 4g).")
    ] = "4g",
    pids: Annotated[
        int, typer.Option("--pids", min=8, help="Processes and threads the workload may have at once.")
    ] = sandbox.Limits.pids,
    cpus: Annotated[
        float, typer.Option("--cpus", min=0.1, help="CPUs the workload may use (at most the engine's).")
    ] = sandbox.Limits.cpus,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            metavar="docker|local|auto",
            help="Where the commands run: Docker containers, or a local virtualenv in a network namespace.",
        ),
    ] = "docker",
    no_isolation: Annotated[
        bool,
        typer.Option(
            "--no-isolation",
            help="With --backend local where no network namespace can be made: replay with this machine's "
            "network (the report says so on its first line).",
        ),
    ] = False,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime", help="OCI runtime of the workload, e.g. runsc (gVisor); see docs/sandbox.md."
        ),
    ] = None,
) -> None:
    # Only what this invocation uses is imported: the CLI's start is part of every replay's wall time.
    from runner.engine import images
    from runner.replay import backends, pipeline, report
    from runner.replay.compare import DEFAULT_AGENT_PRIVATE

    selected = pipeline.select_packs([local_pack(p) for p in packs], shard)
    limits = sandbox.Limits(sandbox.parse_memory(memory), pids, cpus, runtime)
    keyring = None
    if key:
        from runner.privacy import crypto

        keyring = crypto.load_keyring(key)
    trust = BuildTrust.from_host(ca_bundle)
    if no_isolation and backend == "docker":
        raise UsageError("--no-isolation applies to --backend local or auto; Docker always isolates")
    choice = backends.select(backend)
    if choice.name != "docker" or backend != "docker":  # say which backend runs, unless it was asked for
        err_console.print(choice.note, markup=False)
    with ExitStack() as stack:
        client = stack.enter_context(closing(choice.client)) if choice.client is not None else None
        options = pipeline.ReplayOptions(
            base_image="", proxy_image="", runs_dir=runs_dir, keep=keep,
            keep_going=keep_going, allow_image_mismatch=allow_image_mismatch, trust=trust, rerun_agent=rerun_agent,
            keyring=keyring, limits=limits,
            ignore_agent_files=(*DEFAULT_AGENT_PRIVATE, *(ignore_agent_file or ())),
        )  # fmt: skip
        if choice.name == "local":
            from runner.replay.backends.local import LocalBackend

            options = replace(options, backend=LocalBackend(trust, no_isolation))
        if client is not None:
            with live_progress() as live:
                own = images.ensure(client, base_from=base_from, trust=trust, progress=live)
            options = replace(options, base_image=own.base.tag, proxy_image=own.proxy.tag)
        with live_progress() as live:

            def on_step(event: pipeline.StepEvent) -> None:
                where = f"[{event.index}/{event.total}] " if event.total else ""
                live.step(f"{event.pack}: {where}{event.text}")

            outcomes = pipeline.replay_all(
                client, selected, options, jobs=jobs, progress=live, on_step=on_step
            )
    for outcome in outcomes:
        if outcome.run_dir:
            Path(outcome.run_dir, "report.json").write_text(report.to_json([outcome]), encoding="utf-8")
    if html_out is not None:  # the HTML report links to each run's view: RUN_DIR/view/index.html
        from runner.view.site import write_run_views

        write_run_views(
            zip(selected, outcomes, strict=True),
            warn=lambda t: err_console.print(f"warning: {t}", markup=False),
        )
    writers = ((json_out, report.to_json), (junit_out, report.to_junit), (markdown_out, report.to_markdown),
               (html_out, lambda o: report.to_html(o, base=html_out.parent if html_out else None)))  # fmt: skip
    for target, render in writers:
        if target is not None:
            text = render(outcomes)
            if str(target) == "-":
                print(text, end="")
            else:
                target.write_text(text, encoding="utf-8")
    if str(json_out) != "-":
        report.render_terminal(outcomes, console)
    # Everything is written and removed: the interpreter's exit need not walk the ~40k objects the imports
    # made looking for cycles to collect (a tenth of a second on a loaded 2-core machine).
    gc.freeze()
    raise typer.Exit(ExitCode(report.exit_code(outcomes)))
