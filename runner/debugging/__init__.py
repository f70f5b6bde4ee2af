"""Time-travel debugging: checkpoints of agent state at a span, and replays that start from them.

Inputs: an agent object, a `Trace` (live from `TracerProvider`, or a pack's traces.jsonl) and a span id.
Outputs: `Checkpoint` values and files, replays (plain, under pdb, or counterfactual) and `CheckpointDiff`s.

The package in four modules: `checkpoints` (values, files, workspace trees, diffs, rebuilding agents),
`determinism` (fixed clock, seeded random/uuid4, mocked import paths and their responders), `engine`
(`ReplayEngine`: replaying recorded spans into code, under pdb too) and `packs` (`debug_pack`, reading a
pack's traces through the verified unpack). This module only re-exports their public names.
"""

from __future__ import annotations

from runner.debugging.checkpoints import (
    CHECKPOINT_FORMAT_VERSION,
    Checkpoint,
    CheckpointDiff,
    CheckpointManager,
    StateChange,
    WorkspaceState,
    capture_workspace,
    compare_checkpoints,
)
from runner.debugging.determinism import (
    CounterfactualCall,
    CounterfactualReport,
    DeterministicExecutionContext,
    MockCall,
    Responder,
    serve_in_order,
)
from runner.debugging.engine import ReplayEngine, TraceLookup
from runner.debugging.packs import debug_pack

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointDiff",
    "CheckpointManager",
    "CounterfactualCall",
    "CounterfactualReport",
    "DeterministicExecutionContext",
    "MockCall",
    "ReplayEngine",
    "Responder",
    "StateChange",
    "TraceLookup",
    "WorkspaceState",
    "capture_workspace",
    "compare_checkpoints",
    "debug_pack",
    "serve_in_order",
]
