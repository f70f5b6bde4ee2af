"""Every debugging test runs in a temp folder (checkpoints, trace db) with `research_agent` importable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.debugging.recording import TESTS


@pytest.fixture(autouse=True)
def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in a temp folder (checkpoints, trace db) with the agent module importable as `research_agent`."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.chdir(tmp_path)
    yield
