"""The redaction scan: hyperscan finds where a secret may be, the detectors decide there and only there.

Input: the detectors of a policy (`proxy.detectors.Detector`), then texts or member bytes. Output: a
`ScanRedactor`, a `proxy.redact.Redactor` whose results are exactly the plain one's (same placeholders,
same `found` calls, in the same order), computed without running every detector over every line.
Rules:
- Every detector is compiled into hyperscan in prefilter mode: its matches are a superset of the Python
  pattern's (constructs hyperscan lacks, like lookbehinds, are widened, never narrowed; a value that must
  not start with a type name is rewritten as an automaton, so `token: int` is not flagged). The scan also
  flags lines holding `REDACTED_` (placeholders change what the detectors see); lines holding a non-ASCII
  byte are flagged too (Python's classes and case folding are Unicode-aware, the scan's are ASCII).
- `untouched` tells in one scan, stopping at the first hit, that a text surely needs no detector: its
  database also holds the literals that send a text through the detectors whole, and any non-ASCII byte.
- The detectors match within one line (the anchored ones are even applied line by line), so a text whose
  flagged lines are redacted and whose other lines stay as they are is the plain redactor's result. A
  detector that may span lines (compiled with re.S, like private-key blocks, or a known value holding a
  newline) sends the whole text through the detectors when one of its literals is in it; a text that may
  be one base64 blob goes through the whole-text base64 rule first, as in `Redactor.text`.
- On a flagged line the detectors run in their order, each only when the scan finds a possible match for
  it in the line as it is at its turn (ASCII text; the detectors see the parts between placeholders one
  by one, the scan sees a line break in place of each placeholder, with `^`/`$` multi-line, unless a
  pattern asserts the whole text's start or end); a detector with no possible match would change nothing.
- A class repeated without bound at a pattern's end is compiled repeated its minimum (`_first_end`): the
  same lines are flagged, with one report per secret instead of one per character past the minimum.
- Bytes that are not UTF-8 are scanned as they are and decoded with surrogateescape line by line, which
  is what decoding the whole text does (lines end at an ASCII byte).
- The scan releases the GIL; each thread has its own scratch space. Compiled databases are kept in
  $XDG_CACHE_HOME/runner/hyperscan (default ~/.cache), named by the sha256 of what was compiled.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import hyperscan

from proxy.detectors import Detector
from proxy.redact import PLACEHOLDER_RE, Redactor
from runner.privacy.membertext import bytes_of

__all__ = ["ScanRedactor"]

_SMALL = 512  # texts shorter than this go straight to the detectors: the scan would cost more
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=_\s\x1c-\x1f\x80-\xff-]")  # a byte no base64 blob holds
_LOOK_AT_MOST = 64  # flagged lines `untouched` looks at before leaving a text to the pass
_HITS_PER_LINE = 4  # more hits on a flagged line stop the scan, which resumes after the line (each hit
# costs a Python call holding the GIL; a line of `token: int` parameters can give dozens). A secret gives one
# hit a pattern (`_first_end`); a stop costs about a scan of the window, so a few hits go through first.
_PLACEHOLDER = b"REDACTED_"  # in the database after the detectors, then the whole-text literals
_LITERAL_MAX = 64  # longer whole-text literals (a known value) are searched for apart
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_WINDOW = 1 << 16  # bytes scanned per call, then up to the end of a line
_SE = "surrogateescape"
_WHOLE_TEXT_ANCHOR = re.compile(rb"\\[AZzG]")


class _Database:
    """The compiled prefilter for a tuple of detectors, and each thread's scratch space."""

    def __init__(self, detectors: tuple[Detector, ...]) -> None:
        # Detectors the scan cannot stand for: those that may span lines, and those hyperscan refuses (a
        # known value longer than its pattern limit). They see whole texts holding one of their literals.
        whole = {
            i for i, d in enumerate(detectors) if d.pattern.flags & (re.S | re.X) or "\n" in d.pattern.pattern
        }
        try:
            self._compile(detectors, whole)
        except hyperscan.error:
            whole |= {i for i, d in enumerate(detectors) if i not in whole and not _compiles(d.pattern)}
            self._compile(detectors, whole)
        # One without a literal can match anywhere: every text goes through the detectors whole.
        self.everywhere = any(not detectors[i].literals for i in whole)
        # Whole-text literals too long for the database (a known value) are looked for apart.
        self.unscanned = tuple(lit for lit in _whole_literals(detectors, whole) if len(lit) > _LITERAL_MAX)
        self.always = frozenset(whole)
        self._local = threading.local()

    def _compile(self, detectors: tuple[Detector, ...], whole: set[int]) -> None:
        self.index = [i for i in range(len(detectors)) if i not in whole]  # the detector of each scan id
        literals = [
            b"".join(b"\\x%02x" % c for c in lit)
            for lit in (_PLACEHOLDER, *_whole_literals(detectors, whole))
            if len(lit) <= _LITERAL_MAX
        ]
        expressions = [_hs_pattern(detectors[i].pattern) for i in self.index] + literals
        flags = [_hs_flags(detectors[i].pattern) for i in self.index] + [0] * len(literals)
        # `db` reports every match (to find the lines), `once` each pattern's first (which detectors), with
        # `^` and `$` at every line break (see `detectors_in`).
        self.db = _cached(expressions, flags)
        single = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_MULTILINE
        self.once = _cached(expressions, [f | single for f in flags])
        self.quick = _cached([*expressions, rb"[\x80-\xff]"], [*flags, 0])  # for `hit`
        # Whether a pattern asserts the start or end of the whole text: a line break is not one of those.
        self.edges = any(_WHOLE_TEXT_ANCHOR.search(e) for e in expressions)

    def scratch(self, db: hyperscan.Database) -> hyperscan.Scratch:
        """This thread's scratch space for `db` (one of this object's three)."""
        name = "db" if db is self.db else "once" if db is self.once else "quick"
        scratch: hyperscan.Scratch | None = getattr(self._local, name, None)
        if scratch is None:
            scratch = hyperscan.Scratch(db)
            setattr(self._local, name, scratch)
        return scratch

    def detectors_in(self, text: str) -> frozenset[int] | None:
        """Indices of the detectors that may match `text` (None: any may). The detectors see the parts
        between placeholders one by one (`Redactor._outside_placeholders`): the scan sees a line break in
        place of each placeholder, which a pattern takes as a part's start or end (`\b`, lookarounds, and
        `^`/`$`, multi-line here) or matches across (a superset), in one call for the whole text."""
        if not text.isascii():
            return None
        found = set(self.always)
        index, scratch = self.index, self.scratch(self.once)

        def on_match(id_: int, _start: int, _end: int, _flags: int, _ctx: object) -> None:
            if id_ < len(index):
                found.add(index[id_])

        parts = [text]
        if "REDACTED_" in text and self.edges:  # the parts alone (split also returns each one's groups)
            parts = PLACEHOLDER_RE.split(text)[:: PLACEHOLDER_RE.groups + 1]
        elif "REDACTED_" in text:
            parts = [PLACEHOLDER_RE.sub("\n", text)]
        for part in parts:
            if part:
                self.once.scan(part.encode("ascii"), match_event_handler=on_match, scratch=scratch)
        return frozenset(found)

    def hit(self, data: bytes | memoryview) -> bool:
        """Whether a detector may match somewhere in `data`, or it holds a placeholder, a whole-text literal
        or a non-ASCII byte (the scan stops at the first)."""

        def on_match(_id: int, _start: int, _end: int, _flags: int, _ctx: object) -> bool:
            return True

        try:
            self.quick.scan(cast(bytes, data), match_event_handler=on_match, scratch=self.scratch(self.quick))
        except hyperscan.ScanTerminated:
            return True
        return False

    def lines(self, data: bytes, most: int | None = None) -> list[tuple[int, int]] | None:
        """(start, end) of the runs of lines where a detector may match, `end` at their last newline; None
        as soon as a whole-text literal is found (the text goes through the detectors whole, see
        `ScanRedactor.redact`), or more than `most` lines are flagged, when given."""
        # hyperscan reads any buffer; its stubs say str or bytes.
        view, scratch = cast(bytes, memoryview(data)), self.scratch(self.db)
        found: list[tuple[int, int]] = []
        line = [0, -1, 0]  # the last flagged line's start and end, and how many more hits it had
        limit = len(data) if most is None else most
        first_literal = len(self.index) + 1  # the ids of whole-text literals (after the placeholder's)
        whole: list[bool] = []

        def on_match(id_: int, _start: int, end: int, _flags: int, base: Any) -> bool:  # base: an int
            if id_ >= first_literal:
                whole.append(True)
                return True
            last = base + end - 1  # the match's last byte
            if line[0] <= last <= line[1]:
                line[2] += 1
                return line[2] >= _HITS_PER_LINE  # stop; the scan resumes after this line
            line[1] = _line_at(data, base, last, found)
            line[0], line[2] = found[-1][0], 0
            return len(found) > limit

        pos = 0
        while pos < len(data):
            # Scans end at a line's end, so resuming after a line full of hits rescans a window at most.
            stop = data.find(b"\n", pos + _WINDOW)
            stop = len(data) if stop < 0 else stop + 1
            while pos < stop:
                line[2] = 0
                try:
                    self.db.scan(view[pos:stop], match_event_handler=on_match, context=pos, scratch=scratch)
                    pos = stop
                except hyperscan.ScanTerminated:
                    if whole or len(found) > limit:
                        return None
                    pos = line[1] + 1
        if not data.isascii():
            pos = 0
            while m := _NON_ASCII.search(data, pos):
                pos = _line_at(data, pos, m.start(), found) + 1
                if len(found) > limit:
                    return None
        return _merged(found)


