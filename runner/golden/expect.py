"""Check a golden task's expectations against one repro pack, from what the pack recorded.

Inputs: a `GoldenTask`, a pack file (verified member by member when unpacked), optionally the `PackOutcome`
of replaying it. Output: a `GoldenResult`, one `ExpectationResult` per expectation, each held or failed
with the evidence in one line.
Rules (docs/golden.md, "What each expectation reads"):
- `patch_contains` / `patch_not_contains` look at the lines the pack's patch steps add (`+` lines), so
  removing a bad call never counts as containing it.
- `files_changed` / `max_files_changed`: the paths the patch steps touch.
- `tests_pass`: the command steps recorded after the last patch step (the task's checks) all exited 0; with
  a replay, those steps must also have reproduced.
- `max_model_calls` counts `llm` spans, `max_http_calls` `http` spans; `max_duration_s` is the session span's.
- The task's seed and temperature are enforced: every `llm` span that records one must carry the task's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.golden.task import GoldenTask
from runner.pack import read as pack_read
from runner.pack.model import CommandStep, Manifest, PatchStep
from runner.pack.traces import Span, read_spans
from runner.privacy.crypto import Keyring
from runner.replay.outcome import PackOutcome, Verdict

__all__ = ["ExpectationResult", "GoldenResult", "PackFacts", "check", "check_pack", "pack_facts"]


@dataclass(frozen=True)
class ExpectationResult:
    name: str
    held: bool
    detail: str


@dataclass(frozen=True)
class GoldenResult:
    task: str
    pack: str
    results: tuple[ExpectationResult, ...]

    @property
    def held(self) -> bool:
        return all(r.held for r in self.results)

    @property
    def failed(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.held)

    def lines(self) -> tuple[str, ...]:
        """One line per expectation: `held  ` or `FAILED`, its name and why."""
        return tuple(f"{'held  ' if r.held else 'FAILED'} {r.name}: {r.detail}" for r in self.results)


@dataclass(frozen=True)
class PackFacts:
    """What the expectations read from a pack, gathered in one pass."""

    added_lines: tuple[str, ...]
    files_changed: tuple[str, ...]
    checks: tuple[tuple[str, str, int], ...]  # (step id, command, recorded exit code) after the last patch
    llm_spans: tuple[Span, ...]
    http_calls: int
    duration_s: float | None
    agent_exit_code: int | None


def check_pack(
    task: GoldenTask, pack: Path, *, keyring: Keyring | None = None, replayed: PackOutcome | None = None
) -> GoldenResult:
    """Unpack `pack` (every member hash checked; PackError if bad) and check `task`'s expectations on it."""
    with tempfile.TemporaryDirectory(prefix="runner-golden-") as scratch:
        unpacked = pack_read.unpack(pack, Path(scratch) / "pack", keyring=keyring)
        facts = pack_facts(unpacked.path, unpacked.manifest)
    return check(task, facts, str(pack), replayed)


