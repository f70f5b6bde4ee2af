"""What every format says of a pack in one line, and the one exit code for a set of outcomes.

Input: `PackOutcome`s. Output: a headline per pack; an exit code (gravest wins) for all of them; the
`runner view` command for a run folder.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from runner.replay.outcome import PackOutcome, Verdict, next_step

__all__ = ["exit_code", "headline", "next_lines", "view_command", "what_next"]


def exit_code(outcomes: Sequence[PackOutcome]) -> int:
    """0 when every pack reproduced; else the gravest: 3 environment, 2 bad pack, 1 diverged."""
    errors = {o.error_code for o in outcomes if o.verdict is Verdict.ERROR}
    if errors:
        return max(errors)
    return 1 if any(o.verdict is Verdict.DIVERGED for o in outcomes) else 0


def headline(o: PackOutcome) -> str:
    first = o.first_divergence
    if o.verdict is Verdict.REPRODUCED:
        return f"reproduced: {len(o.steps)} step(s) agreed with the recording"
    if o.verdict is Verdict.ERROR:
        return f"error: {o.error}"
    where = f"step {first.step_id}: {first.summary}" if first else "no step"
    return f"diverged at {where} (likely cause: {o.cause})"


def view_command(run_dir: str) -> str:
    """The command that shows a run folder in the browser (`runner view`), quoted for a shell."""
    return f"runner view {shlex.quote(run_dir)}"


def what_next(o: PackOutcome) -> str | None:
    """What to do about a diverged pack, in one sentence; None when it did not diverge."""
    if o.verdict is not Verdict.DIVERGED or o.cause is None:
        return None
    return next_step(o.cause)


def next_lines(outcomes: Sequence[PackOutcome]) -> list[str]:
    """The report's first lines: packs replayed without network isolation (--no-isolation), then, for each
    diverged pack, its cause, what happened and what to do next (a
    missed request with the nearest recorded one)."""
    exposed = [o.pack for o in outcomes if not o.isolated]
    lines = [
        f"NOT ISOLATED: {', '.join(exposed)} replayed with this machine's network (--no-isolation); "
        "a request the cassettes lack may have reached a real server"
    ] if exposed else []  # fmt: skip
    for o in outcomes:
        step = what_next(o)
        first = o.first_divergence
        if step is None or first is None:
            continue
        lines.append(f"{o.pack}: {o.cause}: {first.summary}")
        # One line per miss: a request body's difference can run to many lines (it is shown in full below).
        lines += [f"  missed: {_first_line(miss)}" for miss in o.cassettes.misses[:3]]
        lines.append(f"  next: {step}")
    return lines


def _first_line(text: str) -> str:
    head, _, rest = text.partition("\n")
    return f"{head} ..." if rest.strip() else head
