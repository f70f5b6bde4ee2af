"""The cassette proxy's program: mitmproxy running the cassette addon and only the addons a proxy needs.

Input: mitmdump's command line (`--listen-host`, `--listen-port`, `--set name=value`...; see
runner.cassettes.process.mitmdump_args), without `-s`: the addon is built in. Output: the running proxy,
until SIGTERM or SIGINT; exit code 1 when an option is wrong or startup logs an error (as mitmdump).
Run it by path (`python /opt/proxy/main.py ...`, this directory is imported as the package `proxy`) or
as `python -m proxy.main`.
Rules: mitmdump hands every event of every flow to its ~35 default addons and its flow dumper, most of
which (playback, map/modify, cookies, HAR, onboarding...) a cassette proxy never uses; here each event
goes to the few in ADDONS: options and commands (core), the client address check (block), the listener,
protocol detection and TLS interception with the given CA (proxyserver, next_layer, tlsconfig), h2c
refusal (disable_h2c), the start-up heap kept out of garbage collection (FreezeHeap), the cassette addon,
and the exit on startup errors (errorcheck). Its log goes to stdout as mitmdump's does (the ready line
included).
"""

from __future__ import annotations

import gc
import os
import sys

if __name__ == "__main__" and not __package__:
    # Run by path: the parent folder makes this one the package `proxy` (its files are not top-level modules).
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from collections.abc import Callable, Sequence
from typing import Any, cast

from mitmproxy import master, options
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    errorcheck,
    next_layer,
    proxyserver,
    tlsconfig,
)
from mitmproxy.tools import cmdline
from mitmproxy.tools import main as tools_main

from proxy.addon import CassetteProxy

__all__ = ["ADDONS", "CassetteMaster", "FreezeHeap", "main"]


class FreezeHeap:
    """Once the proxy starts, everything loaded so far (mitmproxy, the cassette and its index) is moved out
    of the garbage collector's reach: no full collection walks a large cassette in the middle of a request
    (a 10,000-exchange cassette: 0.1-0.3 s). Before the addon's ready line, so no request waits for it;
    without a collection first (that would take as long), the little cyclic garbage of start-up stays."""

    def running(self) -> None:
        gc.freeze()


ADDONS: tuple[Callable[[], object], ...] = (
    core.Core,
    block.Block,
    proxyserver.Proxyserver,
    next_layer.NextLayer,
    tlsconfig.TlsConfig,
    disable_h2c.DisableH2C,
    FreezeHeap,
    CassetteProxy,
    errorcheck.ErrorCheck,
)


class CassetteMaster(master.Master):
    """mitmproxy's master with the terminal log and ADDONS, in that order."""

    def __init__(self, opts: options.Options) -> None:
        super().__init__(opts, with_termlog=True)
        add = cast("Callable[..., None]", self.addons.add)  # AddonManager.add(self, *addons)
        add(*(make() for make in ADDONS))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse mitmdump's arguments, run the proxy until it is stopped."""
    run = cast("Callable[..., Any]", tools_main.run)  # run(master_cls, make_parser, arguments, extra=None)
    run(CassetteMaster, cmdline.mitmdump, sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    main()
