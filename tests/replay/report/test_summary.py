from __future__ import annotations

from runner.replay.report import exit_code
from tests.replay.report.outcomes import BAD, ERR, OK


def test_exit_codes() -> None:
    assert exit_code([OK]) == 0
    assert exit_code([OK, BAD]) == 1
    assert exit_code([OK, BAD, ERR]) == 3
