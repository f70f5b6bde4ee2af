"""The hyperscan prefilter changes nothing but speed: `ScanRedactor` gives the plain `Redactor`'s results."""

from __future__ import annotations

import base64
import hashlib
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detectors import DETECTORS, EXTRA_DETECTORS, Detector
from proxy.redact import Redactor
from runner.privacy.scan import ScanRedactor, _Database, _database, _first_end, _hs_pattern
from tests.helpers.secret_corpus import corpus

KEY = b"k" * 32
PLANTED = corpus()
NOISE = [
    "2026-01-01T00:00:01Z INFO request handler ok token retry id=abc",
    "    def handler(self, token: int) -> None:  # cache miss",
    '{"ts": 1764000000, "span": "0123456789abcdef", "msg": "session pool worker"}',
    "tests/test_cache.py::test_12 PASSED [ 12%]",
    "naïve café — 日本語 İstanbul pa\u017f\u017fword KEY",
    "",
]


def both(text: str, detectors: tuple[Detector, ...] = DETECTORS) -> tuple[str, str, list[str], list[str]]:
    seen_plain: list[str] = []
    seen_scan: list[str] = []
    plain = Redactor(KEY, detectors, lambda kind, value, token: seen_plain.append(token)).text(text)
    fast = ScanRedactor(KEY, detectors, lambda kind, value, token: seen_scan.append(token)).text(text)
    return plain, fast, sorted(seen_plain), sorted(seen_scan)


def padded(lines: list[str]) -> str:
    """Enough lines of noise around `lines` that the text takes the scanning path."""
    return "\n".join([*NOISE * 20, *lines, *NOISE * 20]) + "\n"


@pytest.mark.parametrize("detectors", [DETECTORS, DETECTORS + EXTRA_DETECTORS], ids=["default", "strict"])
def test_every_planted_secret_gives_the_same_text_and_the_same_findings(
    detectors: tuple[Detector, ...],
) -> None:
    plain, fast, found_plain, found_scan = both(padded([p.context for p in PLANTED]), detectors)
    assert fast == plain
    assert found_scan == found_plain
    for p in PLANTED:
        if p.kind != "base64":
            assert p.value not in fast


def test_each_planted_secret_alone_in_noise_is_found() -> None:
    for p in PLANTED:
        plain, fast, _, _ = both(padded([f"x {p.context} y"]))
        assert fast == plain, p.kind


def test_member_bytes_not_utf8_come_back_unchanged_around_placeholders() -> None:
    secret = next(p for p in PLANTED if p.kind == "openai-key")
    data = padded(["é latin-1 line", f"key {secret.context} end"]).encode("latin-1", "replace")
    data += random.Random(3).randbytes(4096) + b"\n" + secret.context.encode() + b"\n"
    plain = Redactor(KEY, DETECTORS).blob(data)
    assert ScanRedactor(KEY, DETECTORS).redact(data) == plain != data


def test_a_secret_next_to_a_placeholder_is_judged_as_the_plain_redactor_does() -> None:
    line = "REDACTED_openai-key_0123456789abcdefsk-proj-" + "a" * 30 + " and user@example.com"
    plain, fast, _, _ = both(padded([line]))
    assert fast == plain


@pytest.mark.parametrize("end", ["$", r"\Z", r"\b"])
def test_a_secret_ending_where_a_placeholder_starts_is_judged_as_the_plain_redactor_does(end: str) -> None:
    # The scan puts a line break where each placeholder is: `$` (scanned multi-line) and `\b` hold there as
    # at the end of a part; a pattern asserting the end of the whole text has its parts scanned one by one.
    edge = (Detector("custom", re.compile(r"zz\d{3}" + end), ("zz",)), *DETECTORS)
    line = "REDACTED_custom_0123456789abcdefzz123REDACTED_0123456789abcdefzz"
    plain, fast, found_plain, found_scan = both("ok\n" * 200 + line + "\n", edge)  # ASCII: scanned
    assert fast == plain and found_scan == found_plain
    assert "zz123" not in fast


def test_a_secret_is_reported_by_the_scan_once_not_at_every_character() -> None:
    # `Bearer x{8,}` in hyperscan reports every end; each report is a Python call.
    ends: list[int] = []
    db = _database(DETECTORS)
    line = b"Authorization: Bearer sk-proj-" + b"a" * 40 + b" to dev@example.com\n"
    db.db.scan(line, match_event_handler=lambda *hit: ends.append(hit[2]), scratch=db.scratch(db.db))
    assert len(ends) == 3  # bearer, openai-key, email
    assert _first_end(r"x(?P<s>[^\s\"']{3,})") == r"x(?P<s>[^\s\"']{3})"
    assert _first_end(r"x[a-z\s]+") == r"x[a-z\s]+"  # the class takes a newline: the line could differ


