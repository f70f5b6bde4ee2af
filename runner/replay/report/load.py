"""Read saved replays back: the report.json of each run folder into `PackOutcome`s, for regrading and merging.

Input: run folders as `runner replay` leaves them (`RUNS_DIR/<pack>/<run>/report.json`), a RUNS_DIR, a run
folder or a report.json itself. Output: outcomes, one per pack, sorted by pack name, so the run folders of
N shards give the same report as the unsharded run. Rules: a report.json is untrusted text; a bad one is
one UsageError line naming the file; when a pack was replayed more than once, its latest run counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.replay.compare import Difference
from runner.replay.outcome import CassetteUsage, Cause, PackOutcome, StepOutcome, Verdict
from runner.replay.report.json import REPORT_VERSION

__all__ = ["from_json", "load_runs", "report_files"]

_MAX_REPORT = 64 << 20
_RUN = re.compile(r"(\d{8}T\d{6})(?:-(\d+))?")


def report_files(paths: Iterable[Path]) -> list[Path]:
    """Every report.json under `paths` (a RUNS_DIR, a pack's folder, a run folder or the file itself)."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif (path / "report.json").is_file():
            found.append(path / "report.json")
        elif path.is_dir():
            found += sorted(p for p in path.rglob("report.json") if p.is_file())
        else:
            raise UsageError(f"{path}: no such run folder")
    if not found:
        raise UsageError("no report.json under the folders given: name the --runs-dir of `runner replay`")
    return found


def _run_key(report: Path) -> tuple[str, int, str]:
    m = _RUN.fullmatch(report.parent.name)
    return (m.group(1), int(m.group(2) or 1), str(report)) if m else ("", 0, str(report))


def load_runs(paths: Iterable[Path]) -> list[PackOutcome]:
    """The latest outcome of each pack found under `paths`, sorted by pack name."""
    latest: dict[str, tuple[tuple[str, int, str], PackOutcome]] = {}
    for report in report_files(paths):
        key = _run_key(report)
        for outcome in from_json(_read(report), str(report)):
            if outcome.pack not in latest or latest[outcome.pack][0] < key:
                latest[outcome.pack] = (key, outcome)
    return [latest[name][1] for name in sorted(latest)]


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_REPORT + 1)
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})") from None
    if len(raw) > _MAX_REPORT:
        raise UsageError(f"{path}: larger than {_MAX_REPORT} bytes; not a report.json of `runner replay`")
    return raw.decode("utf-8", "replace")


def from_json(text: str, source: str = "report.json") -> list[PackOutcome]:
    """The outcomes of a JSON report (`to_json`'s output); UsageError naming `source` when it is not one."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise UsageError(f"{source}: not JSON ({e}); is this a report.json of `runner replay`?") from None
    if not isinstance(doc, dict) or doc.get("report_version") != REPORT_VERSION:
        raise UsageError(f"{source}: expected report_version {REPORT_VERSION}; not a report of this runner")
    packs = doc.get("packs")
    if not isinstance(packs, list):
        raise UsageError(f"{source}: packs: expected a list")
    try:
        return [_outcome(p) for p in packs]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{source}: a pack entry is malformed ({type(e).__name__}: {e})") from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _opt(value: Any) -> str | None:
    return None if value is None else _str(value)


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _step(d: dict[str, Any]) -> StepOutcome:
    kind = _str(d["kind"])
    if kind not in ("patch", "command"):
        raise ValueError(f"step kind {kind!r}")
    return StepOutcome(
        step_id=_str(d["step_id"]),
        kind="patch" if kind == "patch" else "command",
        ok=bool(d["ok"]),
        summary=_str(d["summary"]),
        differences=tuple(
            Difference(_str(x["subject"]), _str(x["summary"]), _str(x.get("diff", "")))
            for x in d["differences"]
        ),
        duration_s=_num(d.get("duration_s", 0.0)),
        log_dir=_opt(d.get("log_dir")),
        limit=_opt(d.get("limit")),
    )


def _outcome(d: dict[str, Any]) -> PackOutcome:
    usage = d.get("cassettes") or {}
    cause = d.get("cause")
    code = d.get("error_code", 3)
    if not isinstance(code, int) or code not in (2, 3):
        raise ValueError(f"error_code {code!r}")
    return PackOutcome(
        pack=_str(d["pack"]),
        verdict=Verdict(d["verdict"]),
        steps=tuple(_step(s) for s in d.get("steps", ())),
        cause=None if cause is None else Cause(cause),
        error=_opt(d.get("error")),
        error_code=code,
        warnings=tuple(_str(w) for w in d.get("warnings", ())),
        cassettes=CassetteUsage(
            served=int(usage.get("served", 0)),
            misses=tuple(_str(m) for m in usage.get("misses", ())),
            unused=int(usage.get("unused", 0)),
        ),
        run_dir=_opt(d.get("run_dir")),
        image=_opt(d.get("image")),
        duration_s=_num(d.get("duration_s", 0.0)),
        sandbox=_opt(d.get("sandbox")),
        backend=_opt(d.get("backend")),
        isolated=d.get("isolated", True) is not False,
    )
