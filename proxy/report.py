"""The proxy's machine-readable report, written once when the proxy stops (the `done` hook).

Output (JSON, `"v": 1`): mode, cassette path, how many exchanges the cassette holds or received, how
many requests were served, every miss with its nearest recorded candidates and the matcher that failed
for each, the recorded exchanges never used, and every upstream connection replay refused (there
should be none). Written to a temporary file and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .match import Failure, Nearest
from .ready import MODES, Mode

__all__ = ["REPORT_VERSION", "Miss", "Report", "Unused", "read_report"]

REPORT_VERSION = 1


@dataclass(frozen=True)
class Miss:
    method: str
    url: str
    reason: str
    candidates: tuple[Nearest, ...]


@dataclass(frozen=True)
class Unused:
    index: int
    method: str
    url: str


@dataclass(frozen=True)
class Report:
    mode: Mode
    cassette: str
    exchanges: int  # in the cassette (replay) or written to it (record)
    served: int
    misses: tuple[Miss, ...] = ()
    unused: tuple[Unused, ...] = ()
    refused_upstream: tuple[str, ...] = ()  # host:port replay was asked to connect to, and refused

    def to_json(self) -> dict[str, Any]:
        return {"v": REPORT_VERSION, **asdict(self)}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.to_json(), handle, indent=2, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Report:
        if obj.get("v") != REPORT_VERSION:
            raise ValueError(f"proxy report version {obj.get('v')!r} is not supported")
        if obj["mode"] not in MODES:
            raise ValueError(f"proxy report mode {obj['mode']!r} is neither record nor replay")
        return cls(
            mode=obj["mode"],
            cassette=str(obj["cassette"]),
            exchanges=int(obj["exchanges"]),
            served=int(obj["served"]),
            misses=tuple(
                Miss(
                    method=m["method"],
                    url=m["url"],
                    reason=m["reason"],
                    candidates=tuple(
                        Nearest(
                            index=c["index"],
                            method=c["method"],
                            url=c["url"],
                            failed=tuple(Failure(**f) for f in c["failed"]),
                            already_served=c["already_served"],
                        )
                        for c in m["candidates"]
                    ),
                )
                for m in obj["misses"]
            ),
            unused=tuple(Unused(**u) for u in obj["unused"]),
            refused_upstream=tuple(obj["refused_upstream"]),
        )


def read_report(path: Path) -> Report:
    """Parse a report the proxy wrote; raises ValueError (or OSError) when it cannot."""
    with path.open(encoding="utf-8") as handle:
        obj = json.load(handle)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a proxy report")
    try:
        return Report.from_json(obj)
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a proxy report: missing or malformed {e}") from e
