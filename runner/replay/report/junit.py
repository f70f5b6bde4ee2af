"""JUnit XML report, for CI: one test case per pack; a divergence is a failure, an error an error.

Input: `PackOutcome`s. Output: a `<testsuites>` document holding one suite.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from runner.replay.outcome import PackOutcome, Verdict
from runner.replay.report.summary import headline

__all__ = ["to_junit"]


def to_junit(outcomes: Sequence[PackOutcome]) -> str:
    suite = ET.Element(
        "testsuite",
        name="runner replay",
        tests=str(len(outcomes)),
        failures=str(sum(o.verdict is Verdict.DIVERGED for o in outcomes)),
        errors=str(sum(o.verdict is Verdict.ERROR for o in outcomes)),
        time=f"{sum(o.duration_s for o in outcomes):.3f}",
    )
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname="replay", name=o.pack, time=f"{o.duration_s:.3f}")
        if o.verdict is Verdict.DIVERGED:
            first = o.first_divergence
            failure = ET.SubElement(case, "failure", message=headline(o))
            failure.text = "\n".join(d.diff or d.summary for d in (first.differences if first else ()))
        elif o.verdict is Verdict.ERROR:
            ET.SubElement(case, "error", message=o.error or "infrastructure error")
        if o.warnings:
            ET.SubElement(case, "system-out").text = "\n".join(o.warnings)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
