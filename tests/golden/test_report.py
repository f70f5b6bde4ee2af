"""`runner report`: regrade saved run folders without containers, merge shards, refuse a bad report.json."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from runner.replay import report
from runner.replay.compare import Difference
from runner.replay.outcome import Cause, PackOutcome, StepOutcome, Verdict
from tests.golden.conftest import runner

OUTCOMES = [
    PackOutcome("a.tar.zst", Verdict.REPRODUCED, steps=(StepOutcome("s1", "command", True, "agreed"),)),
    PackOutcome(
        "b.tar.zst",
        Verdict.DIVERGED,
        steps=(
            StepOutcome(
                "s1", "command", False, "stdout differs", (Difference("stdout", "1 line", "-a\n+b\n"),)
            ),
        ),
        cause=Cause.BEHAVIOUR,
        warnings=("python 3.11.2 vs 3.11.9",),
    ),
    PackOutcome("c.tar.zst", Verdict.ERROR, error="manifest.yaml: bad", error_code=2),
]


def _save(runs: Path, outcome: PackOutcome, run: str = "20261125T120000") -> None:
    folder = runs / outcome.pack.removesuffix(".tar.zst") / run
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(report.to_json([outcome]))


def test_report_of_shard_folders_equals_the_report_of_one_folder(tmp_path: Path) -> None:
    for o in OUTCOMES:
        _save(tmp_path / "all", o)
    for i, o in enumerate(OUTCOMES):
        _save(tmp_path / f"shard-{i}", o)
    whole = runner("report", "all", "--markdown", "-", cwd=tmp_path)
    merged = runner("report", "shard-2", "shard-0", "shard-1", "--markdown", "-", cwd=tmp_path)
    assert whole.returncode == merged.returncode == 2, whole.stderr
    assert merged.stdout == whole.stdout == report.to_markdown(OUTCOMES)
    as_json = runner("report", "shard-1", "shard-0", "shard-2", "--json", "-", cwd=tmp_path)
    assert as_json.stdout == report.to_json(OUTCOMES)
    assert report.from_json(as_json.stdout) == OUTCOMES


def test_the_latest_run_of_a_pack_counts_and_exit_codes_follow_the_grading(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _save(runs, OUTCOMES[1], "20261125T120000")
    again = replace(OUTCOMES[0], pack="b.tar.zst")
    _save(runs, again, "20261125T120000-2")  # replayed again within the same second: now reproduced
    proc = runner("report", "runs", "--junit", "r.xml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'failures="0"' in (tmp_path / "r.xml").read_text()
    _save(runs, OUTCOMES[1], "20261125T130000")
    assert runner("report", "runs", cwd=tmp_path).returncode == 1


def test_a_bad_report_json_is_one_line_and_exit_2(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "p" / "20261125T120000"
    folder.mkdir(parents=True)
    for text, says in (
        ("{not json", "not JSON"),
        (json.dumps({"report_version": 9, "packs": []}), "expected report_version 1"),
        (json.dumps({"report_version": 1, "packs": [{"pack": 3, "verdict": "reproduced"}]}), "malformed"),
        (json.dumps({"report_version": 1, "packs": [{"pack": "p", "verdict": "great"}]}), "malformed"),
    ):
        (folder / "report.json").write_text(text)
        proc = runner("report", "runs", "--html", "r.html", cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout
        assert proc.stderr.count("\n") == 1 and "report.json" in proc.stderr and says in proc.stderr, (
            proc.stderr
        )
        assert not (tmp_path / "r.html").exists()
    assert runner("report", "nowhere", cwd=tmp_path).returncode == 2
