"""JSON report: every outcome in full, with a summary by verdict and the first divergence named.

Input: `PackOutcome`s. Output: a JSON document (`report_version` 1), also written per run as report.json.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from runner.replay.outcome import PackOutcome, Verdict
from runner.replay.report.summary import what_next

__all__ = ["REPORT_VERSION", "to_json"]

REPORT_VERSION = 1


def _as_dict(outcome: PackOutcome) -> dict[str, Any]:
    data: dict[str, Any] = {"next_step": what_next(outcome), **asdict(outcome)}  # what to do, first
    first = outcome.first_divergence
    data["first_divergence"] = first.step_id if first else None
    return data


def to_json(outcomes: Sequence[PackOutcome]) -> str:
    summary = {v.value: sum(o.verdict is v for o in outcomes) for v in Verdict}
    doc = {"report_version": REPORT_VERSION, "summary": summary, "packs": [_as_dict(o) for o in outcomes]}
    return json.dumps(doc, indent=2, default=str) + "\n"