def _base64_like(data: bytes | memoryview) -> bool:
    """Whether `data` may be one base64 blob, which `Redactor.text` decodes (16 characters at least)."""
    return not _NOT_BASE64.search(data) and len(bytes(data).strip()) >= 16


def _whole_literals(detectors: tuple[Detector, ...], whole: set[int]) -> list[bytes]:
    return [lit.encode("utf-8", _SE) for i in sorted(whole) for lit in detectors[i].literals]


def _line_at(data: bytes, floor: int, offset: int, out: list[tuple[int, int]]) -> int:
    """Add the line holding `offset` (not starting before `floor`) to `out`; return the offset of its end."""
    start = data.rfind(b"\n", floor, offset) + 1 or floor
    end = data.find(b"\n", offset)
    end = len(data) if end < 0 else end
    out.append((start, end))
    return end


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Line ranges sorted, overlapping and adjacent ones joined (with the newline between them)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _hs_pattern(pattern: re.Pattern[str]) -> bytes:
    r"""The pattern in hyperscan's syntax, matching at least what Python's does on ASCII text: Python's
    `\s` also matches \x1c-\x1f, so outside a negated class those are added; `{,n}` is `{0,n}`. (Verbose
    and dot-all patterns are not scanned, see `_Database`.) A value that must not start with a type name
    becomes an automaton that rejects those starts (see `_not_a_type_name`); an optional character before
    a class joins the class (`_OPTIONAL_BEFORE_CLASS`)."""
    source, out, i, klass = pattern.pattern, [], 0, None
    if pattern.flags & re.I:
        source = _not_a_type_name(source)
    while i < len(source):
        c = source[i]
        if c == "\\" and klass is None and (m := _OPTIONAL_BEFORE_CLASS.match(source, i)):
            out.append(f"[{m.group(1)}{m.group(2)}]{{1,2}}")  # `\)?[ .-]` -> `[\) .-]{1,2}`
            i = m.end()
            continue
        if c == "\\":
            pair = source[i : i + 2]
            if pair == "\\s" and klass is None:
                pair = r"[\s\x1c-\x1f]"
            elif pair == "\\s" and klass == "[":
                pair = r"\s\x1c-\x1f"
            out.append(pair)
            i += 2
            continue
        if klass is None and c == "[":
            klass = source[i : i + 2] if source[i + 1 : i + 2] == "^" else "["
            out.append(klass)
            i += len(klass)
            if source[i : i + 1] == "]":  # a `]` first in a class is a literal
                out.append("]")
                i += 1
            continue
        if klass is not None and c == "]":
            klass = None
        if klass is None and source.startswith("{,", i):  # Python's {,n} is PCRE's {0,n}
            c = "{0"
        out.append(c)
        i += 1
    return _first_end("".join(out)).encode("utf-8")


