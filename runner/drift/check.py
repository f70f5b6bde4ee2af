"""`runner drift`: re-send a sample of each pack's model calls and score the answers against the recording.

Inputs: packs, a `Provider`, a threshold and an optional sample size. Output: a `DriftReport` (a score
per call and per pack, the retries, the revisions the provider now reports), as JSON data or Markdown.
Rules:
- A pack's score is the mean of its calls' scores; the report fails when any call or pack falls under
  the threshold. A pack without model calls scores nothing and is named as such.
- `sample` takes that many calls per pack, spread evenly over the session (first and last included), so
  the same pack always gives the same sample.
- Retries (429, 5xx) are listed per call; they never change a score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from runner.drift.calls import ModelCall, model_calls, unpacked
from runner.drift.resend import Provider, resend
from runner.drift.score import CallScore, score
from runner.privacy.crypto import Keyring

__all__ = ["CallResult", "DriftReport", "PackResult", "check_packs", "markdown", "sample_calls"]


@dataclass(frozen=True)
class CallResult:
    number: int
    api: str
    model: str
    streamed: bool
    score: CallScore
    retries: tuple[str, ...]


@dataclass(frozen=True)
class PackResult:
    pack: str
    calls: tuple[CallResult, ...]
    total_calls: int  # before sampling

    @property
    def score(self) -> float | None:
        return round(sum(c.score.score for c in self.calls) / len(self.calls), 4) if self.calls else None


@dataclass(frozen=True)
class DriftReport:
    threshold: float
    packs: tuple[PackResult, ...]

    @property
    def failed(self) -> bool:
        return any(
            (p.score is not None and p.score < self.threshold)
            or any(c.score.score < self.threshold for c in p.calls)
            for p in self.packs
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "failed": self.failed,
            "packs": [
                {"pack": p.pack, "score": p.score, "total_calls": p.total_calls,
                 "calls": [asdict(c) for c in p.calls]}
                for p in self.packs
            ],
        }  # fmt: skip


def sample_calls(calls: Sequence[ModelCall], n: int | None) -> tuple[ModelCall, ...]:
    if n is None or n >= len(calls):
        return tuple(calls)
    if n <= 1:
        return tuple(calls[:n])
    step = (len(calls) - 1) / (n - 1)
    return tuple(calls[round(i * step)] for i in range(n))


def check_packs(
    packs: Sequence[Path],
    provider: Provider,
    threshold: float,
    sample: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] | None = None,
    keyring: Keyring | None = None,
) -> DriftReport:
    results: list[PackResult] = []
    with httpx.Client(follow_redirects=False) as client:
        for pack in packs:
            with unpacked(pack, keyring) as up:
                calls = model_calls(up)
            done: list[CallResult] = []
            for call in sample_calls(calls, sample):
                kwargs = {"sleep": sleep} if sleep is not None else {}
                fresh = resend(call, provider, client, **kwargs)
                s = score(call.answer, fresh.answer)
                model = provider.model or str(call.request.get("model", "?"))
                done.append(CallResult(call.number, call.api, model, call.streamed, s, fresh.retries))
                progress(f"{pack.name} call #{call.number}: {s.score:.3f}")
            results.append(PackResult(str(pack), tuple(done), len(calls)))
    return DriftReport(threshold, tuple(results))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: DriftReport) -> str:
    lines = [f"# Model drift (threshold {report.threshold})", ""]
    for p in report.packs:
        head = "no model calls" if p.score is None else f"score {p.score:.3f}"
        lines += [f"## {_cell(p.pack)}: {head} ({len(p.calls)} of {p.total_calls} calls re-sent)", ""]
        if not p.calls:
            continue
        lines += ["| call | api | model | score | text | tools | finish | usage | retries | revision |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in p.calls:
            s = c.score
            mark = " **under threshold**" if s.score < report.threshold else ""
            lines.append(
                f"| #{c.number}{' (stream)' if c.streamed else ''} | {c.api} | {_cell(c.model)} | "
                f"{s.score:.3f}{mark} | {s.text:.3f} | {s.tools:.3f} | {s.finish:.0f} | {s.usage:.3f} | "
                f"{', '.join(c.retries) or '-'} | {_cell(s.revision or '-')} |"
            )
        lines.append("")
    return "\n".join(lines)
