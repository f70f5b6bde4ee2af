"""`runner view PACK|RUN_DIR...`: look at a recorded session and its replay in a browser.

Inputs: repro packs and replay run folders; `--out DIR` or `--port P`; `--key KEYRING` (served view only).
Outputs: a static site in DIR (works from file://), or the URL of a page served on 127.0.0.1 until Ctrl-C.
It opens nothing itself. Exit codes: 0, 2 for bad input (a bad pack or report.json, --key with --out),
3 for the environment (the port is taken).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli.common import handles_errors, say
from runner.errors import EnvironmentProblem, UsageError
from runner.privacy import crypto

__all__ = ["app"]

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
        list[Path], typer.Argument(metavar="PACK|RUN_DIR...", help="Repro packs and replay run folders.")
    ],
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
) -> None:
    from runner.view import serve, site

    if key is not None and out is not None:
        raise UsageError("--key reveals originals and cannot go into a static export; drop --key or --out")
    keyring = crypto.load_keyring(key) if key else None
    data = site.build(paths, keyring)
    if out is not None:
        say(f"wrote {site.write_site(data, out)}")
        return
    try:
        server = serve.make_server(site.page_files(data), port)
    except OSError as e:
        raise EnvironmentProblem(
            f"cannot listen on 127.0.0.1:{port} ({e.strerror}); pick another --port"
        ) from None
    url = f"http://{serve.HOST}:{server.server_address[1]}/"
    say(
        f"serving {len(data['sources'])} view(s) at {url} ({'REVEALED' if keyring else 'masked'}); Ctrl-C stops"
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        server.server_close()