def test_an_optional_character_before_a_class_joins_it_in_the_scan() -> None:
    def hs(source: str) -> str:
        return _hs_pattern(re.compile(source)).decode()

    assert hs(r"\d{3}\)?[ .-]\d{3}") == r"\d{3}[\) .-]{1,2}\d{3}"
    assert hs(r"[\)?[ab]x") == r"[\)?[ab]x"  # inside a class: the same
    assert hs(r"\)?[ab]+x") == r"\)?[ab]+x"  # a repeated class: the same
    assert hs(r"\x41?[ab]") == r"\x41?[ab]"  # an escape that is no single character: the same


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["", "("]),
    st.text(alphabet="0123456789", min_size=3, max_size=3),
    st.sampled_from([" ", ".", "-", ") ", ").", ")-", ")", " )", ""]),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
    st.sampled_from(["", " ", "x", "-", "\n"]),
)
def test_phone_numbers_are_judged_as_the_plain_redactor_does(
    open_: str, area: str, gap: str, rest: str, after: str
) -> None:
    line = f"call {open_}{area}{gap}{rest[:3]}-{rest[3:]}{after} today"
    plain, fast, found_plain, found_scan = both(padded([line]))
    assert fast == plain
    assert found_scan == found_plain


def test_multi_line_detectors_and_whole_base64_texts_take_the_plain_path() -> None:
    key = next(p for p in PLANTED if p.kind == "private-key")
    plain, fast, _, _ = both(padded([key.context]))
    assert fast == plain and key.value not in fast
    blob = base64.b64encode(("password=hunter2-secret\n" + "x" * 600).encode()).decode()
    plain, fast, _, _ = both(blob + "\n")
    assert fast == plain != blob + "\n"
    known = (Detector("credential", re.compile(re.escape("line one\nline two"))), *DETECTORS)
    plain, fast, _, _ = both(padded(["line one", "line two"]), known)
    assert fast == plain and "line one\nline two" not in fast


def test_unicode_case_folding_digits_and_spaces_count_as_python_counts_them() -> None:
    # KELVIN SIGN matches `k` under re.I, Arabic-Indic digits match `\d`, NBSP is `\s`: bytes the scan's
    # ASCII classes do not see, so lines holding them go to the detectors.
    lines = [
        "api_\u212aey=Sup3rSecretValue99",
        "call +1 \u0662\u0663\u0664 \u0665\u0666\u0667 \u0668\u0669\u0660\u0660",
    ]
    plain, fast, _, _ = both(padded(lines))
    assert fast == plain
    assert "Sup3rSecretValue99" not in plain


def test_a_long_line_full_of_hits_is_redacted_once() -> None:
    text = "password=" + "a" * 100_000 + "\n" + "user@example.com " * 2000 + "\n" + "ok\n" * 1000
    plain, fast, _, _ = both(text)
    assert fast == plain


def test_lines_with_many_hits_each_then_secrets_on_the_next_lines_are_all_judged() -> None:
    # The scan stops after a few hits on a line and resumes after it: the lines after must still be seen.
    busy = "    def f(self, token: int, password: str, secret: bool, api_key: bytes) -> None:  # token: x"
    secrets = [p.context for p in PLANTED]
    lines = [line for pair in zip([busy] * len(secrets), secrets, strict=True) for line in pair]
    plain, fast, found_plain, found_scan = both(padded([busy * 50, *lines, busy]))
    assert fast == plain
    assert found_scan == found_plain


TYPED = [
    "    def f(self, token: int) -> None:",
    "token: INT) y",
    "token: intx",
    "token: int_value",
    "token: int.x and token: int-x",
    "token = flo)",
    "token = flo",
    "token = floats",
    'password: "int" x',
    'password: "int value"',
    'password: " secret value"',
    "password: 'str'",
    'token: str = "abcdef123"',
    "api_key: Optional[str] = None",
    "api_key: Optional[str] = 'sEcr3tValue'",
    "token: float",
    'token: Path("/x")',
    "secret = bytesx",
    "secret = SecretStrValue",
    "secret = Sequ",
    'secret=\\"bytearray9\\"',
    "token: in",
    "token: int",
]


@pytest.mark.parametrize("line", TYPED)
def test_values_starting_with_a_type_name_are_judged_as_the_plain_redactor_does(line: str) -> None:
    plain, fast, found_plain, found_scan = both(padded([line]))
    assert fast == plain
    assert found_scan == found_plain
    plain, fast, found_plain, found_scan = both(padded([line]).rstrip("\n") + "\n" + line)  # at the end
    assert fast == plain


def test_annotated_parameters_are_not_flagged_by_the_scan() -> None:
    # `token: int` was the commonest line the detectors had to look at for nothing.
    data = (
        b"    def f(self, token: int, password: str, secret: bool, api_key: Optional[str]) -> None:\n" * 100
    )
    assert _database(DETECTORS).lines(data) == []
    assert _database(DETECTORS).lines(data + b"token: intx\n") == [(len(data), len(data) + 11)]


