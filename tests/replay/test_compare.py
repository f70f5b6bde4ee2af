from __future__ import annotations

import pytest

from runner.pack import manifest
from runner.replay.compare import (
    DEFAULT_AGENT_PRIVATE,
    NORMALISERS,
    Replayed,
    agent_private,
    compare_agent,
    compare_command,
    compare_exit_code,
    compare_file,
    compare_text,
    junit_outcomes,
    normalise,
)

PYTEST_RUN_A = b"""============ test session starts ============
platform linux -- Python 3.11.2, pytest-8.3.3
rootdir: /tmp/pytest-of-root/pytest-3/ws0
tests/test_calc.py ..                        [100%]
============ 2 passed in 0.12s ============
"""
PYTEST_RUN_B = PYTEST_RUN_A.replace(b"0.12s", b"0.31s").replace(b"pytest-3", b"pytest-9")


def test_equal_after_normalisers() -> None:
    assert compare_text("stdout", PYTEST_RUN_A, PYTEST_RUN_B, ["durations", "tmp_paths"]) is None


def test_difference_without_normalisers_has_readable_diff() -> None:
    diff = compare_text("stdout", PYTEST_RUN_A, PYTEST_RUN_B, [])
    assert diff is not None
    assert diff.summary == "stdout differs (2 line(s))"
    assert "-============ 2 passed in 0.12s" in diff.diff
    assert "+============ 2 passed in 0.31s" in diff.diff


def test_real_change_survives_normalisers() -> None:
    failed = PYTEST_RUN_A.replace(b"2 passed", b"1 failed, 1 passed")
    diff = compare_text("stdout", PYTEST_RUN_A, failed, NORMALISERS)
    assert diff is not None and "1 failed" in diff.diff


@pytest.mark.parametrize(
    ("rule", "a", "b"),
    [
        ("timestamps", "at 2024-05-01T10:11:12.123Z ok", "at 2026-11-25T01:02:03Z ok"),
        ("timestamps", "started 10:11:12", "started 23:59:01"),
        ("durations", "took 15ms", "took 230ms"),
        ("addresses", "<obj at 0x7f3a2b1c9d00>", "<obj at 0x7f00aa11bb22>"),
        ("ports", "listening on 127.0.0.1:43121", "listening on 127.0.0.1:8080"),
        ("tmp_paths", "wrote /tmp/tmpa1b2c3/out.txt", "wrote /tmp/tmpzz9/out.txt"),
        (
            "uuids",
            "request 1b4e28ba-2fa1-11d2-883f-0016d3cca427 done",
            "request 9f0c1d2e-aaaa-4bbb-8ccc-123456789abc done",
        ),
    ],
)
def test_each_normaliser(rule: str, a: str, b: str) -> None:
    assert a != b
    assert normalise(a, [rule]) == normalise(b, [rule])
    assert normalise(a, []) != normalise(b, [])


def test_normaliser_names_match_the_manifest() -> None:
    assert set(NORMALISERS) == manifest.NORMALISERS


def test_unknown_normaliser_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown normaliser"):
        normalise("x", ["nope"])


def test_exit_code() -> None:
    assert compare_exit_code(0, 0) is None
    diff = compare_exit_code(0, 1)
    assert diff is not None and diff.summary == "exit code 1, recorded 0"


JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="pytest" time="{t}">
<testcase classname="tests.test_calc" name="test_add" time="{t}"/>
<testcase classname="tests.test_calc" name="test_div" time="0.1">{fail}</testcase>
</testsuite></testsuites>"""


def test_junit_compares_outcomes_not_text() -> None:
    a = JUNIT.format(t="0.01", fail="").encode()
    b = JUNIT.format(t="0.93", fail="").encode()
    assert compare_file("junit.xml", "junit", a, b) is None
    c = JUNIT.format(t="0.01", fail='<failure message="boom"/>').encode()
    diff = compare_file("junit.xml", "junit", a, c)
    assert diff is not None
    assert "tests.test_calc::test_div" in diff.summary
    assert "+tests.test_calc::test_div: failed" in diff.diff
    assert junit_outcomes(c)["tests.test_calc::test_div"] == "failed"


def test_file_rules() -> None:
    assert compare_file("out.bin", "exact", b"a", b"a") is None
    assert compare_file("out.bin", "exact", b"a", b"b") is not None
    missing = compare_file("cov.xml", "exact", b"a", None)
    assert missing is not None and missing.summary == "cov.xml was not produced"
    broken = compare_file("junit.xml", "junit", JUNIT.format(t="1", fail="").encode(), b"<oops")
    assert broken is not None and "replayed file is not JUnit XML" in broken.summary
    with pytest.raises(ValueError, match="unknown file rule"):
        compare_file("x", "fuzzy", b"", b"")


def test_compare_command_checks_exit_code_streams_and_outputs_in_order() -> None:
    artifacts = {"out": PYTEST_RUN_A, "cov": b"<coverage/>"}
    step = manifest.CommandStep(
        "s2", ("pytest",), 60,
        manifest.Expectation(exit_code=0, stdout="out", outputs={"cov.xml": "cov"}),
        compare=manifest.Comparison(stdout=("durations", "tmp_paths")),
    )  # fmt: skip
    same = Replayed(0, PYTEST_RUN_B, b"", {"cov.xml": b"<coverage/>"})
    assert compare_command(step, artifacts.__getitem__, same) == ()
    worse = Replayed(1, PYTEST_RUN_A.replace(b"2 passed", b"1 failed"), b"", {"cov.xml": None})
    found = compare_command(step, artifacts.__getitem__, worse)
    assert [d.subject for d in found] == ["exit code", "stdout", "cov.xml"]
    timed_out = compare_command(step, artifacts.__getitem__, Replayed(None))
    assert [d.summary for d in timed_out] == ["killed after its timeout of 60s"]


def _file(path: str, old: str, new: str) -> str:
    return f"diff --git a/{path} b/{path}\nindex 1..2 100644\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n"


def test_compare_agent_counts_the_files_that_differ() -> None:
    assert compare_agent("", timed_out=False) == ((), ())
    diff = _file("x", "1", "2") + "diff --git a/y b/y\nold mode 100644\nnew mode 100755\n"
    (found,), ignored = compare_agent(diff, timed_out=False)
    assert found.subject == "patch" and "in 2 file(s)" in found.summary and found.diff == diff
    assert ignored == ()
    (killed,), _ = compare_agent("", timed_out=True, stderr="Waiting for input\n")
    assert killed.subject == "agent-failed" and "timeout" in killed.summary and "Waiting" in killed.diff


def test_a_failed_agent_comes_first_with_its_exit_code_and_last_stderr_line() -> None:
    stderr = "Traceback (most recent call last):\n  File agent.py\nKeyError: 'OPENAI_API_BASE'\n\n"
    found, _ = compare_agent(_file("src/a.py", "x = 1", "x = 2"), False, exit_code=1, stderr=stderr)
    assert [d.subject for d in found] == ["agent-failed", "patch"]
    assert found[0].summary == "the re-run agent exited 1: KeyError: 'OPENAI_API_BASE'"
    assert "Traceback" in found[0].diff


def test_the_recorded_exit_code_is_what_the_rerun_must_match() -> None:
    assert compare_agent("", False, exit_code=2, stderr="usage\n", recorded_exit=2) == ((), ())
    (other,), _ = compare_agent("", False, exit_code=0, stderr="", recorded_exit=2)
    assert other.subject == "agent-failed"
    assert other.summary == "the re-run agent exited 0 (recorded: exit 2): no stderr"
    (unknown,), _ = compare_agent("", False, exit_code=3, stderr="boom\n", recorded_exit=None)
    assert unknown.summary == "the re-run agent exited 3: boom"  # older packs: 0 was the recorded code


def test_agent_private_files_are_ignored_and_reported_and_volatile_text_normalised() -> None:
    diff = (
        _file(".aider.chat.history.md", "# 2026-01-01 10:00:00", "# 2026-11-25 17:00:00")
        + _file("logs/run.log", "a", "b")
        + _file("pkg/.cache/x.json", "a", "b")
        + _file("notes.md", "written at 2026-01-01T10:00:00Z", "written at 2026-11-25T17:00:00Z")
        + _file("trajectory.json", "a", "b")
    )
    found, ignored = compare_agent(diff, False, ignore=(".aider*", "*.log", ".cache/"))
    assert ignored == (".aider.chat.history.md", "logs/run.log", "pkg/.cache/x.json")
    (patch,) = found  # notes.md differs only in a timestamp: equal after normalising
    assert (
        "in 1 file(s)" in patch.summary and "trajectory.json" in patch.diff and "notes.md" not in patch.diff
    )
    _, defaults = compare_agent(diff, False)
    assert "trajectory.json" in defaults and ".aider.chat.history.md" in defaults


def test_agent_private_globs() -> None:
    assert agent_private("a/b/.cache/c", (".cache/",)) and not agent_private(".cache", (".cache/",))
    assert agent_private("deep/x.log", ("*.log",)) and not agent_private("x.py", DEFAULT_AGENT_PRIVATE)


# The normalisers as first written (each pattern tried at every character), the reference the faster
# forms in `compare` must agree with.
_REFERENCE = {
    "uuids": [(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<UUID>")],
    "timestamps": [
        (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "<TIMESTAMP>"),
        (r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<TIME>"),
        (r"\b1[5-9]\d{8}(?:\.\d+|\d{3,9})?\b", "<EPOCH>"),
    ],
    "durations": [
        (r"\b\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|m|min|minutes?|h)\b", "<DURATION>"),
        (r"\bin \d+(?:\.\d+)?s\b", "in <DURATION>"),
    ],
    "addresses": [(r"\b0x[0-9a-fA-F]{6,16}\b", "<ADDR>")],
    "ports": [
        (r"((?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]|::1)):\d{2,5}\b", r"\1:<PORT>"),
        (r"\bport \d{2,5}\b", "port <PORT>"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_each_normaliser_rewrites_what_its_reference_form_rewrites(seed: int) -> None:
    """Texts made of the pieces each rule looks for, run together with and without word characters
    around them (`x0x1234567`, `a1700000000`, `localhost::1:80`, `::1:8080`, digits in words)."""
    import random
    import re

    rnd = random.Random(seed)
    pieces = [
        "550e8400-e29b-41d4-a716-446655440000", "x550e8400-e29b-41d4-a716-446655440000", "2026-01-02T03:04:05.123Z",
        "2026-01-02 03:04:05+01:00", "12:34:56", "a12:34:56", "12:34:56,789", "1700000000", "1700000000.25",
        "x1700000000", "1700000000123", "3.5s", "12 ms", "7µs", "99min", "x12ms", "in 0.42s", "login 3s",
        "0x7ffdeadbeef", "a0x7ffdeadbeef", "0x12345", "localhost:8080", "127.0.0.1:5432", "[::1]:80",
        "::1:8080", "localhost::1:80", "0.0.0.0:99999", "port 8080", "export 8080", "passport 80", "1", "22",
        "-", ":", ".", " ", "\n", "é", "٣", "h", "s", "in", "port", "0x", "x",
    ]  # fmt: skip
    for _ in range(40):
        text = "".join(rnd.choice(pieces) + rnd.choice(["", "", " ", "_", "-", "\t"]) for _ in range(30))
        for rule, pairs in _REFERENCE.items():
            expected = text
            for pattern, repl in pairs:
                expected = re.sub(pattern, repl, expected)
            assert normalise(text, [rule]) == expected, (rule, text)
