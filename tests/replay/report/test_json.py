from __future__ import annotations

import json

from runner.replay.report import to_json
from tests.replay.report.outcomes import BAD, ERR, OK


def test_json_names_first_divergence() -> None:
    doc = json.loads(to_json([OK, BAD, ERR]))
    assert doc["summary"] == {"reproduced": 1, "diverged": 1, "error": 1}
    bad = doc["packs"][1]
    assert bad["first_divergence"] == "s2"
    assert bad["cause"] == "behaviour changed"
    assert bad["steps"][1]["differences"][0]["diff"].endswith("+1 failed\n")
