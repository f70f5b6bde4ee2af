from __future__ import annotations

import xml.etree.ElementTree as ET

from runner.replay.report import to_junit
from tests.replay.report.outcomes import BAD, ERR, OK


def test_junit_is_valid_and_counts() -> None:
    root = ET.fromstring(to_junit([OK, BAD, ERR]))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='bad.tar.zst']/failure")
    assert failure is not None and "diverged at step s2" in failure.get("message", "")
    assert "+1 failed" in (failure.text or "")
