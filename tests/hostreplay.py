"""Re-run a pack's steps on this machine (no Docker): restore the workspace from the bundle and baseline,
apply the patches in order, run the commands, and compare with what was recorded. Tests use it to check
that recorded packs reproduce; `runner replay` does the same inside containers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from runner.pack import read as pack
from runner.pack.manifest import CommandStep, PatchStep
from runner.replay import compare, workspace


def rerun(pack_path: Path, work: Path, env: dict[str, str] | None = None) -> list[str]:
    """The differences found, one line each (empty: the pack reproduced)."""
    unpacked = pack.unpack(pack_path, work / "pack")
    m = unpacked.manifest
    baseline = unpacked.path / m.git.baseline_patch if m.git.baseline_patch else None
    ws = workspace.restore(unpacked.path / m.git.bundle, m.git.checkout, work / "ws", baseline)
    problems: list[str] = []
    for step in m.steps:
        if isinstance(step, PatchStep):
            workspace.apply_patch(ws, unpacked.path / step.patch)
            continue
        assert isinstance(step, CommandStep)
        proc = subprocess.run(
            list(step.argv), cwd=ws.path / step.cwd, env={**(env or os.environ), **step.env},
            capture_output=True, timeout=step.timeout, check=False,
        )  # fmt: skip
        outputs = {rel: _read(ws.path / step.cwd / rel) for rel in step.expect.outputs}
        replayed = compare.Replayed(proc.returncode, proc.stdout, proc.stderr, outputs)
        found = compare.compare_command(step, lambda digest: unpacked.artifact(digest).read_bytes(), replayed)
        problems += [f"{step.id}: {d.summary}" for d in found]
    return problems


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None
