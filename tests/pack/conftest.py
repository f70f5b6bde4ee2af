"""Shared fixture of the pack tests: one small pack with a patch step, a command step and a prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packfactory import command, make_pack, patch

DIFF = "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    steps = [
        patch("p1", DIFF, reason="fix"),
        command(
            "c1", ["pytest", "-q"], stdout=b"1 passed in 0.01s\n", outputs={"junit.xml": b"<testsuite/>"}
        ),
    ]
    return make_pack(
        tmp_path_factory.mktemp("small"), steps=steps, files={"prompts/0001-user.txt": b"fix it"}
    )
