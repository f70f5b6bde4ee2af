"""The options of a recording session, in a module of their own: `runner record` builds them before the
agent starts, without importing the recorder's heavy parts (OpenTelemetry, the pack builder).

Input: keyword values (see the fields). Output: a frozen `RecordOptions`. Rules: every field has the
default a plain `record(...)` uses; `history` is checked when the session starts (gitstate.parse_history).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.recorder.assembly import ArtifactMode
    from runner.recorder.llm import TemperaturePolicy

__all__ = ["RecordOptions"]


@dataclass(frozen=True)
class RecordOptions:
    agent: str = "agent"
    agent_commit: str | None = None
    config_version: str | None = None
    http: bool = True  # start a recording proxy
    set_environ: bool = True  # put the proxy and trust variables in os.environ for the block
    artifacts: ArtifactMode = "all"
    slow_threshold: float | None = None  # seconds; a slower session keeps its artifacts
    seed: int = 424242  # set on every model call that gives none
    temperature_policy: TemperaturePolicy = "refuse"
    level: int = 3
    default_timeout: float = 600.0
    upstream_ca: Path | None = None  # the CA bundle verifying real servers (default: this machine's)
    record_loopback: bool = False  # also send requests to localhost through the proxy (local model servers)
    env_allow: tuple[str, ...] = ()  # variables replayed verbatim whatever their name or value
    env_secret: tuple[str, ...] = ()  # variables kept only as placeholders of their shape
    # Finish spans on a background thread as the session goes (on when an OTLP endpoint is set), rather
    # than all at the end, which keeps the agent's own thread free of recording work.
    live_spans: bool = False
    history: str | int = "base"  # what the git bundle carries: base (the base tree alone), full, or N commits
