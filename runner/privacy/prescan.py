"""The privacy pass run ahead: the detectors over members as a builder gets them, before `mask.protect`.

Input: the options the build will use, then members (name, sha256, content) as the builder's worker threads
hand them over. Output: for each, whether the pass surely leaves it as it is (`inspect`: the builder then
compresses it at once); for one the pass changes, its redacted content, made there and kept for `protect`
to take (`take`), with the replacements noted while making it.
Rules:
- A verdict that a member is left as it is holds for a `protect` with the same policy and known secrets
  (and, for a text member holding none of them, with more: `extra_values`), whatever the key: placeholders
  are only made for what changes. Redacted content holds for a `protect` with the same policy, known
  secrets and key (`matches`): the options' key (the keyring's, or the redaction key given), else one made
  here, which `protect` then uses (`key`).
- A member the pass may change is redacted at once, with its own notes (taken with it, so a member that
  never reaches `protect` counts no secret), while the content kept stays under `EARLY` bytes; past that
  it is left to `protect`, which reads it again. Redacted content is handed to `compress` when set (the
  builder's spool compresses it there, on the same worker); the frame it keeps counts as kept too. A text
  member with no possible match costs one scan that stops at the first hit (`ScanRedactor.untouched`);
  the redaction itself costs what it would at the end.
- Worker threads call `inspect` concurrently: each member gets its own pass (placeholders depend only on
  the key), and what is kept is counted under a lock.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable

from runner.privacy.mask import PrivacyOptions, Redacted, is_json, pass_key, run_for
from runner.privacy.membertext import bytes_of
from runner.privacy.policy import known_detectors

__all__ = ["EARLY", "Prescan"]

EARLY = 48 << 20  # redacted content kept for `protect`, in bytes


class Prescan:
    """The pass run ahead for a build with `options` (see the module docstring)."""

    def __init__(self, options: PrivacyOptions) -> None:
        assert options.policy is not None
        self.policy, self.known = options.policy, options.known  # what a verdict depends on
        self._options = options
        self.key = pass_key(options) or secrets.token_bytes(32)
        self._verdicts = run_for(options, self.key)  # for members past the memory bound
        self._kept: dict[tuple[str, str], tuple[Redacted, int]] = {}  # with the bytes `compress` kept
        self._held = 0
        self._lock = threading.Lock()
        self.compress: Callable[[bytes, str], int] | None = None  # content, sha256 -> the bytes it keeps

    def inspect(self, name: str, sha256: str, data: memoryview) -> bool:
        """Whether the pass surely leaves the member as it is; a member it changes is redacted now and kept
        when memory allows. Of a member the pass reads (see `mask.scanned`)."""
        json = is_json(name)
        if not json and self._verdicts.untouched(name, data):  # the cheap verdict first
            return True
        with self._lock:
            room = self._held + len(data) <= EARLY
            self._held += len(data) if room else 0
        if not room:
            return self._verdicts.untouched(name, data) if json else False
        run = run_for(self._options, self.key)
        new = run.member(name, bytes_of(data))
        redacted = None if new is None else Redacted(new, hashlib.sha256(new).hexdigest(), run.notes())
        extra = (
            0 if redacted is None or self.compress is None else self.compress(redacted.data, redacted.sha256)
        )
        with self._lock:
            self._held -= len(data)
            if redacted is not None:
                self._held += len(redacted.data) + extra
                self._kept[(name, sha256)] = (redacted, extra)
        return new is None

    def take(self, name: str, sha256: str) -> Redacted | None:
        """The member's redacted content made here, if kept (handed over once)."""
        with self._lock:
            got, extra = self._kept.pop((name, sha256), (None, 0))
            self._held -= 0 if got is None else len(got.data) + extra
        return got

    def matches(self, options: PrivacyOptions) -> bool:
        """Whether content redacted here is what `protect` with `options` and this prescan's key makes."""
        key = pass_key(options)
        return (
            options.policy == self.policy
            and set(options.known) == set(self.known)
            and (key is None or key == self.key)
        )

    def extra_values(self, options: PrivacyOptions) -> tuple[bytes, ...] | None:
        """The known values `options` has beyond this prescan's, encoded as member bytes hold them; None
        when its verdicts do not carry over (another policy, or a known secret it had and `options` has
        not). A verdict is that no detector changed anything, so each detector left the text as it was:
        with more known values (each found only where it is written out), a text member in which none of
        them is written is still left as it was. A JSON member's values are read unescaped: not so."""
        if options.policy != self.policy or not set(self.known) <= set(options.known):
            return None
        extra = known_detectors((s.kind, s.value) for s in set(options.known) - set(self.known))
        values = {literal for detector in extra for literal in detector.literals}  # long enough to count
        return tuple(value.encode("utf-8", "surrogateescape") for value in sorted(values))
