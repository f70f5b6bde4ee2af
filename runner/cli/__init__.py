"""The `runner` command line: parses arguments, calls one stage verb, prints, and picks the exit code.

Only this module prints errors and chooses exit codes (see runner.errors for the tree):
0 every pack reproduced, 1 a replay diverged, 2 bad input, 3 environment problem.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from runner import __version__
from runner.engine import daemon as engine
from runner.engine import doctor, images
from runner.engine.doctor import render_checkup
from runner.engine.host import BuildTrust
from runner.errors import RunnerError, UsageError
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.progress import LiveLog

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True)
console = Console()

app = typer.Typer(
    name="runner",
    help="Record AI coding-agent sessions into repro packs and replay them hermetically in Docker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a short error (one or two lines, no traceback) and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn RunnerError into a one-line message and its exit code; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RunnerError as e:
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted; temporary containers and folders were removed", 130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"runner {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Record AI coding-agent sessions into repro packs and replay them hermetically in Docker."""


# --- engine and images -----------------------------------------------------------------------------------

images_app = typer.Typer(
    help="Build and list the runner's own images (offline base, proxy sidecar).", no_args_is_help=True
)
app.add_typer(images_app, name="images")

BASE_FROM_OPTION = typer.Option(
    None,
    "--base-from",
    envvar="RUNNER_BASE_FROM",
    metavar="IMAGE@sha256:DIGEST",
    help="Build the base FROM this digest-pinned registry image instead of debootstrapping it.",
)
CA_BUNDLE_OPTION = typer.Option(
    None,
    "--ca-bundle",
    exists=True,
    dir_okay=False,
    help="PEM bundle that pip inside builds trusts (default: $SSL_CERT_FILE, else $PIP_CERT).",
)


def _live() -> LiveLog:
    return LiveLog(err_console)


@app.command("doctor")
@handles_errors
def doctor_command(
    fix: bool = typer.Option(False, "--fix", help="Install/start the engine and build missing images."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
    base_from: str | None = BASE_FROM_OPTION,
    ca_bundle: Path | None = CA_BUNDLE_OPTION,
) -> None:
    """Check the Docker engine, the runner's images and Python libraries; exit 3 when something is missing.

    Example: runner doctor --fix
    """
    if as_json:
        found = doctor.check(fix, base_from=base_from, ca_bundle=ca_bundle)
        console.print_json(json.dumps(found.to_json()))
    else:
        with _live() as live:
            found = doctor.check(fix, base_from=base_from, ca_bundle=ca_bundle, progress=live)
        console.print(render_checkup(found))
    if not found.ok:
        raise typer.Exit(3)


@images_app.command("build")
@handles_errors
def images_build_command(
    base_from: str | None = BASE_FROM_OPTION,
    ca_bundle: Path | None = CA_BUNDLE_OPTION,
    force: bool = typer.Option(False, "--force", help="Rebuild even when the tags exist."),
) -> None:
    """Build the base and proxy images; an unchanged recipe is not rebuilt.

    Example: runner images build --ca-bundle /etc/ssl/certs/ca-certificates.crt
    """
    if base_from:
        images.check_base_from(base_from)
    trust = BuildTrust.from_host(ca_bundle)
    started = time.monotonic()
    with closing(engine.connect()) as client, _live() as live:
        built = images.ensure(client, base_from=base_from, trust=trust, force=force, progress=live)
    for ref in (built.base, built.proxy):
        state = "built" if ref.built else "up to date"
        console.print(f"{ref.tag}  {ref.id[:19]}  {state}", highlight=False)
    if not (built.base.built or built.proxy.built):
        console.print(f"images are up to date ({time.monotonic() - started:.1f}s)", highlight=False)


@images_app.command("list")
@handles_errors
def images_list_command(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    base_from: str | None = BASE_FROM_OPTION,
) -> None:
    """List the images the runner made; `*` marks those the current recipes call for.

    Example: runner images list --json
    """
    with closing(engine.connect()) as client:
        found = images.list_images(client, images.plan(base_from))
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(info) for info in found]))
        return
    table = Table("", "id", "size", "created", box=None)
    table.add_column("tag", no_wrap=True)
    for info in found:
        table.add_row(
            "*" if info.current else "", info.id.removeprefix("sha256:")[:12], f"{info.size / 1e6:.0f} MB", info.created[:16],
            ", ".join(info.tags),
        )  # fmt: skip
    console.print(table)


