"""The recorder: turn an agent session into a repro pack.

Two ways in: the Python SDK (`with record(out=..., repo=..., agent=...) as session:`) for agents that can be
instrumented, and `runner record -- CMD` (`record_command`) for any agent process in any language.
The names below are imported on first use: `runner record` starts the agent after importing only
runner.recorder.baseline and its light needs, and the rest (OpenTelemetry, the pack builder) meanwhile.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.recorder.options import RecordOptions
    from runner.recorder.session import PatchCapture, RecordSummary, Session, TaskHandle, ToolResult, record
    from runner.recorder.wrap import WrapResult, record_command

__all__ = [
    "PatchCapture",
    "RecordOptions",
    "RecordSummary",
    "Session",
    "TaskHandle",
    "ToolResult",
    "WrapResult",
    "record",
    "record_command",
]

_HOME = {"RecordOptions": "options", "WrapResult": "wrap", "record_command": "wrap"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME.get(name, 'session')}"), name)
    globals()[name] = value
    return value
