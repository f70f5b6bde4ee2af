"""proxy.stream.redact_stream: a stream redacted as one text, its cuts carried over."""

from __future__ import annotations

from proxy.redact import Redactor
from proxy.stream import redact_stream

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
SECRET = "sk-live-" + "Zz9" * 8
OTHER = "ghp_" + "a1B2" * 9


def _redactor() -> tuple[Redactor, dict[str, str]]:
    made: dict[str, str] = {}
    return Redactor(KEY, found=lambda _kind, value, token: made.__setitem__(token, value)), made


def test_unchanged_streams_keep_their_chunks() -> None:
    redactor, made = _redactor()
    parts = [b"data: a\n\n", b"", b"data: \xff\n\n"]
    assert redact_stream(parts, redactor.text, made.get) == parts


def test_cuts_inside_secrets_move_and_the_others_stay() -> None:
    redactor, made = _redactor()
    text = f"a {SECRET} b ÿ {OTHER} c REDACTED_openai-key_0123456789abcdef d".encode()
    cuts = [
        1,
        5,
        len(f"a {SECRET} b ÿ".encode()) - 1,
        len(f"a {SECRET} b ÿ {OTHER[:3]}".encode()),
        len(text) - 2,
    ]
    parts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    out = redact_stream(parts, redactor.text, made.get)
    p1, p2 = Redactor(KEY).text(SECRET), Redactor(KEY).text(OTHER)
    assert out == [
        b"a",
        b" ",  # the cut inside SECRET moved to the start of its placeholder
        f"{p1} b ".encode() + b"\xc3",  # a cut inside a two-byte character stays there
        b"\xbf ",  # the cut inside OTHER moved to the start of its placeholder
        f"{p2} c REDACTED_openai-key_0123456789abcdef".encode(),  # an older placeholder is left alone
        b" d",
    ]


def test_without_the_originals_the_changed_middle_joins_one_chunk() -> None:
    redactor, _ = _redactor()
    text = f"head {SECRET} mid {OTHER} tail".encode()
    parts = [text[:3], text[3:10], text[10:30], text[30:-2], text[-2:]]
    out = redact_stream(parts, redactor.text, lambda _token: None)
    assert b"".join(out) == redactor.text(text.decode()).encode()
    assert out[0] == b"hea" and out[-1] == b"il"
    assert all(SECRET[:6].encode() not in piece and OTHER[:6].encode() not in piece for piece in out)
