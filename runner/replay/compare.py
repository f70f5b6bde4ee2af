"""Compare stage: recorded outputs against replayed ones.

Inputs: the expected and actual bytes of a stream or output file, and the named rules the manifest gives
for it. Output: a `Difference` (empty when they agree after normalisation) carrying a unified diff. A
whole step compares in one call: `compare_command` (a recorded `CommandStep` against what its replay
left, `Replayed`) and `compare_agent` (the tree a re-run agent left against the tree its patch makes, its exit code against the recorded one first; agent-private files such as chat
histories and logs, `DEFAULT_AGENT_PRIVATE` unless the user names others, are left out and reported).

Rules: exit codes compare exactly. Text streams compare after named normalisers that blank out what
legitimately changes between runs (durations, timestamps, temporary paths, memory addresses, ports) and
the secrets a redacted pack replaced by placeholders (`secrets`, added by the packer to the steps whose
recorded output it redacted).
JUnit XML compares by test outcomes, never by text. Normalisers are applied in a fixed order so two
rules never race on the same text.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from proxy.detectors import DETECTORS, EXTRA_DETECTORS
from proxy.redact import Redactor, collapse
from runner.pack.manifest import OUTPUT_RULES, CommandStep

__all__ = [
    "DEFAULT_AGENT_PRIVATE",
    "NORMALISERS",
    "Difference",
    "Replayed",
    "agent_private",
    "compare_agent",
    "compare_command",
    "compare_exit_code",
    "compare_file",
    "compare_text",
    "junit_outcomes",
    "normalise",
]

_Rule = Callable[[str], str]


def _subs(*rules: tuple[str, str] | tuple[str, str, tuple[str, ...]]) -> _Rule:
    """`re.sub` of each (pattern, replacement), in order; with a third item, only on texts holding one of
    those literals (every match holds one)."""
    compiled = tuple((re.compile(rule[0]), rule[1], rule[2] if len(rule) > 2 else ()) for rule in rules)

    def apply(text: str) -> str:
        for pattern, repl, literals in compiled:
            if not literals or any(literal in text for literal in literals):
                text = pattern.sub(repl, text)
        return text

    return apply


@functools.cache
def _secrets_redactor() -> Redactor:
    """Any key will do: only the kind survives `collapse`. The scan's redactor: the same results as the
    plain one, found through hyperscan (an output of megabytes would take the detectors seconds)."""
    from runner.privacy.scan import ScanRedactor

    return ScanRedactor(b"compare", DETECTORS + EXTRA_DETECTORS)


def _secrets(text: str) -> str:
    """Placeholders of a redacted pack and live secrets alike become `REDACTED_<kind>`, so a recorded
    output masked at packing time equals a replayed one holding any secret of the same kind."""
    return collapse(_secrets_redactor().text(text))


# Order matters: secrets first (their text holds digits and dashes the others would rewrite), uuids and
# timestamps before durations (a time of day contains digits and colons). Each pattern starts with a
# literal or a character class (Python's regexes search for those fast), the word boundary before it
# checked just after it (`0x(?<!\w0x)` is `\b0x`); the local hosts' ports only in texts naming one.
_HEX = "[0-9a-fA-F]"
_RULES: dict[str, _Rule] = {
    "secrets": _secrets,
    "uuids": _subs(
        (rf"{_HEX}(?<!\w{_HEX}){_HEX}{{7}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b", "<UUID>"),
    ),
    "timestamps": _subs(
        (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "<TIMESTAMP>"),
        (r"\d(?<!\w\d)\d:\d{2}:\d{2}(?:[.,]\d+)?\b", "<TIME>"),
        (r"1(?<!\w1)[5-9]\d{8}(?:\.\d+|\d{3,9})?\b", "<EPOCH>"),
    ),
    "durations": _subs(
        (r"\d(?<!\w\d)\d*(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|m|min|minutes?|h)\b", "<DURATION>"),
        (r"in(?<!\win) \d+(?:\.\d+)?s\b", "in <DURATION>"),
    ),
    "tmp_paths": _subs(
        (r"/(?:private/)?(?:tmp|var/tmp|var/folders)/[^\s'\":]+", "<TMP>"),
        (r"/pytest-of-[^/\s]+/pytest-\d+", "<TMP>"),
    ),
    "addresses": _subs(
        (r"0x(?<!\w0x)[0-9a-fA-F]{6,16}\b", "<ADDR>"),
    ),
    "ports": _subs(
        (
            r"((?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]|::1)):\d{2,5}\b",
            r"\1:<PORT>",
            ("localhost", "::1", ".0."),
        ),
        (r"port(?<!\wport) \d{2,5}\b", "port <PORT>"),
    ),
}

NORMALISERS: tuple[str, ...] = tuple(_RULES)
"""The normalisers in the order they are applied; the same names as `runner.manifest.NORMALISERS`."""


@dataclass(frozen=True)
class Difference:
    """What differs between recorded and replayed; `diff` is a unified diff, `summary` one line."""

    subject: str
    summary: str
    diff: str = ""


def normalise(text: str, rules: Iterable[str]) -> str:
    wanted = set(rules)
    unknown = wanted - set(_RULES)
    if unknown:
        raise ValueError(f"unknown normaliser(s) {sorted(unknown)}; valid: {', '.join(NORMALISERS)}")
    for name in NORMALISERS:  # fixed order, whatever order the manifest lists them in
        if name in wanted:
            text = _RULES[name](text)
    return text


def _unified(subject: str, expected: str, actual: str, limit: int = 200) -> str:
    lines = list(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"recorded/{subject}",
            tofile=f"replayed/{subject}",
        )
    )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... {len(lines) - limit} more diff lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare_exit_code(expected: int, actual: int) -> Difference | None:
    if expected == actual:
        return None
    return Difference("exit code", f"exit code {actual}, recorded {expected}")


def compare_text(subject: str, expected: bytes, actual: bytes, rules: Iterable[str]) -> Difference | None:
    if expected == actual:
        return None
    rules = tuple(rules)
    exp = normalise(expected.decode("utf-8", "replace"), rules)
    act = normalise(actual.decode("utf-8", "replace"), rules)
    if exp == act:
        return None
    changed = sum(1 for a, b in zip(exp.splitlines(), act.splitlines(), strict=False) if a != b)
    changed += abs(len(exp.splitlines()) - len(act.splitlines()))
    return Difference(subject, f"{subject} differs ({changed} line(s))", _unified(subject, exp, act))


def junit_outcomes(data: bytes) -> dict[str, str]:
    """Map `classname::name` to passed | failed | error | skipped; a parse error raises ValueError."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"not JUnit XML ({e})") from e
    outcomes: dict[str, str] = {}
    for case in root.iter("testcase"):
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in {"failure", "error", "skipped"}:
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                break
        outcomes[key] = outcome
    return outcomes


