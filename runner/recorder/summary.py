"""What a recording produced, in one value and one line: the pack, its steps, spans and HTTP exchanges.

Inputs: the session's counts and the final manifest. Output: `RecordSummary` and its `line()`, which the
CLI prints after `wrote`; `warnings` are printed after it, one per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.pack import manifest as mf

__all__ = ["RecordSummary"]


@dataclass(frozen=True)
class RecordSummary:
    path: Path
    manifest: mf.Manifest
    spans: int
    exchanges: int
    failed: bool
    artifacts_kept: bool
    session_seconds: float
    build_seconds: float
    model_exchanges: int = 0
    warnings: tuple[str, ...] = ()  # what was not recorded, and the flag that records it

    def line(self) -> str:
        steps = self.manifest.steps
        patches = sum(1 for s in steps if isinstance(s, mf.PatchStep))
        return (
            f"{self.path}: {len(steps)} steps ({patches} patches, {len(steps) - patches} commands), "
            f"{self.spans} spans, {self.exchanges} HTTP exchanges ({self.model_exchanges} model calls), "
            f"artifacts {'kept' if self.artifacts_kept else 'metadata only'}"
            f"{', session failed' if self.failed else ''}"
        )
