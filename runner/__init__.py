"""Flight recorder and hermetic replay runner for AI code-debugging agents."""

from __future__ import annotations

import gc

__version__ = "0.1.0"
__all__ = ["__version__", "finish"]


def finish() -> None:
    """A runner process's last step: what it allocated is left to the interpreter's exit, outside the garbage
    collector's final passes (about 30 ms less to leave after a command that read or wrote a pack)."""
    gc.freeze()
