"""How close a fresh answer is to the recorded one: a score in [0, 1] per call, and what changed.

Inputs: the recorded `Answer` and the fresh one. Output: a frozen `CallScore`.
Rules (docs/drift.md says the same):
- text: difflib.SequenceMatcher ratio over word tokens (whitespace-split), 1.0 when both are empty;
- tools: the share of positions whose tool name and arguments (parsed JSON, compared as data) match,
  over the longer list; 1.0 when neither answer called a tool;
- finish: 1.0 when the finish reasons are equal, else 0.0;
- usage: 1 - |a - b| / max(a, b) over output tokens (bounded to [0, 1]); 1.0 when either side is unknown;
- the call's score is the weighted mean: text 0.5, tools 0.3, finish 0.1, usage 0.1.
A different reported model or system_fingerprint is named (`revision`) but does not lower the score.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from runner.drift.answers import Answer

__all__ = ["WEIGHTS", "CallScore", "score"]

WEIGHTS = {"text": 0.5, "tools": 0.3, "finish": 0.1, "usage": 0.1}


@dataclass(frozen=True)
class CallScore:
    score: float
    text: float
    tools: float
    finish: float
    usage: float
    revision: str | None = None  # "model gpt-x-0613 -> gpt-x-1106", when the provider reports a change


def _text(a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def _tools(a: Answer, b: Answer) -> float:
    longest = max(len(a.tool_calls), len(b.tool_calls))
    if not longest:
        return 1.0
    same = sum(1 for x, y in zip(a.tool_calls, b.tool_calls, strict=False) if x == y)
    return same / longest


def _usage(a: int | None, b: int | None) -> float:
    if a is None or b is None:
        return 1.0
    top = max(a, b)
    return 1.0 if top == 0 else max(0.0, 1.0 - abs(a - b) / top)


def _revision(recorded: Answer, fresh: Answer) -> str | None:
    changes = [
        f"{what} {old} -> {new}"
        for what, old, new in (
            ("model", recorded.model, fresh.model),
            ("system_fingerprint", recorded.fingerprint, fresh.fingerprint),
        )
        if old and new and old != new
    ]
    return "; ".join(changes) or None


def score(recorded: Answer, fresh: Answer) -> CallScore:
    parts = {
        "text": _text(recorded.text, fresh.text),
        "tools": _tools(recorded, fresh),
        "finish": 1.0 if recorded.finish_reason == fresh.finish_reason else 0.0,
        "usage": _usage(recorded.output_tokens, fresh.output_tokens),
    }
    total = round(sum(WEIGHTS[k] * v for k, v in parts.items()), 4)
    return CallScore(
        total,
        round(parts["text"], 4),
        round(parts["tools"], 4),
        parts["finish"],
        round(parts["usage"], 4),
        _revision(recorded, fresh),
    )
