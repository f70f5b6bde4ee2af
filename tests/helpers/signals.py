"""Signals in the processes tests start."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """A `preexec_fn`: SIGINT at its default in the child, as a shell starts a command in the foreground. A
    test run started in the background (`cmd &` in a script, as a CI job may be) hands every process SIGINT
    ignored, an ignored signal stays ignored across exec, and Python then leaves it so: a Ctrl-C test would
    send a signal the replay never sees."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
