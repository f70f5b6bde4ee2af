"""Secrets out, stable placeholders in: the detectors and the redactor shared by the proxy and the packer.

Input: text (URLs, bodies, logs, prompts), bytes in any encoding (`blob`), header lists and query pairs.
Output: the same with every
secret replaced by `REDACTED_<kind>_<16 hex>`, where the hex is an HMAC-SHA256 of the secret under a key
(the tenant's redaction key when packs are built, the pack's key in the proxy). The same secret always
gives the same placeholder under the same key, so joins across a pack still work, while the secret itself
never reaches disk. `collapse` maps every placeholder to `REDACTED_<kind>`, so a request or an output
carrying one placeholder matches another of the same kind whatever key made it.

Rules:
- headers named in SENSITIVE_HEADERS, or with a part of their name that is a credential word
  (x-custom-auth, x-api-token, x-session-id), lose their whole value; an `Authorization: <scheme>
  <credentials>` keeps its scheme so the cassette stays readable;
- query parameters named in SENSITIVE_PARAMS lose their value;
- every detector of `proxy.detectors.DETECTORS` (provider keys, cloud and forge tokens, JWTs, private
  key blocks, Bearer/Basic credentials, user:pass@ in URLs, `--password VALUE` flags, credential headers
  written as text, `password=`/`SECRET_KEY=`/`DB_PASS=`-style assignments quoted or JSON-escaped, emails,
  phone numbers) is replaced wherever it matches; text that already is a placeholder is never touched again;
- bytes that are not UTF-8 never switch redaction off: `blob` reads them with surrogateescape, so the
  text around them is scanned and every other byte comes back as it was;
- a text that is one base64 blob decoding to text with a secret becomes one `base64` placeholder.
Standard library only: this module runs inside the proxy sidecar.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar, cast

from proxy.detectors import DETECTORS, Detector
from proxy.patterns import adjacent, first_fullmatch

__all__ = [
    "PLACEHOLDER_RE",
    "SENSITIVE_HEADERS",
    "SENSITIVE_PARAMS",
    "Redactor",
    "base64_text",
    "collapse",
    "is_sensitive_header",
    "key_from_text",
    "remember",
]

SENSITIVE_HEADERS = frozenset(
    {
        "authorization", "proxy-authorization", "cookie", "set-cookie", "api-key", "x-api-key",
        "x-goog-api-key", "x-auth-token", "x-access-token", "x-amz-security-token", "x-csrf-token",
        "private-token",
    }
)  # fmt: skip
_IPAD, _OPAD = bytes(b ^ 0x36 for b in range(256)), bytes(b ^ 0x5C for b in range(256))
_CACHED = 65_536  # distinct secrets (and credential values) a redactor remembers the placeholder (kind) of
_LONG = 256  # a text from this long is searched only around anchor hits by a detector with a reach
_V = TypeVar("_V")
_Candidates = Callable[[str], frozenset[int] | None]  # see `Redactor._detect`

# Any other header is a credential when a part of its name (split at `-`/`_`) is one of these words or ends
# with one (x-custom-auth, x-api-token, x-authtoken, x-session-id): `tokens` (rate limits), `authority` and
# `author` are not.
_SENSITIVE_HEADER_PART = re.compile(
    r"(?:[a-z0-9]*(?:auth|token|key|secret|password|passwd|session|cookie|credentials?|csrf|xsrf)[0-9]*"
    r"|auth(?!ors?$|ority$|enticate$)[a-z0-9]*)",
)


SENSITIVE_PARAMS = frozenset(
    {
        "key", "api_key", "apikey", "api-key", "access_token", "refresh_token", "id_token", "token",
        "client_secret", "secret", "password", "sig", "signature", "x-amz-signature", "x-amz-credential",
        "x-amz-security-token",
    }
)  # fmt: skip


# One base64 blob (standard or URL-safe alphabet, padded or not): decoded and scanned as text.
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9_-]{16,}={0,2}")


def base64_text(text: str) -> str | None:
    """The UTF-8 text `text` encodes when it is one base64 blob (16 characters at least, either alphabet)."""
    blob = text.strip()
    if len(blob) < 16 or not _BASE64.fullmatch(blob) or "REDACTED_" in blob:
        return None
    try:
        decoded = base64.b64decode(
            blob + "=" * (-len(blob) % 4),
            altchars=b"-_" if "-" in blob or "_" in blob else None,
            validate=True,
        )
        return decoded.decode("utf-8")
    except (binascii.Error, ValueError):
        return None


# `REDACTED_<16 hex>` is the form of cassettes written before placeholders carried their kind.
PLACEHOLDER_RE = re.compile(r"REDACTED_(?:([a-z][a-z0-9-]*)_)?([0-9a-f]{16})")


def collapse(text: str) -> str:
    """Every placeholder as `REDACTED_<kind>`: equal for any two secrets of one kind, whatever the key."""
    return PLACEHOLDER_RE.sub(lambda m: f"REDACTED_{m.group(1) or 'secret'}", text)


class Redactor:
    """Replaces secrets by keyed placeholders. One instance per key; cheap to call per exchange.

    `found(kind, secret, placeholder)` is called for every replacement (the packer keeps the originals
    to seal them and counts them for the audit); `keep(secret)` can spare a value (allow lists).
    """

    def __init__(
        self,
        key: bytes,
        detectors: tuple[Detector, ...] = DETECTORS,
        found: Callable[[str, str, str], None] | None = None,
    ) -> None:
        if not key:
            raise ValueError("the redaction key must not be empty")
        self._key = key
        self._detectors = detectors
        self._found = found
        # HMAC-SHA256 (RFC 2104) from the hashes of the padded key, copied per secret: `hmac` sets up a
        # context per call that costs more than hashing a short secret.
        block = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\0")
        self._inner, self._outer = (
            hashlib.sha256(block.translate(_IPAD)),
            hashlib.sha256(block.translate(_OPAD)),
        )
        self._shapes: tuple[tuple[str, ...], Callable[[str], int | None]] | None = None  # see `kind_of`
        self._digests: dict[str, str] = {}  # secret -> the hex its placeholders end with
        self._kinds: dict[str, str | None] = {}  # value -> the kind of the first detector matching it all

    def placeholder(self, secret: str, kind: str = "secret") -> str:
        """The stable stand-in for `secret`; a placeholder maps to itself so redaction is idempotent."""
        if secret.startswith("REDACTED_") and PLACEHOLDER_RE.fullmatch(secret):
            return secret
        digest = self._digests.get(secret)
        if digest is None:
            inner, outer = self._inner.copy(), self._outer.copy()
            inner.update(secret.encode("utf-8", "surrogateescape"))
            outer.update(inner.digest())
            digest = outer.hexdigest()[:16]
            remember(self._digests, secret, digest)
        token = f"REDACTED_{kind}_{digest}"
        if self._found:
            self._found(kind, secret, token)
        return token

    def text(self, text: str) -> str:
        """`text` with every detector's matches replaced; placeholders (already there, or made by an earlier
        detector) are never matched again, so `deploy:REDACTED_..@host` does not turn into an email. A text
        that is all base64 and decodes to text holding a secret becomes one placeholder of kind `base64`."""
        encoded = self._base64(text)
        return encoded if encoded is not None else self._detect(text)

    def _detect(self, text: str, candidates_of: _Candidates | None = None) -> str:
        """The detectors over `text` in order, each on the text its predecessors left. `candidates_of`
        (a prefilter) names the indices of the detectors that may match a text (None: any may); it is asked
        again whenever a detector changed the text. Skipping the others changes nothing."""
        order = self._order(text, candidates_of, 0)
        blanked: tuple[str, str] | None = None  # (text, `_blanked(text)`) while text has not changed
        lowered: tuple[str, str] | None = None  # (text, `_blanked(text).lower()`) while text has not changed
        k = 0
        while k < len(order):
            i, k = order[k], k + 1
            detector = self._detectors[i]
            if not detector.finds(text):
                continue
            before = text
            if not detector.anchors or (detector.reach is not None and detector.local):
                # (with a reach, a line-local pattern is only searched around anchor hits anyway: `_sub`)
                text = self._outside_placeholders(text, detector)
            else:  # anchors are looked for in each part between placeholders, as the detector sees it
                if blanked is None or blanked[0] is not text:
                    blanked = (text, _blanked(text))
                probe = blanked[1]
                if detector.fold:
                    if lowered is None or lowered[0] is not text:
                        lowered = (text, probe.lower())
                    probe = lowered[1]
                text = self._anchored(text, probe, detector)
            if candidates_of is not None and text is not before and text != before:
                order, k = self._order(text, candidates_of, i + 1), 0
        return text

    def _order(self, text: str, candidates_of: _Candidates | None, first: int) -> Sequence[int]:
        """The indices of the detectors from `first` on that may match `text`, in order."""
        candidates = None if candidates_of is None else candidates_of(text)
        if candidates is None:
            return range(first, len(self._detectors))
        return sorted(i for i in candidates if i >= first)

    def blob(self, data: bytes) -> bytes:
        """`data` with every secret replaced, whatever its encoding. Bytes that are not UTF-8 (a latin-1
        file, a binary body) pass through surrogateescape, so the text around them is scanned all the same
        and every other byte comes back unchanged."""
        text = data.decode("utf-8", "surrogateescape")
        new = self.text(text)
        return data if new == text else new.encode("utf-8", "surrogateescape")

    def _base64(self, text: str) -> str | None:
        """The placeholder for `text` when it is one base64 blob whose decoded text holds a secret. The
        whole blob goes (its original is what gets sealed): a placeholder inside it would not show."""
        inner = base64_text(text)
        if inner is None:
            return None
        probe = Redactor(self._key, self._detectors)
        if probe.text(inner) == inner:
            return None
        blob = text.strip()
        return text.replace(blob, self.placeholder(blob, "base64"))

    def _anchored(self, text: str, probe: str, detector: Detector) -> str:
        """Apply `detector` to the lines of `text` where `probe` (`text` with its placeholders blanked out,
        lower-cased for a detector that folds case) holds an anchor hit, and only to those."""
        if len(probe) != len(text):  # lower-casing changed some lengths: offsets do not carry over
            return "\n".join(
                self._outside_placeholders(line, detector)
                if any(
                    a.search(_blanked(line).lower() if detector.fold else _blanked(line))
                    for a in detector.anchors
                )
                else line
                for line in text.split("\n")
            )
        each: list[list[tuple[int, int]]] = []  # per anchor, its hits' lines in order
        rfind, find = text.rfind, text.find
        for anchor in detector.anchors:
            found: list[tuple[int, int]] = []
            done = -1
            for m in anchor.finditer(probe):
                at = m.start()
                if at < done:
                    continue  # same line as the previous hit
                end = find("\n", m.end())
                done = len(text) if end < 0 else end
                found.append((rfind("\n", 0, at) + 1, done))
            each.append(found)
        lines = each[0] if len(each) == 1 else sorted(set().union(*each))
        if not lines:
            return text
        # A pattern that sees one line at a time runs once over each run of adjacent lines.
        runs = adjacent(lines) if detector.local else lines
        out, done = [], 0
        for start, end in runs:
            out += [text[done:start], self._outside_placeholders(text[start:end], detector)]
            done = end
        out.append(text[done:])
        return "".join(out)

    def _outside_placeholders(self, text: str, detector: Detector) -> str:
        groups = detector.pattern.groupindex  # read once, not per match
        replace = functools.partial(self._replace, detector.kind, "s" in groups, "c" in groups)
        if "REDACTED_" not in text:
            return self._sub(detector, replace, text)
        if detector.local and (new := self._sub_blanked(detector, replace, text)) is not None:
            return new
        out, pos = [], 0
        for m in PLACEHOLDER_RE.finditer(text):
            out += [self._sub(detector, replace, text[pos : m.start()]), m.group(0)]
            pos = m.end()
        out.append(self._sub(detector, replace, text[pos:]))
        return "".join(out)

    @staticmethod
    def _sub(detector: Detector, replace: Callable[[re.Match[str]], str], text: str) -> str:
        """`detector.pattern.sub(replace, text)`, with `reach` searched for only around anchor hits (every
        match starts at most `reach` before one it holds, see `Detector`), leftmost first as `sub`: for a
        pattern that sees one line at a time, each search runs from `reach` before the next hit left to
        the end of that hit's line, and none after the last hit; for another, on a long text, the pattern
        is tried at each place from `reach` before a hit to its end."""
        if detector.reach is None:
            return detector.pattern.sub(replace, text)
        local = detector.local
        if len(text) < _LONG and not local:
            return detector.pattern.sub(replace, text)
        probe = text.lower() if detector.fold else text
        if len(probe) != len(text):  # lower-casing changed some lengths: offsets do not carry over
            return detector.pattern.sub(replace, text)
        if local:
            new = _spliced(text, _near_hits(detector, text, probe), replace)
            return detector.pattern.sub(replace, text) if new is None else new
        spans = sorted(
            (m.start() - detector.reach, m.end()) for a in detector.anchors for m in a.finditer(probe)
        )
        out, done, at = [], 0, 0
        for low, high in spans:
            at = max(at, low, 0)
            while at < high:
                m = detector.pattern.match(text, at)
                if m is None or m.end() == at:
                    at += 1
                    continue
                out += [text[done:at], replace(m)]
                done = at = m.end()
        out.append(text[done:])
        return "".join(out)

    @staticmethod
    def _sub_blanked(detector: Detector, replace: Callable[[re.Match[str]], str], text: str) -> str | None:
        """`_outside_placeholders` for a line-local pattern, in one pass over `text`: with each placeholder
        blanked out by as many line breaks, the pattern finds what it finds in each part between them
        alone (each part is then a line, see `patterns.line_local`), at the same offsets, and no match holds a
        line break, so none touches a placeholder. None when a match is empty, or lower-casing changes
        lengths: the parts one by one then."""
        seen = _blanked(text)
        if detector.reach is None:
            return _spliced(text, detector.pattern.finditer(seen), replace)
        probe = seen.lower() if detector.fold else seen
        if len(probe) != len(seen):
            return None
        return _spliced(text, _near_hits(detector, seen, probe), replace)

    def _replace(self, kind: str, has_s: bool, has_c: bool, m: re.Match[str]) -> str:
        if not has_s:
            return self.placeholder(m.group(0), kind)
        group = "s" if not has_c or m.group("s") is not None else "c"
        value, (start, end), at = m.group(group), m.span(group), m.start()
        whole = m.group(0)
        return whole[: start - at] + self.placeholder(value, self.kind_of(value, kind)) + whole[end - at :]

    def kind_of(self, value: str, default: str) -> str:
        """The kind of a credential found by its context (`Bearer x`, `token=x`): its own shape's kind when
        it has one, so one secret gets one placeholder in a header, a body and a log alike."""
        if value in self._kinds:
            known = self._kinds[value]
            return default if known is None else known
        if self._shapes is None:  # the detectors without a secret group, tried in order by one regex call
            shapes = [d for d in self._detectors if "s" not in d.pattern.groupindex]
            self._shapes = tuple(d.kind for d in shapes), first_fullmatch(tuple(d.pattern for d in shapes))
        kinds, first = self._shapes
        kind = None if (i := first(value)) is None else kinds[i]
        remember(self._kinds, value, kind)
        return default if kind is None else kind

    def header_value(self, name: str, value: str) -> str:
        if is_sensitive_header(name):
            scheme, sep, credentials = value.partition(" ")
            if name.lower() in {"authorization", "proxy-authorization"} and sep and credentials:
                kind = {"bearer": "bearer", "basic": "basic-auth"}.get(scheme.lower(), "credential")
                return f"{scheme} {self.placeholder(credentials, self.kind_of(credentials, kind))}"
            return self.placeholder(value, self.kind_of(value, "credential"))
        return self.text(value)

    def headers(self, fields: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(name, self.header_value(name, value)) for name, value in fields]

    def query(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [
            (
                name,
                self.placeholder(value, self.kind_of(value, "credential"))
                if value and name.lower() in SENSITIVE_PARAMS
                else self.text(value),
            )
            for name, value in pairs
        ]


def _blanked(text: str) -> str:
    """`text` with each placeholder replaced by as many line breaks: the parts between them are then lines,
    at the same offsets (what a line-local pattern finds in it is what it finds in each part alone)."""
    return PLACEHOLDER_RE.sub(_blank, text) if "REDACTED_" in text else text


def _blank(m: re.Match[str]) -> str:
    return "\n" * (m.end() - m.start())


def _near_hits(detector: Detector, text: str, probe: str) -> Iterator[re.Match[str]]:
    """The matches of a line-local `detector` with a reach in `text`, leftmost first as `finditer`, found
    around the anchor hits in `probe` only. No match starts between the last one's end and `reach` before
    the next hit (it would hold no hit), and a match ends on its hit's line (so the search ends there: the
    pattern sees a line's end as the text's end, see `patterns.line_local`)."""
    reach, search, find = cast(int, detector.reach), detector.pattern.search, text.find
    hits = sorted(m.start() for a in detector.anchors for m in a.finditer(probe))  # in order: linear
    done = 0
    for hit in hits:
        if hit < done:
            continue  # inside the last match: a later match holds a later hit
        end = find("\n", hit)
        m = search(text, max(done, hit - reach), len(text) if end < 0 else end)
        if m is not None:
            yield m
            done = m.end()


def _spliced(
    text: str, matches: Iterable[re.Match[str]], replace: Callable[[re.Match[str]], str]
) -> str | None:
    """`text` with each of `matches` (in order, not overlapping; found in `text`, or in a text of the same
    length equal to it where they are) replaced, `text` itself when there are none; None when one is empty
    (`sub` steps over those its own way), before any is replaced (each replacement reports its secret)."""
    found = list(matches)
    if not found:
        return text
    if any(m.end() == m.start() for m in found):
        return None
    out, done = [], 0
    for m in found:
        out += [text[done : m.start()], replace(m)]
        done = m.end()
    out.append(text[done:])
    return "".join(out)


def remember(cache: dict[str, _V], key: str, value: _V) -> None:
    """Keep `value` for `key`; a cache that is full (`_CACHED` entries) starts again: what is kept repeats
    (a few secrets in secret-heavy texts, a JSON member's keys and names), so it soon fills again."""
    if len(cache) >= _CACHED:
        cache.clear()
    cache[key] = value


def is_sensitive_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SENSITIVE_HEADERS or any(
        _SENSITIVE_HEADER_PART.fullmatch(part) for part in re.split(r"[-_]", lowered) if part
    )


def key_from_text(text: str) -> bytes:
    """The key given as an option: hex when it is 32+ hex digits, else the text itself; random when empty."""
    if not text:
        return secrets.token_bytes(32)
    try:
        return bytes.fromhex(text) if len(text) >= 32 else text.encode()
    except ValueError:
        return text.encode()