# An escaped character made optional just before a class of plain characters, the class not repeated: taken
# into the class, repeated once or twice, it matches what it did and more (a superset), and hyperscan scans
# that much faster (the US phone pattern's `\)?[ .-]` cost a fifth of the scan of a 200 MB tree of logs).
_OPTIONAL_BEFORE_CLASS = re.compile(r"(\\[^A-Za-z0-9])\?\[([^\\\]^][^\\\]]*)\](?![?*+{])")


# A class repeated without bound (`{n,}` or `+`) at the very end of a pattern, inside closing groups only.
_OPEN_END = re.compile(r"(\[(?:\\.|[^\\\]])+\])(?:\{(\d+),\}|\+)(\)*)\Z")


def _first_end(source: str) -> str:
    """`source` with a class repeated without bound at its end repeated just its minimum: a match of the
    pattern has a prefix matching this one and ending on the same line (the class takes no newline), and
    the other way round, so the same lines are flagged; but `Bearer x{8,}` is reported once, not at every
    character after the eighth (each report is a Python call)."""
    m = _OPEN_END.search(source)
    if m is None:
        return source
    try:
        takes_newline = re.compile(m.group(1)).match("\n") is not None
    except re.error:
        return source
    if takes_newline:
        return source
    return f"{source[: m.start()]}{m.group(1)}{{{m.group(2) or 1}}}{m.group(3)}"


