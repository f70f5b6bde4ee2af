"""The view of one replay run folder: the verdict per step, the first divergence, the cassette's use.

Input: a run folder as `runner replay` leaves it (`runs/<pack>/<run>/`: report.json, steps/ logs,
outputs/, proxy-report.json). Output: a JSON-able dict (`run_view`). Rules: report.json is read by
`runner.replay.report.load` (the one reader, which refuses a bad one with a UsageError naming it); logs
and outputs are capped texts; a proxy report that does not parse is shown as a note.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.replay.report.load import from_json
from runner.view.pack import read_text

__all__ = ["is_run_dir", "run_view"]

_MAX_REPORT = 64 << 20
_MAX_FILES = 500  # logs and outputs listed per run; a larger folder is cut with a note


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / "report.json").is_file()


def _files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    found = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return {p.relative_to(folder).as_posix(): read_text(p) for p in found[:_MAX_FILES]}


def _proxy_report(path: Path) -> Any:
    if not path.is_file():
        return None
    if path.stat().st_size > _MAX_REPORT:
        return {"error": f"{path.name} is larger than {_MAX_REPORT} bytes"}
    try:
        return json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (ValueError, RecursionError) as e:
        return {"error": f"{path.name} is not JSON: {e}"}


def run_view(run_dir: Path) -> dict[str, Any]:
    """Everything the page shows of one run folder."""
    report = run_dir / "report.json"
    if report.stat().st_size > _MAX_REPORT:
        raise UsageError(f"{report}: larger than {_MAX_REPORT} bytes; not a report.json of `runner replay`")
    outcomes = from_json(report.read_text(encoding="utf-8", errors="replace"), str(report))
    packs = []
    for o in outcomes:
        first = o.first_divergence
        data = asdict(o)
        data["verdict"] = o.verdict.value
        data["cause"] = o.cause.value if o.cause else None
        data["first_divergence"] = first.step_id if first else None
        packs.append(data)
    return {
        "kind": "run",
        "name": f"{run_dir.parent.name}/{run_dir.name}",
        "packs": packs,
        "logs": _files(run_dir / "steps"),
        "outputs": _files(run_dir / "outputs"),
        "proxy": _proxy_report(run_dir / "proxy-report.json"),
    }