def _compare_junit(subject: str, expected: bytes, actual: bytes) -> Difference | None:
    try:
        exp = junit_outcomes(expected)
    except ValueError as e:
        return Difference(subject, f"{subject}: recorded file is {e}")
    try:
        act = junit_outcomes(actual)
    except ValueError as e:
        return Difference(subject, f"{subject}: replayed file is {e}")
    if exp == act:
        return None
    lines_exp = "".join(f"{k}: {v}\n" for k, v in sorted(exp.items()))
    lines_act = "".join(f"{k}: {v}\n" for k, v in sorted(act.items()))
    changed = sorted(k for k in exp.keys() | act.keys() if exp.get(k) != act.get(k))
    return Difference(
        subject,
        f"{subject}: {len(changed)} test outcome(s) differ, first {changed[0]}",
        _unified(subject, lines_exp, lines_act),
    )


def _compare_exact(subject: str, expected: bytes, actual: bytes) -> Difference | None:
    if expected == actual:
        return None
    return Difference(subject, f"{subject} differs ({len(expected)} bytes recorded, {len(actual)} replayed)")


_FILE_COMPARERS: Mapping[str, Callable[[str, bytes, bytes], Difference | None]] = {
    "exact": _compare_exact,
    "junit": _compare_junit,
}


def compare_file(
    subject: str, rule: str, expected: bytes, actual: bytes | None, text_rules: Iterable[str] = NORMALISERS
) -> Difference | None:
    """Compare a declared output file by its rule; a missing replayed file is always a difference."""
    if actual is None:
        return Difference(subject, f"{subject} was not produced")
    if rule == "text":
        return compare_text(subject, expected, actual, text_rules)
    try:
        comparer = _FILE_COMPARERS[rule]
    except KeyError:
        raise ValueError(f"unknown file rule {rule!r}; valid: {', '.join(sorted(OUTPUT_RULES))}") from None
    return comparer(subject, expected, actual)


@dataclass(frozen=True)
class Replayed:
    """What a replayed command left behind, read back for comparison."""

    exit_code: int | None  # None: killed at its timeout
    stdout: bytes = b""
    stderr: bytes = b""
    outputs: Mapping[str, bytes | None] = field(default_factory=dict)  # declared path -> bytes, None: absent