# --- pack: inspect and verify ---------------------------------------------------------------------


@app.command(
    "inspect",
    help="Summarise a repro pack: session, agent, model parameters, steps, artifacts, sizes.\n\n"
    "Example: runner inspect session.tar.zst --json",
)
@handles_errors
def inspect_cmd(
    pack: Annotated[Path, typer.Argument(metavar="PACK", help="The .tar.zst repro pack.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Privileged view: show the original value of every placeholder.")
    ] = False,
    key: Annotated[
        Path | None, typer.Option("--key", help="The tenant keyring (needed by --reveal).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="With --reveal: write the members here, decrypted, placeholders restored."
        ),
    ] = None,
) -> None:
    if reveal:
        _reveal(pack, key, out, as_json)
        return
    summary = pack_summary.inspect(pack)
    if as_json:
        print(json.dumps(pack_summary.summary_dict(summary), indent=2))
    else:
        console.print(pack_summary.render_summary(summary))


@app.command(
    "verify",
    help="Check every member hash and the manifest's root digest; exit 0 when intact, 2 otherwise.\n\n"
    "Example: runner verify session.tar.zst",
)
@handles_errors
def verify_cmd(
    pack: Annotated[Path, typer.Argument(metavar="PACK", help="The .tar.zst repro pack.")],
    pubkey: Annotated[
        Path | None,
        typer.Option("--pubkey", help="Also check signature.json against these public keys (KEYRING.pub)."),
    ] = None,
) -> None:
    report = pack_read.verify(pack)
    if not report.ok:
        raise fail(report.problem or f"{pack}: not a valid repro pack")
    console.print(
        f"ok {pack}: {report.members_checked} members, {report.content_bytes} bytes", highlight=False
    )
    if pubkey is not None:
        from runner.privacy import access, crypto

        check = access.verify_pack(pack, crypto.load_public_keys(pubkey))
        console.print(
            f"signature ok: key {check.key_id} (tenant {check.tenant}), root {check.root[:16]}..., "
            f"{check.subjects} members, signed {check.signed_at}",
            highlight=False,
        )


# --- cassette proxy -------------------------------------------------------------------------------

cassette_app = typer.Typer(help="Work with HTTP cassettes (cassettes/http.jsonl).", no_args_is_help=True)
app.add_typer(cassette_app, name="cassette")


@cassette_app.command("import")
@handles_errors
def cassette_import(
    source: Annotated[Path, typer.Argument(help="A vcrpy cassette (.yaml/.yml) or a HAR file (.har/.json).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The cassette to create.")] = Path(
        "cassettes/http.jsonl"
    ),
    redact_key: Annotated[
        str,
        typer.Option(
            "--redact-key", envvar="RUNNER_REDACT_KEY", help="Key of the secret placeholders (hex or text)."
        ),
    ] = "",
) -> None:
    """Import a vcrpy cassette or a HAR file as a replayable cassette, secrets redacted.

    Example: runner cassette import tests/cassettes/test_chat.yaml --out cassettes/http.jsonl
    """
    from runner.cassettes.importers import import_recording

    count = import_recording(source, out, redact_key)
    console.print_json(json.dumps({"imported": count, "out": str(out)}))


# ---------------------------------------------------------------------------------------------- debug


@app.command("debug")
@handles_errors
def debug_command(
    pack: Annotated[Path, typer.Argument(help="A repro pack (.tar.zst) or a plain traces.jsonl file.")],
    span: Annotated[str, typer.Option("--span", help="Id of the span to replay (16 hex digits).")],
    function: Annotated[
        str, typer.Option("--function", help="Code behind the span: module:function or module:Class.method.")
    ],
    mock: Annotated[
        list[str] | None,
        typer.Option("--mock", help="span_type=import.path: serve that type's recorded outputs. Repeatable."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state", help="Agent state for a Class.method: a checkpoint file or a typed JSON object."
        ),
    ] = None,
) -> None:
    """Replay the code behind one recorded span under pdb, with recorded responses served back.

    The function gets the span's recorded input, the clock starts at the span, random and uuid4 are seeded,
    and each --mock path returns the outputs recorded for its span type from that span on.

    Example: runner debug session.tar.zst --span 3f2a9c0d1e4b5a6f --function agent:Agent.step
    --mock llm=agent.llm.invoke --state before_step.ckpt
    """
    from runner.debugging import debug_pack

    mock_config: dict[str, str] = {}
    for item in mock or []:
        span_type, sep, path = item.partition("=")
        if not sep or not span_type or not path:
            raise UsageError(
                f"--mock {item!r} must look like span_type=import.path (e.g. llm=agent.call_llm)"
            )
        mock_config[span_type] = path
    debug_pack(pack, span, function, mock_config=mock_config, state_file=state)