# `["']?(?!(?:str|int|...)(?![\w.-]))` and the value after it, at the end of a pattern (the assignment
# detector's `token: int` is a parameter's annotation, not a secret). Hyperscan has no lookahead.
_TYPE_LOOKAHEAD = re.compile(r"""\[\\?"\\?'\]\?\(\?!\(\?:((?:[A-Za-z]+\|)*[A-Za-z]+)\)\(\?!\[\\w\.-\]\)\)""")


def _not_a_type_name(source: str) -> str:
    r"""`source` (a caseless pattern) with its value that must not start with a type name replaced by the
    start of such a value: an optional quote, then characters that leave every type name's path (one a
    value may start with), or follow a whole name with [\w.-] (`int_value`). Every value the pattern
    accepts starts so, `int)` and `"str"` do not. The rest of the pattern is dropped (fewer constraints:
    a superset), so only a suffix at the top level is replaced."""
    m = _TYPE_LOOKAHEAD.search(source)
    if m is None or not _top_level(source[: m.start()]):
        return source
    words = sorted({w.lower() for w in m.group(1).split("|")})

    def node(prefix: str, first: str) -> str:
        nexts = sorted({w[len(prefix)] for w in words if w.startswith(prefix) and len(w) > len(prefix)})
        alts, chars = [c + node(prefix + c, first) for c in nexts], "".join(nexts)
        if not prefix:
            alts.append(f"[^{first}{chars}]")  # a first character no type name starts with
        elif prefix in words:
            alts.append(r"[\w.-]")  # a whole name, continued: `int_value`
        else:
            alts += [f"[^{chars}]", "$"]  # a name left halfway: `flo)`
        return f"(?:{'|'.join(alts)})"

    # A bare value starts with no space, quote or bracket; a quoted one (after its quote) with anything.
    bare, quoted = node("", r"\s\"'\\&,;<>(){}\[\]"), node("", r"\\\n")
    return source[: m.start()] + f"(?:[\"']{quoted}|{bare})"


def _top_level(prefix: str) -> bool:
    """Whether the end of `prefix` is outside every group and alternative of the pattern it starts."""
    depth, i, klass = 0, 0, False
    while i < len(prefix):
        c = prefix[i]
        if c == "\\":
            i += 2
            continue
        if klass:
            klass = c != "]" or prefix[i - 1] == "["
        elif c == "[":
            klass = True
        elif c in "()":
            depth += 1 if c == "(" else -1
        elif c == "|" and depth == 0:
            return False
        i += 1
    return depth == 0 and not klass


def _compiled(expressions: list[bytes], flags: list[int]) -> hyperscan.Database:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=expressions, ids=list(range(len(expressions))), flags=flags)
    return db


def _cached(expressions: list[bytes], flags: list[int]) -> hyperscan.Database:
    """`_compiled`, kept in the user's cache folder: compiling holds the GIL for about 0.1 s per build.
    A file that does not load (damaged, another hyperscan or CPU) is compiled and written again."""
    key = hashlib.sha256(repr((expressions, flags)).encode()).hexdigest()
    path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "runner" / "hyperscan" / key
    with contextlib.suppress(OSError, hyperscan.error):
        data = path.read_bytes()
        if hashlib.sha256(data[32:]).digest() == data[:32]:
            return hyperscan.loadb(data[32:], hyperscan.HS_MODE_BLOCK)
    db = _compiled(expressions, flags)
    with contextlib.suppress(OSError, hyperscan.error):
        data = hyperscan.dumpb(db)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(hashlib.sha256(data).digest() + data)
        tmp.replace(path)
    return db


def _compiles(pattern: re.Pattern[str]) -> bool:
    try:
        _compiled([_hs_pattern(pattern)], [_hs_flags(pattern)])
    except hyperscan.error:
        return False
    return True


