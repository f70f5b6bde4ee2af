"""The re-run agent's files: where each goes back in the container, and hostile paths refused."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from runner.errors import PackError
from runner.replay.steps import _container_path


def test_home_paths_go_to_the_sandbox_users_home_and_absolute_ones_stay() -> None:
    assert _container_path("~/.config/io.datasette.llm/x.yaml") == PurePosixPath(
        "/tmp/.config/io.datasette.llm/x.yaml"
    )
    assert _container_path("/home/u/tools/agent.py") == PurePosixPath("/home/u/tools/agent.py")


@pytest.mark.parametrize("path", ["relative/agent.py", "~/../etc/passwd", "/tmp/../etc/shadow", ""])
def test_a_path_that_is_relative_or_climbs_is_a_bad_pack(path: str) -> None:
    with pytest.raises(PackError, match=r"agent\.command\.files"):
        _container_path(path)
