from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import UsageError
from runner.replay.pipeline import select_packs


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