def _hs_flags(pattern: re.Pattern[str]) -> int:
    flags = hyperscan.HS_FLAG_PREFILTER
    if pattern.flags & re.I:
        flags |= hyperscan.HS_FLAG_CASELESS
    if pattern.flags & re.M:
        flags |= hyperscan.HS_FLAG_MULTILINE
    return flags


@functools.lru_cache(maxsize=8)
def _database(detectors: tuple[Detector, ...]) -> _Database:
    return _Database(detectors)


class ScanRedactor(Redactor):
    """A `Redactor` that runs its detectors only on the lines the hyperscan prefilter flags."""

    def __init__(
        self,
        key: bytes,
        detectors: tuple[Detector, ...],
        found: Callable[[str, str, str], None] | None = None,
    ) -> None:
        super().__init__(key, detectors, found)
        self._db = _database(detectors)

    def text(self, text: str) -> str:
        """What `Redactor.text` gives: the base64 rule on the whole text, then the detectors."""
        if len(text) >= _SMALL:
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: byte offsets would not map onto the text
                pass
            else:
                new = self.redact(data)
                return text if new is data else new.decode("utf-8", _SE)
        encoded = self._base64(text)
        return encoded if encoded is not None else self._detect(text, self._db.detectors_in)

    def untouched(self, data: bytes | memoryview) -> bool:
        """True when `redact(data)` is surely `data`: the scan finds nothing, or the detectors change none
        of the few lines it flags. False: it may change (a base64-like text, many flagged lines, or a
        change). Costs one scan stopping at the first hit when the text is clean."""
        db = self._db
        if db.everywhere or _base64_like(data):
            return False
        if db.unscanned:  # known values too long for the database: looked for in one copy of the bytes
            raw = bytes_of(data)
            if any(literal in raw for literal in db.unscanned):
                return False
        if not db.hit(data):
            return True
        # A possible match, a placeholder or a non-ASCII byte: the line path of `redact` decides, when few
        # lines are flagged and no whole-text literal is found (a text full of secrets is left to the pass,
        # which pays for them once).
        data = bytes_of(data)
        runs = db.lines(data, most=_LOOK_AT_MOST)
        return runs is not None and self._redact_lines(data, runs) is data

    def redact(self, data: bytes) -> bytes:
        """`data` read as text (surrogateescape), redacted, encoded again: `data` itself when unchanged."""
        db = self._db
        whole = db.everywhere or _base64_like(data) or any(literal in data for literal in db.unscanned)
        runs = None if whole else db.lines(data)  # None: a whole-text literal is in `data`
        if runs is not None:
            return self._redact_lines(data, runs)
        text = data.decode("utf-8", _SE)
        encoded = self._base64(text)
        new = encoded if encoded is not None else self._detect(text, db.detectors_in)
        return data if new == text else new.encode("utf-8", _SE)

    def _redact_lines(self, data: bytes, runs: list[tuple[int, int]]) -> bytes:
        """`data` with its flagged `runs` of lines redacted: `data` itself when unchanged."""
        # All flagged lines in one text: each detector runs once per member, not once per line. Decoding
        # them joined is decoding each (a line ends at an ASCII byte), and encoding gives back the bytes.
        joined = b"\n".join([data[start:end] for start, end in runs]).decode("utf-8", _SE)
        redacted = self._detect(joined, self._db.detectors_in)
        if redacted == joined:
            return data
        lines = redacted.encode("utf-8", _SE).split(b"\n")  # placeholders hold no newline
        view: memoryview = memoryview(data)  # the pieces between runs are not copied before the join
        out: list[bytes | memoryview] = []
        done, k = 0, 0
        for start, end in runs:
            n = data.count(b"\n", start, end) + 1
            out += [view[done:start], lines[k] if n == 1 else b"\n".join(lines[k : k + n])]
            done, k = end, k + n
        out.append(view[done:])
        return b"".join(out)

    def kind_of(self, value: str, default: str) -> str:
        """`Redactor.kind_of`, trying only the detectors the scan finds a possible match for (a short value,
        the usual credential, goes straight to `Redactor.kind_of`, which remembers it: a scan costs more)."""
        if len(value) < _SMALL:
            return super().kind_of(value, default)
        candidates = None if "REDACTED_" in value else self._db.detectors_in(value)
        if candidates is None:
            return super().kind_of(value, default)
        for i, detector in enumerate(self._detectors):
            if (
                i in candidates
                and "s" not in detector.pattern.groupindex
                and detector.pattern.fullmatch(value)
            ):
                return detector.kind
        return default
