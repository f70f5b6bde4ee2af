"""The proxy program (proxy/main.py): mitmproxy with the cassette addon and only the addons it needs.

Each test runs it as a process, as the launchers do (the master installs log handlers process-wide).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAM = Path(__file__).parents[2] / "proxy" / "main.py"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # by path, it finds its package itself

LIST_ADDONS = """
import asyncio
from mitmproxy import options
from proxy.main import CassetteMaster

async def names():
    return [type(a).__name__ for a in CassetteMaster(options.Options()).addons.chain]

print(" ".join(asyncio.run(names())))
"""


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROGRAM), *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_each_event_goes_to_the_proxy_addons_only() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LIST_ADDONS],
        env={**os.environ, "PYTHONPATH": str(PROGRAM.parents[1])},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out == [
        "TermLog",
        "Core",
        "Block",
        "Proxyserver",
        "NextLayer",
        "TlsConfig",
        "DisableH2C",
        "FreezeHeap",
        "CassetteProxy",
        "ErrorCheck",
    ]


def test_run_by_path_from_any_folder_it_has_the_addon_built_in(tmp_path: Path) -> None:
    done = run(["--options"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cassette_mode: replay" in done.stdout
    assert "server_replay" not in done.stdout  # no playback addon loaded


def test_a_wrong_option_stops_it_with_one_line(tmp_path: Path) -> None:
    for setting, said in (
        ("cassette_mode=replya", "cassette_mode must be record or replay, not 'replya'"),
        (f"cassette_path={tmp_path / 'none.jsonl'}", "none.jsonl does not exist; record one first"),
    ):
        done = run(["--listen-host", "127.0.0.1", "--listen-port", "0", "--set", setting], tmp_path)
        assert done.returncode == 1
        assert said in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert "cassette proxy ready" not in done.stdout
