"""The recorder: turn an agent session into a repro pack.

Two ways in: the Python SDK (`with record(out=..., repo=..., agent=...) as session:`) for agents that can be
instrumented, and `runner record -- CMD` (`record_command`) for any agent process in any language.
"""

from __future__ import annotations

from runner.recorder.session import (
    PatchCapture,
    RecordOptions,
    RecordSummary,
    Session,
    TaskHandle,
    ToolResult,
    record,
)
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