def pack_facts(root: Path, manifest: Manifest) -> PackFacts:
    added: list[str] = []
    changed: set[str] = set()
    last_patch = -1
    for i, step in enumerate(manifest.steps):
        if isinstance(step, PatchStep):
            last_patch = i
            text = (root / step.patch).read_text(encoding="utf-8", errors="replace")
            added += [ln[1:] for ln in text.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
            changed |= _paths(text)
    checks = tuple(
        (s.id, " ".join(s.argv[2:] if s.argv[:2] == ("/bin/sh", "-c") else s.argv), s.expect.exit_code)
        for s in manifest.steps[last_patch + 1 :]
        if isinstance(s, CommandStep)
    )
    spans = read_spans(root / "traces.jsonl")
    session = next((s for s in spans if s.span_type == "session"), None)
    agent_code = next(
        (
            s.attributes.get("runner.agent.exit_code")
            for s in spans
            if "runner.agent.exit_code" in s.attributes
        ),
        None,
    )
    return PackFacts(
        added_lines=tuple(added),
        files_changed=tuple(sorted(changed)),
        checks=checks,
        llm_spans=tuple(s for s in spans if s.span_type == "llm"),
        http_calls=sum(s.span_type == "http" for s in spans),
        duration_s=session.duration_ns / 1e9 if session and not session.is_open else None,
        agent_exit_code=agent_code if isinstance(agent_code, int) else None,
    )


def _paths(diff: str) -> set[str]:
    """The paths a unified git diff touches (its `---`/`+++` headers; /dev/null sides skipped)."""
    out: set[str] = set()
    for line in diff.splitlines():
        if line.startswith(("--- ", "+++ ")):
            name = line[4:].split("\t")[0].strip().strip('"')
            if name != "/dev/null" and name[:2] in ("a/", "b/"):
                out.add(name[2:])
    return out


def check(task: GoldenTask, facts: PackFacts, pack: str, replayed: PackOutcome | None = None) -> GoldenResult:
    """Every expectation of `task` over `facts`, in the order of the schema; seed and temperature last."""
    e = task.expect
    results: list[ExpectationResult] = []
    added = "\n".join(facts.added_lines)
    for text in e.patch_contains:
        held = text in added
        results.append(
            ExpectationResult(
                "patch_contains",
                held,
                f"the patch adds {text!r}"
                if held
                else f"no added line contains {text!r}"
                + ("" if facts.added_lines else " (the pack has no patch)"),
            )
        )
    for text in e.patch_not_contains:
        hit = next((ln for ln in facts.added_lines if text in ln), None)
        results.append(
            ExpectationResult(
                "patch_not_contains",
                hit is None,
                f"no added line contains {text!r}" if hit is None else f"the patch adds {hit.strip()!r}",
            )
        )
    if e.tests_pass is not None:
        results.append(_tests_pass(e.tests_pass, facts, replayed))
    if e.files_changed is not None:
        held = facts.files_changed == e.files_changed
        results.append(
            ExpectationResult(
                "files_changed",
                held,
                f"changed {_names(facts.files_changed)}; expected {_names(e.files_changed)}",
            )
        )
    results += _at_most("max_files_changed", len(facts.files_changed), e.max_files_changed, "file(s) changed")
    results += _at_most(
        "max_model_calls", len(facts.llm_spans), e.max_model_calls, "model call(s) (llm spans)"
    )
    results += _at_most("max_http_calls", facts.http_calls, e.max_http_calls, "HTTP call(s) (http spans)")
    if e.max_duration_s is not None:
        d = facts.duration_s
        held = d is not None and d <= e.max_duration_s
        shown = "no finished session span" if d is None else f"session took {d:.2f}s"
        results.append(ExpectationResult("max_duration_s", held, f"{shown}; at most {e.max_duration_s:g}s"))
    if e.agent_exit_code is not None:
        got = facts.agent_exit_code
        results.append(
            ExpectationResult(
                "agent_exit_code",
                got == e.agent_exit_code,
                f"the agent exited with {got if got is not None else 'no code (killed or not recorded)'}; "
                f"expected {e.agent_exit_code}",
            )
        )
    results.append(_enforced("seed", task.seed, facts.llm_spans))
    results.append(_enforced("temperature", task.temperature, facts.llm_spans))
    return GoldenResult(task.name, pack, tuple(results))


def _names(paths: Sequence[str]) -> str:
    return ", ".join(paths) if paths else "(none)"


def _at_most(name: str, got: int, limit: int | None, what: str) -> list[ExpectationResult]:
    if limit is None:
        return []
    return [ExpectationResult(name, got <= limit, f"{got} {what}; at most {limit}")]


def _tests_pass(wanted: bool, facts: PackFacts, replayed: PackOutcome | None) -> ExpectationResult:
    if not facts.checks:
        return ExpectationResult("tests_pass", False, "no test step recorded after the agent's patch")
    failing = [(cmd, code) for _, cmd, code in facts.checks if code != 0]
    passed = not failing
    detail = (
        f"{len(facts.checks)} test step(s) exited 0"
        if passed
        else "; ".join(f"`{cmd}` exited {code}" for cmd, code in failing)
    )
    if replayed is not None:
        ids = {sid for sid, _, _ in facts.checks}
        if replayed.verdict is Verdict.ERROR:
            return ExpectationResult("tests_pass", False, f"the replay failed: {replayed.error}")
        diverged = [s for s in replayed.steps if s.step_id in ids and not s.ok]
        missing = ids - {s.step_id for s in replayed.steps}
        if diverged or missing:
            why = diverged[0].summary if diverged else f"step {sorted(missing)[0]} was not replayed"
            return ExpectationResult("tests_pass", False, f"recorded: {detail}; replay: {why}")
        detail += "; the replay reproduced them"
    held = passed == wanted
    return ExpectationResult("tests_pass", held, detail if wanted else f"expected failing tests; {detail}")


def _enforced(name: str, wanted: float, spans: Sequence[Span]) -> ExpectationResult:
    key = f"gen_ai.request.{name}"
    values = [s.attributes[key] for s in spans if key in s.attributes]
    if not values:
        return ExpectationResult(name, True, f"no model call recorded a {name}; the task's is {wanted:g}")
    wrong = [v for v in values if not isinstance(v, int | float) or float(v) != float(wanted)]
    if wrong:
        return ExpectationResult(
            name,
            False,
            f"{len(wrong)} of {len(values)} model call(s) used {name} {wrong[0]!r}, not {wanted:g}",
        )
    return ExpectationResult(name, True, f"all {len(values)} model call(s) used {name} {wanted:g}")