def compare_command(
    step: CommandStep, recorded: Callable[[str], bytes], replayed: Replayed
) -> tuple[Difference, ...]:
    """Every way a replayed command disagrees with its recording (empty: it reproduced); `recorded` reads
    an artifact of the pack by its digest. A command killed at its timeout is only that difference."""
    if replayed.exit_code is None:
        return (Difference("timeout", f"killed after its timeout of {step.timeout:g}s"),)
    found = [compare_exit_code(step.expect.exit_code, replayed.exit_code)]
    for name, digest, rules, actual in (
        ("stdout", step.expect.stdout, step.compare.stdout, replayed.stdout),
        ("stderr", step.expect.stderr, step.compare.stderr, replayed.stderr),
    ):
        if digest is not None:
            found.append(compare_text(name, recorded(digest), actual, rules))
    for rel, digest in step.expect.outputs.items():
        rule = step.compare.outputs.get(rel, "exact")
        found.append(
            compare_file(rel, rule, recorded(digest), replayed.outputs.get(rel), step.compare.stdout)
        )
    return tuple(d for d in found if d is not None)


# Files agents write for themselves (chat histories, logs, caches, trajectories): never part of the verdict.
DEFAULT_AGENT_PRIVATE: tuple[str, ...] = (
    ".aider*", "*.log", ".cache/", "__pycache__/", ".pytest_cache/", "*.traj", "*.traj.json",
    "trajectory*.json", ".mini-swe-agent*", ".gptme*",
)  # fmt: skip
_FILE_HEADER = re.compile(r"^diff --git a/(.*) b/(.*)$", re.MULTILINE)


def agent_private(path: str, globs: Iterable[str]) -> bool:
    """True when `path` (relative, `/`-separated) matches a glob: `dir/` matches a folder anywhere on the
    path, any other glob the whole path or its last part."""
    parts = path.split("/")
    for glob in globs:
        if glob.endswith("/"):
            if any(fnmatch.fnmatchcase(part, glob[:-1]) for part in parts[:-1]):
                return True
        elif fnmatch.fnmatchcase(path, glob) or fnmatch.fnmatchcase(parts[-1], glob):
            return True
    return False


def _file_chunks(git_diff: str) -> list[tuple[str, str]]:
    """(path, chunk) for each file of a `git diff`."""
    heads = list(_FILE_HEADER.finditer(git_diff))
    return [
        (head[2], git_diff[head.start() : heads[i + 1].start() if i + 1 < len(heads) else len(git_diff)])
        for i, head in enumerate(heads)
    ]


def _same_after_normalising(chunk: str) -> bool:
    """True when a file's changed lines differ only in what the command-output normalisers blank out."""
    if "\n@@" not in chunk or any(
        mark in chunk for mark in ("GIT binary patch", "\nnew file mode", "\ndeleted file mode", "\nold mode")
    ):
        return False  # only text changes of a file in both trees can be equal after normalising
    lines = chunk.splitlines()
    body = [ln for ln in lines if not ln.startswith(("---", "+++"))]
    removed = "\n".join(ln[1:] for ln in body if ln.startswith("-"))
    added = "\n".join(ln[1:] for ln in body if ln.startswith("+"))
    return normalise(removed, NORMALISERS) == normalise(added, NORMALISERS)


def _tail(text: str, lines: int = 15) -> str:
    return "".join(line + "\n" for line in text.rstrip().splitlines()[-lines:])


def compare_agent(
    git_diff: str,
    timed_out: bool,
    *,
    exit_code: int | None = 0,
    stderr: str = "",
    ignore: Iterable[str] = DEFAULT_AGENT_PRIVATE,
    recorded_exit: int | None = 0,
) -> tuple[tuple[Difference, ...], tuple[str, ...]]:
    """A re-run agent against its recording: `git_diff` runs from the recorded patch's tree to the tree the
    agent left (empty when they are equal). Returns the differences, the agent's failure first (an exit
    code other than the recorded one, `recorded_exit`, 0 when unknown, with the last lines of its stderr),
    and the agent-private files (`ignore`) left out of the comparison. A file whose changes only differ in
    what the normalisers blank out is not a difference."""
    if timed_out:
        last = _tail(stderr, 5)
        return (Difference("agent-failed", "the re-run agent was killed at its timeout", last),), ()
    ignore = tuple(ignore)
    ignored: list[str] = []
    kept: list[str] = []
    for path, chunk in _file_chunks(git_diff):
        if agent_private(path, ignore):
            ignored.append(path)
        elif not _same_after_normalising(chunk):
            kept.append(chunk)
    found: list[Difference] = []
    expected = 0 if recorded_exit is None else recorded_exit
    if exit_code is not None and exit_code != expected:
        last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "no stderr")
        was = f" (recorded: exit {expected})" if expected else ""
        found.append(
            Difference(
                "agent-failed", f"the re-run agent exited {exit_code}{was}: {last[:300]}", _tail(stderr)
            )
        )
    if kept:
        summary = f"the re-run agent's patch differs from the recorded one in {len(kept)} file(s)"
        found.append(Difference("patch", summary, "".join(kept)))
    return tuple(found), tuple(sorted(ignored))