LINE = st.one_of(
    st.sampled_from([p.context for p in PLANTED] + NOISE + TYPED),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), max_size=80),
    st.text(alphabet="abcdefghijkmnopqrstuvwxyzABCKS0123456789:=@.-_/+ \t\"'\\", max_size=80),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=30))
def test_any_mix_of_lines_gives_the_plain_result(lines: list[str]) -> None:
    plain, fast, found_plain, found_scan = both(padded(lines))
    assert fast == plain
    assert found_scan == found_plain


@settings(max_examples=150, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=6), st.sampled_from(["", " ", "=", ":", "\n"]))
def test_short_texts_and_secrets_run_together_give_the_plain_result(lines: list[str], glue: str) -> None:
    plain, fast, found_plain, found_scan = both(glue.join(lines))
    assert fast == plain
    assert found_scan == found_plain


def test_a_known_value_too_long_for_hyperscan_is_still_found_everywhere() -> None:
    value = "cookie-" + "x9" * 40_000  # past hyperscan's pattern length limit
    known = (Detector("credential", re.compile(re.escape(value)), literals=(value,)), *DETECTORS)
    plain, fast, found_plain, found_scan = both(padded([f"Set: {value} end", "no secret here"]), known)
    assert fast == plain and value not in fast
    assert found_scan == found_plain
    plain, fast, _, _ = both(padded(["no secret here"]), known)
    assert fast == plain


def test_compiled_databases_are_kept_and_a_damaged_one_is_compiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    text = b"ok\n" * 10 + b"password=hunter2secret\n" + b"ok\n" * 10
    first = _Database(DETECTORS).lines(text)
    kept = sorted((tmp_path / "runner/hyperscan").iterdir())
    assert len(kept) == 3 and first == [(30, 52)]
    stamps = [p.stat().st_mtime_ns for p in kept]
    assert _Database(DETECTORS).lines(text) == first  # loaded, not written again
    assert [p.stat().st_mtime_ns for p in kept] == stamps
    for p in kept:
        p.write_bytes(p.read_bytes()[:-100] + b"x" * 100)
    assert _Database(DETECTORS).lines(text) == first
    assert all(hashlib.sha256(p.read_bytes()[32:]).digest() == p.read_bytes()[:32] for p in kept)


@settings(max_examples=150, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=30))
def test_a_text_said_untouched_is_one_the_detectors_leave_as_it_is(lines: list[str]) -> None:
    data = padded(lines).encode("utf-8", "surrogatepass")
    scan = ScanRedactor(KEY, DETECTORS)
    untouched = scan.untouched(data)
    assert untouched == scan.untouched(memoryview(bytearray(data)))  # the builder hands job buffers
    if untouched:
        assert scan.redact(data) is data
        assert Redactor(KEY, DETECTORS).text(data.decode("utf-8", "surrogateescape")) == data.decode(
            "utf-8", "surrogateescape"
        )


def test_untouched_is_said_of_plain_noise_and_never_of_a_secret_a_placeholder_or_a_blob() -> None:
    scan = ScanRedactor(KEY, DETECTORS)
    noise = [line for line in NOISE if line.isascii()] * 20

    def text(*lines: str) -> bytes:
        return "\n".join([*noise, *lines, *noise]).encode("utf-8")

    assert scan.untouched(text())
    for p in PLANTED:  # a base64 blob inside a text is only a secret to the JSON rules (see mask)
        assert scan.untouched(text(f"x {p.context} y")) == (p.kind == "base64"), p.kind
    placeholder = Redactor(KEY).placeholder("hunter2hunter2", "password")
    # Flagged lines the detectors leave as they are: cleared, while there are few of them.
    for odd in (placeholder, "naïve café — 日本語"):
        assert scan.untouched(text(odd)), odd
        assert scan.untouched(text(*[odd] * 60)) and not scan.untouched(text(*[odd] * 70)), odd
    assert scan.untouched(text(*["def f(token: int, password: str) -> None:"] * 70))  # not even flagged
    assert not scan.untouched(text("-----BEGIN OPENSSH PRIVATE KEY-----"))  # the whole text is looked at
    assert not scan.untouched(base64.b64encode(b"just a blob " * 10))
    for short in (b"bench==1\n", b"ok\n", b"0\n", b""):  # too short to be read as a blob: cleared
        assert scan.untouched(short) and scan.redact(short) is short, short


def test_a_known_value_too_long_for_the_database_is_looked_for_apart() -> None:
    value = "cookie-" + "x9" * 40_000
    known = (Detector("credential", re.compile(re.escape(value)), literals=(value,)), *DETECTORS)
    scan = ScanRedactor(KEY, known)
    assert scan.untouched(b"no secret here.\n" * 100)
    assert not scan.untouched(memoryview(f"Set: {value} end\n".encode() * 3))
