from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import docker.errors
import pytest

from runner.errors import ExitCode, ProxyError, UsageError
from runner.replay.compare import Difference
from runner.replay.outcome import CassetteUsage, Cause, StepOutcome, Verdict
from runner.replay.pipeline import _Known, _verdict, select_packs
from runner.replay.steps import StepsResult


def _packs(tmp_path: Path, names: list[str]) -> list[Path]:
    out = []
    for name in names:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        out.append(p)
    return out


def test_select_packs_expands_folders_and_shards(tmp_path: Path) -> None:
    packs = _packs(tmp_path, [f"golden/p{i}.tar.zst" for i in range(5)] + ["golden/notes.txt"])
    assert select_packs([tmp_path / "golden"]) == packs[:5]
    shards = [select_packs([tmp_path / "golden"], f"{i}/2") for i in (1, 2)]
    assert shards == [[packs[0], packs[2], packs[4]], [packs[1], packs[3]]]
    with pytest.raises(UsageError, match="expected I/N"):
        select_packs([tmp_path / "golden"], "3/2")
    with pytest.raises(UsageError, match="no such pack"):
        select_packs([tmp_path / "missing.tar.zst"])
    with pytest.raises(UsageError, match="no packs to replay"):
        select_packs([])


PATCHED = StepOutcome("p1", "patch", True, "applied (patch-fuzz)")
DIVERGED = StepOutcome(
    "c1", "command", False, "stdout differs", (Difference("stdout", "stdout differs", "-a\n+b\n"),)
)


def test_verdict_is_decided_from_the_stages_values() -> None:
    known = _Known("a.tar.zst", Path("runs/a"), 0.0, image="img (cached)", warnings=("w-env",))
    ok = _verdict(known, CassetteUsage(served=2))
    assert (ok.verdict, ok.image, ok.warnings, ok.cassettes.served) == (
        Verdict.REPRODUCED, "img (cached)", ("w-env",), 2,
    )  # fmt: skip
    steps = StepsResult((PATCHED, DIVERGED), ("w-patch",), ("p1",))
    diverged = _verdict(replace(known, steps=steps), CassetteUsage())
    assert diverged.verdict is Verdict.DIVERGED and diverged.cause is Cause.PATCH
    assert diverged.warnings == ("w-env", "w-patch") and diverged.first_divergence == DIVERGED


def test_errors_keep_what_the_run_established() -> None:
    known = _Known("a.tar.zst", Path("runs/a"), 0.0, image="img (built)", steps=StepsResult((PATCHED,)))
    proxy = _verdict(known, error=ProxyError("the proxy sidecar wrote no report"))
    assert (proxy.verdict, proxy.error_code, proxy.steps, proxy.image) == (
        Verdict.ERROR, ExitCode.ENVIRONMENT, (PATCHED,), "img (built)",
    )  # fmt: skip
    engine = _verdict(known, error=docker.errors.APIError("gone"))
    assert engine.error_code == 3 and (engine.error or "").startswith("Docker engine error: ")
