"""`runner view PACK|RUN_DIR...`: look at a recorded session and its replay in a browser.

Inputs: repro packs and replay run folders; `--out DIR` or `--port P`; `--key KEYRING` (served view only);
`--registry DIR` (or $RUNNER_CONFIG_REGISTRY) adds an Environments tab from a configuration registry.
Outputs: a static site in DIR (works from file://), or the URL of a page served on 127.0.0.1 until Ctrl-C.
It opens nothing itself. Exit codes: 0, 2 for bad input (a bad pack or report.json, --key with --out),
3 for the environment (the port is taken).
The served page's "Roll back" button POSTs to `/api/rollback`, which calls `runner.config.rollback`, the
code path of `runner rollback` (gate included, no --force); the wiring lives here because the view wing
sits below the config wing. An export shows the environments read-only: no token, no button.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from runner.cli.common import handles_errors, say
from runner.errors import ConfigError, EnvironmentProblem, RunnerError, UsageError

__all__ = ["app", "registry_snapshot", "rollback_action"]

app = typer.Typer()


@app.command(
    "view",
    help="See a session and its replay in a browser: spans on a timeline, prompts, commands, patches, "
    "divergences.\n\nServes the page on 127.0.0.1 (Ctrl-C stops it), or writes it as a static site with "
    "--out.\n\nExamples: runner view session.tar.zst | runner view session.tar.zst runs/session/20251124T134217 "
    "--out view/",
)
@handles_errors
def view_cmd(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[PACK|RUN_DIR]...", help="Repro packs and replay run folders."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write a static site here (a new or empty folder).")
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")
    ] = 0,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Tenant keyring: reveal the original values (served view only)."),
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option(
            "--registry",
            metavar="DIR",
            help="Configuration registry: an Environments tab (with Roll back buttons when served); "
            "default: $RUNNER_CONFIG_REGISTRY.",
        ),
    ] = None,
) -> None:
    from runner.config import ENV_VARIABLE
    from runner.privacy import crypto
    from runner.view import serve, site

    if key is not None and out is not None:
        raise UsageError("--key reveals originals and cannot go into a static export; drop --key or --out")
    root = registry or (Path(os.environ[ENV_VARIABLE]) if os.environ.get(ENV_VARIABLE) else None)
    keyring = crypto.load_keyring(key) if key else None
    if paths or root is None:
        data = site.build(list(paths or []), keyring)
    else:
        data = {"version": 1, "revealed": False, "sources": []}
    token = secrets.token_urlsafe(32)
    if root is not None:
        data["registry"] = registry_snapshot(root)
    if out is not None:
        say(f"wrote {site.write_site(data, out)}")
        return
    actions: dict[str, serve.Action] = {}
    if root is not None:
        data["registry"]["token"] = token  # served page only: the POST needs it
        actions["/api/rollback"] = rollback_action(root)
    try:
        server = serve.make_server(site.page_files(data), port, actions, token)
    except OSError as e:
        raise EnvironmentProblem(
            f"cannot listen on 127.0.0.1:{port} ({e.strerror}); pick another --port"
        ) from None
    url = f"http://{serve.HOST}:{server.server_address[1]}/"
    say(
        f"serving {len(data['sources'])} view(s){' and the environments of ' + str(root) if root else ''} "
        f"at {url} ({'REVEALED' if keyring else 'masked'}); Ctrl-C stops"
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        server.server_close()


def registry_snapshot(root: Path, history_limit: int = 20) -> dict[str, Any]:
    """What the Environments tab shows: each environment, its pointer, how its versions went live, its
    recent history (who, when, why, gate); and the versions with their descriptions."""
    from runner.config import history, open_registry

    current = open_registry(root)
    envs = []
    for name in sorted(current.environments):
        env = current.environments[name]
        moves = [
            {
                "commit": e.commit[:12],
                "who": e.who,
                "when": e.when,
                "subject": e.subject,
                "reason": e.reason,
                "gate": e.trailers.get("Runner-Gate", ""),
                "override": e.trailers.get("Runner-Override", ""),
            }
            for e in history(root, name, limit=history_limit)
        ]
        envs.append(
            {
                "name": name,
                "version": env.version,
                "live": [{"version": e.version, "gate": e.gate} for e in env.live],
                "last_gate": moves[0]["gate"] if moves else "",
                "history": moves,
            }
        )
    versions = [
        {"version": v, "description": str(c.data.get("description", ""))}
        for v, c in sorted(current.versions.items())
    ]
    return {
        "root": str(root), "head": current.head[:12], "gate": current.settings.gate is not None,
        "environments": envs, "versions": versions,
    }  # fmt: skip


def rollback_action(
    root: Path, runs_dir: Path = Path("runs")
) -> Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]:
    """The `/api/rollback` handler: `runner.config.rollback` (no --force), a required reason; a refused
    gate or a bad request changes nothing and answers with the message (and the gate report)."""
    from runner.cli.config import _replayer
    from runner.config import GateRefused, rollback

    def act(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        env, reason, to = body.get("environment"), body.get("reason"), body.get("to")
        if not isinstance(env, str) or not isinstance(reason, str) or not reason.strip():
            return 400, {
                "ok": False,
                "error": "name the environment and give a reason (it goes into the history)",
            }
        if to is not None and (not isinstance(to, int) or isinstance(to, bool)):
            return 400, {"ok": False, "error": "to: expected a version number"}
        try:
            move = rollback(root, env, to=to, reason=reason, replayer=_replayer(runs_dir))
        except GateRefused as e:
            return 409, {"ok": False, "error": str(e), "report": e.report.lines()}
        except ConfigError as e:
            return 409, {"ok": False, "error": str(e)}
        except RunnerError as e:
            return 400, {"ok": False, "error": str(e)}
        was = move.previous if move.previous is not None else "nothing"
        return 200, {
            "ok": True, "message": f"{move.environment}: {was} -> version {move.version}; commit {move.commit[:12]}",
            "report": move.report.lines(), "registry": registry_snapshot(root),
        }  # fmt: skip

    return act