# ---------------------------------------------------------------------------- privacy: keys, sign, store

keys_app = typer.Typer(help="Tenant keyrings: redaction, encryption and signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
store_app = typer.Typer(help="A local pack store with retention tiers and legal holds.", no_args_is_help=True)
app.add_typer(store_app, name="store")

KEY_OPTION = typer.Option("--key", help="The tenant keyring file (from `runner keys new`).")
STORE_OPTION = typer.Option("--store", envvar="RUNNER_STORE", help="The store folder.")


def _reveal(pack: Path, key: Path | None, out: Path | None, as_json: bool) -> None:
    from runner.privacy import access, crypto

    if key is None:
        raise UsageError("--reveal needs the tenant keyring: --key FILE")
    found = access.reveal(pack, crypto.load_keyring(key), out)
    if as_json:
        print(
            json.dumps(
                {"pack": str(pack), "out": str(out) if out else None, "secrets": [vars(s) for s in found]}
            )
        )
        return
    table = Table(title=f"{len(found)} redacted value(s)")
    for column in ("placeholder", "kind", "original value"):
        table.add_column(column, overflow="fold")
    for s in found:
        table.add_row(s.token, s.kind, s.value)
    console.print(table)
    if out:
        console.print(f"members decrypted and restored in {out}", highlight=False)


@keys_app.command("new")
@handles_errors
def keys_new(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the keys belong to.")],
    out: Annotated[
        Path, typer.Option("--out", help="Keyring file to create (0600); FILE.pub is written too.")
    ],
) -> None:
    """Create a tenant keyring: a redaction key, and an encryption + signing key pair.

    Example: runner keys new --tenant acme --out acme.keys
    """
    from runner.privacy import crypto

    if out.exists():
        raise UsageError(f"{out} exists; use `runner keys rotate {out}` to add a key")
    ring = crypto.new_keyring(tenant)
    pub = crypto.save_keyring(ring, out)
    console.print_json(json.dumps({"keyring": str(out), "public": str(pub), "key_id": ring.newest.id}))


@keys_app.command("rotate")
@handles_errors
def keys_rotate(
    keyring: Annotated[Path, typer.Argument(metavar="FILE", help="The keyring to rotate.")],
) -> None:
    """Add a new key that new packs use; old keys stay so old packs still open and verify.

    Example: runner keys rotate acme.keys
    """
    from runner.privacy import crypto

    ring = crypto.rotate(crypto.load_keyring(keyring))
    crypto.save_keyring(ring, keyring)
    console.print_json(json.dumps({"keyring": str(keyring), "key_ids": [k.id for k in ring.keys]}))


@app.command("sign")
@handles_errors
def sign_cmd(
    pack: Annotated[Path, typer.Argument(metavar="PACK", help="The .tar.zst repro pack to sign in place.")],
    key: Annotated[Path, KEY_OPTION],
) -> None:
    """Sign a pack's root digest (Ed25519, in-toto statement) into its signature.json.

    Example: runner sign session.tar.zst --key acme.keys && runner verify session.tar.zst --pubkey acme.keys.pub
    """
    from runner.privacy import access, crypto

    ring = crypto.load_keyring(key)
    signed = access.sign_pack(pack, ring)
    root = signed.integrity.root if signed.integrity else ""
    console.print(f"signed {pack}: root {root[:16]}... with key {ring.newest.id}", highlight=False)


@store_app.command("put")
@handles_errors
def store_put(
    packs: Annotated[list[Path], typer.Argument(metavar="PACK...", help="Packs to store.")],
    store: Annotated[Path, STORE_OPTION] = Path("pack-store"),
) -> None:
    """Verify and store packs under their root digest (storing one twice keeps one copy).

    Example: runner store put session.tar.zst --store /srv/packs
    """
    from runner.store.local import Store

    s = Store(store)
    print(json.dumps([s.put(p).to_dict() for p in packs], indent=2))


@store_app.command("list")
@handles_errors
def store_list(
    store: Annotated[Path, STORE_OPTION] = Path("pack-store"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """List stored packs with their tier and hold.

    Example: runner store list --store /srv/packs --json
    """
    from runner.store.local import Store

    entries = Store(store).entries()
    if as_json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    table = Table("id", "session", "added", "tier", "hold", box=None)
    for e in entries:
        table.add_row(e.id[:16], e.session, e.added_at, e.tier, e.hold.reason if e.hold else "")
    console.print(table)


@store_app.command("hold")
@handles_errors
def store_hold(
    id: Annotated[
        str, typer.Argument(metavar="ID", help="Root digest (or a unique prefix) of a stored pack.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why it must be kept (ticket, case).")],
    store: Annotated[Path, STORE_OPTION] = Path("pack-store"),
) -> None:
    """Put a stored pack under legal hold: gc never deletes or downgrades it until released.

    Example: runner store hold 3f2a9c0d --reason "incident 42" --store /srv/packs
    """
    from runner.privacy.audit import principal
    from runner.store.local import Store

    print(json.dumps(Store(store).hold(id, reason, principal()).to_dict(), indent=2))


@store_app.command("release")
@handles_errors
def store_release(
    id: Annotated[
        str, typer.Argument(metavar="ID", help="Root digest (or a unique prefix) of a stored pack.")
    ],
    store: Annotated[Path, STORE_OPTION] = Path("pack-store"),
) -> None:
    """Release a legal hold; retention applies again from the next gc.

    Example: runner store release 3f2a9c0d --store /srv/packs
    """
    from runner.store.local import Store

    print(json.dumps(Store(store).release(id).to_dict(), indent=2))


@store_app.command("gc")
@handles_errors
def store_gc(
    store: Annotated[Path, STORE_OPTION] = Path("pack-store"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be dropped; change nothing.")
    ] = False,
    full_days: Annotated[float, typer.Option("--full-days", help="Keep whole packs this long.")] = 7,
    traces_days: Annotated[
        float, typer.Option("--traces-days", help="Keep manifest + traces this long.")
    ] = 90,
    audit_days: Annotated[
        float, typer.Option("--audit-days", help="Keep the audit summary this long.")
    ] = 365,
) -> None:
    """Apply retention: whole pack, then manifest + traces, then audit summary only, then nothing.

    Example: runner store gc --store /srv/packs --dry-run
    """
    from runner.store.local import Retention, Store

    actions = Store(store).gc(Retention.from_days(full_days, traces_days, audit_days), dry_run=dry_run)
    print(json.dumps({"dry_run": dry_run, "actions": [vars(a) for a in actions]}, indent=2))


# --------------------------------------------------------------------------------------------- record


@app.command(
    "record",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@handles_errors
def record_cmd(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="PACK", help="Where to write the pack (.tar.zst).")
    ],
    repo: Annotated[Path, typer.Option("--repo", help="The git repository the agent works in.")] = Path("."),
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check", help="A shell command run after the agent and recorded as a step. Repeatable."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="Stop the agent after this many seconds.")
    ] = None,
    artifacts: Annotated[
        str,
        typer.Option(
            "--artifacts", help="all, or failing-only: keep blobs only for failing or slow sessions."
        ),
    ] = "all",
    slow_threshold: Annotated[
        float | None,
        typer.Option(
            "--slow-threshold", metavar="S", help="A session slower than S seconds keeps its artifacts."
        ),
    ] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="Do not start the recording proxy.")] = False,
    record_loopback: Annotated[
        bool,
        typer.Option("--record-loopback", help="Also record requests to localhost (local model servers)."),
    ] = False,
    upstream_ca: Annotated[
        Path | None,
        typer.Option("--upstream-ca", help="CA bundle verifying real servers (default: this machine's)."),
    ] = None,
    agent: Annotated[str, typer.Option("--agent", help="The agent's name in the manifest.")] = "agent",
) -> None:
    """Record any agent process into a repro pack: HTTP(S) through a recording proxy, the environment, the
    git base and dirty baseline, the agent's patch, and each --check command as a replayable step.

    Example: runner record --out fix.tar.zst --check "pytest -q" -- python my_agent.py --task fix-tests
    """
    from runner.recorder import RecordOptions, record_command

    argv = list(ctx.args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError(
            "no agent command: put it after --, e.g. runner record --out s.tar.zst -- python agent.py"
        )
    if artifacts not in ("all", "failing-only"):
        raise UsageError(f"--artifacts {artifacts!r}: use all or failing-only")
    options = RecordOptions(
        agent=agent,
        http=not no_http,
        artifacts=artifacts,  # type: ignore[arg-type]
        slow_threshold=slow_threshold,
        record_loopback=record_loopback,
        upstream_ca=upstream_ca,
    )
    result = record_command(argv, out, repo=repo, checks=check or [], timeout=timeout, options=options)
    summary = result.summary
    if result.interrupted:
        code = "interrupted"
    elif result.agent_exit_code is None:
        code = "killed at its --timeout"
    else:
        code = f"exit {result.agent_exit_code}"
    console.print(f"wrote {summary.line()}; agent {code}", highlight=False, soft_wrap=True)
    if result.interrupted:
        raise fail(f"interrupted: {summary.path} holds what was captured before Ctrl-C", 130)


# --- replay -----------------------------------------------------------------------------------------------


@app.command(
    "replay",
    help="Replay repro packs hermetically in Docker and diff every recorded command's outputs.\n\n"
    "Exit 0 when every pack reproduced, 1 when one diverged, 2 for a bad pack, 3 for an environment "
    "problem. Logs, outputs and report.json go to RUNS_DIR/<pack>/<run>/.\n\n"
    "Examples: runner replay session.tar.zst | runner replay packs/golden --jobs 2 --junit replay.xml",
)
@handles_errors
def replay_cmd(
    packs: Annotated[list[Path], typer.Argument(metavar="PACK...", help="Packs, or folders of *.tar.zst.")],
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
    allow_image_mismatch: Annotated[
        bool,
        typer.Option("--allow-image-mismatch", help="Replay even when the image differs from the pack's."),
    ] = False,
    base_from: str | None = BASE_FROM_OPTION,
    ca_bundle: Path | None = CA_BUNDLE_OPTION,
    key: Annotated[
        Path | None, typer.Option("--key", help="Tenant keyring: needed for packs with encrypted payloads.")
    ] = None,
) -> None:
    from runner.privacy import crypto
    from runner.replay import pipeline, report

    selected = pipeline.select_packs(packs, shard)
    keyring = crypto.load_keyring(key) if key else None
    trust = BuildTrust.from_host(ca_bundle)
    with closing(engine.connect()) as client:
        with _live() as live:
            own = images.ensure(client, base_from=base_from, trust=trust, progress=live)
        options = pipeline.ReplayOptions(
            base_image=own.base.tag, proxy_image=own.proxy.tag, runs_dir=runs_dir, keep=keep,
            keep_going=keep_going, allow_image_mismatch=allow_image_mismatch, trust=trust, rerun_agent=rerun_agent,
            keyring=keyring,
        )  # fmt: skip
        with _live() as live:

            def on_step(event: pipeline.StepEvent) -> None:
                where = f"[{event.index}/{event.total}] " if event.total else ""
                live.step(f"{event.pack}: {where}{event.text}")

            outcomes = pipeline.replay_all(
                client, selected, options, jobs=jobs, progress=live, on_step=on_step
            )
    for outcome in outcomes:
        if outcome.run_dir:
            Path(outcome.run_dir, "report.json").write_text(report.to_json([outcome]), encoding="utf-8")
    writers = ((json_out, report.to_json), (junit_out, report.to_junit), (markdown_out, report.to_markdown),
               (html_out, report.to_html))  # fmt: skip
    for target, render in writers:
        if target is not None:
            text = render(outcomes)
            if str(target) == "-":
                print(text, end="")
            else:
                target.write_text(text, encoding="utf-8")
    if str(json_out) != "-":
        report.render_terminal(outcomes, console)
    raise typer.Exit(report.exit_code(outcomes))


def main() -> None:
    app(prog_name="runner")


if __name__ == "__main__":
    main()
