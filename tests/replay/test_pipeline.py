from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import UsageError
from runner.replay.compare import Difference
from runner.replay.outcome import CassetteUsage, Cause, StepOutcome
from runner.replay.pipeline import _likely_cause, _Run, select_packs


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


def _diff(expected: str, actual: str) -> Difference:
    return Difference(
        "stdout", "stdout differs", f"--- recorded/stdout\n+++ replayed/stdout\n-{expected}\n+{actual}\n"
    )


@pytest.mark.parametrize(
    ("step", "run", "usage", "cause"),
    [
        (StepOutcome("p", "patch", False, "x"), _Run("a", Path(".")), CassetteUsage(), Cause.PATCH),
        (
            StepOutcome("c", "command", False, "t", (Difference("timeout", "killed"),)),
            _Run("a", Path(".")),
            CassetteUsage(),
            Cause.TIMEOUT,
        ),
        (
            StepOutcome("c", "command", False, "d", (_diff("ok", "boom"),)),
            _Run("a", Path(".")),
            CassetteUsage(misses=("GET https://x/: no match",)),
            Cause.CASSETTE_MISS,
        ),
        (
            StepOutcome("c", "command", False, "d", (_diff("id 4711 at 0x7fa1", "id 4712 at 0x7fb2"),)),
            _Run("a", Path(".")),
            CassetteUsage(),
            Cause.NONDETERMINISTIC,
        ),
        (
            StepOutcome("c", "command", False, "d", (_diff("2 passed", "1 failed"),)),
            _Run("a", Path("."), warnings=["Python 3.11.7 was recorded"]),
            CassetteUsage(),
            Cause.ENVIRONMENT,
        ),
        (
            StepOutcome("c", "command", False, "d", (_diff("2 passed", "1 failed"),)),
            _Run("a", Path(".")),
            CassetteUsage(),
            Cause.BEHAVIOUR,
        ),
    ],
)
def test_likely_cause(step: StepOutcome, run: _Run, usage: CassetteUsage, cause: Cause) -> None:
    assert _likely_cause(step, run, usage) is cause
