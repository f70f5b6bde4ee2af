"""What secrets look like: the detectors the redactor (`proxy.redact`) applies, in order.

Input: none. Output: `DETECTORS` (what the default policies replace), `EXTRA_DETECTORS` (kinds only the
strict policies use) and `Detector`, the shape of one: a pattern, the literals one of
which every match holds, and for a pattern with no literal start the anchors that find the lines (and,
with `reach`, the places in them) where it can match.
Rules: patterns start with their literal prefix where they have one (Python's regexes search for those
fast); a pattern's matches stay within a line unless it is compiled with re.S; see `Detector`.
Standard library only: this module runs inside the proxy sidecar.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from proxy.patterns import line_local

__all__ = ["DETECTORS", "EXTRA_DETECTORS", "Detector"]


@dataclass(frozen=True)
class Detector:
    """One kind of secret. The secret is the group `s` when the pattern has one (the value of
    `password=...`; the group `c` when `s` did not take part), else the whole match.

    Speed: Python's regex engine scans fast for a pattern that starts with a literal, so patterns start
    with their literal prefix and check the word boundary just after it (`sk-(?<![A-Za-z0-9_]sk-)`).
    `literals`: one of them is in every match, a substring test that skips the pattern for text that
    cannot hold one. A pattern with no literal prefix has `anchors` (fast patterns, each starting with a
    literal, one of which every match's line holds; searched in the lower-cased text when `fold`): only
    lines with an anchor hit are searched. With `reach`, every match holds an anchor hit starting at most
    `reach` characters after the match's own start: the pattern is then tried only at those places, not
    along the whole line (a request body is one line of 100 KB).
    """

    kind: str
    pattern: re.Pattern[str]
    literals: tuple[str, ...] = ()
    anchors: tuple[re.Pattern[str], ...] = ()
    fold: bool = False
    reach: int | None = None

    def finds(self, text: str) -> bool:
        return not self.literals or any(literal in text for literal in self.literals)

    @functools.cached_property
    def local(self) -> bool:
        """Whether the pattern sees one line at a time (`patterns.line_local`), decided once per detector:
        the redactor asks for every text it is given, and a pattern's hash covers its compiled code."""
        return line_local(self.pattern)


def _d(
    kind: str,
    pattern: str,
    *literals: str,
    flags: int = 0,
    anchor: str | tuple[str, ...] = (),
    fold: bool = False,
    reach: int | None = None,
) -> Detector:
    anchors = (anchor,) if isinstance(anchor, str) else anchor
    compiled = tuple(re.compile(a) for a in anchors)
    return Detector(kind, re.compile(pattern, flags), literals, compiled, fold, reach)


def _word(prefix: str) -> str:
    """`prefix` not preceded by a word character, in a form that keeps the literal prefix first."""
    return f"{re.escape(prefix)}(?<![A-Za-z0-9_]{re.escape(prefix)})"


# Names that end a key whose value is a credential: GITHUB_TOKEN=, "password": , client_secret:, DB_PASS=,
# SECRET_KEY=, PGPASSWORD= ... (`max_tokens`, `token_count`, `bypass` and `secretary` are not).
_KEY_WORDS = (
    r"(?:pass(?:word|wd|phrase)|(?<![a-z0-9])pass|secret(?:[_-]?key)?|token|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|credentials?)"
)
# The same words as the end of a command-line flag: --password X, --api-key=X, --db-pass X.
_FLAG_WORDS = (
    r"(?:pass(?:word|wd|phrase)?|secret(?:[_-]?key)?|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|credentials?)"
)
# Between a flag and its value: a space, `=`, or the `", "` of an argv written as a JSON or Python list.
_FLAG_GAP = r"(?:[ \t]+|=|\\*[\"'][ \t]*,[ \t]*)\\*[\"']?(?!-)"
# A value: quoted (up to its closing quote, spaces and all; `\"` inside a JSON string) or bare. Not a
# literal null/boolean, not a $VARIABLE reference.
_VALUE = (
    r"(?!(?:null|none|true|false)\b)(?!\$[A-Za-z_{(])"
    r"(?P<s>(?<=\")[^\"\\\n]{3,}(?=\\*\")|(?<=')[^'\\\n]{3,}(?=')|[^\s\"'\\&,;<>(){}\[\]]{3,})"
)
# A type annotation, not a value: `def login(self, token: str)`, `password: Optional[str] = None`. Code in
# patches and artifacts is full of them; they are names, never secrets.
_TYPE_NAME = (
    r"(?:str|int|float|bool|bytes|bytearray|dict|list|tuple|set|frozenset|object|type|complex|Any|Optional"
    r"|Union|Literal|Callable|Sequence|Mapping|Iterable|Iterator|SecretStr|SecretBytes|Path)(?![\w.-])"
)
# Lines worth searching for an assignment: a key word, the rest of the name, then `=` or `:`.
_ASSIGNMENT_ANCHORS = tuple(
    rf"{word}[a-z0-9_.-]*\\*[\"']?[ \t]*[=:]" for word in ("pass", "secret", "token", "key", "cred")
)

# Order matters: the most specific shapes first, so a Bearer JWT or a PEM block becomes one placeholder.
DETECTORS: tuple[Detector, ...] = (
    _d(
        "private-key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY( BLOCK)?-----.*?-----END [A-Z ]*PRIVATE KEY( BLOCK)?-----",
        "PRIVATE KEY",
        flags=re.S,
    ),
    _d("bearer", _word("Bearer ") + r"(?P<s>[A-Za-z0-9._~+/=-]{8,})", "Bearer "),
    _d("basic-auth", _word("Basic ") + r"(?P<s>[A-Za-z0-9+/]{8,}={0,2})", "Basic "),
    _d("url-credentials", r"://[^/\s:@\"'<>]{1,256}:(?P<s>[^/\s@\"'<>]{1,256})(?=@)", "://"),
    _d("anthropic-key", _word("sk-ant-") + r"[A-Za-z0-9_-]{16,}", "sk-ant-"),
    _d("openai-key", _word("sk-") + r"[A-Za-z0-9_-]{16,}", "sk-"),
    _d("github-token", _word("gh") + r"[pousr]_[A-Za-z0-9]{30,}", "gh"),
    _d("github-token", _word("github_pat_") + r"[A-Za-z0-9_]{22,}", "github_pat_"),
    _d("gitlab-token", _word("gl") + r"(?:pat|dt|rt|ptt|cbt)-[A-Za-z0-9_-]{20,}", "gl"),
    _d(
        "aws-access-key",
        r"(?:AKIA|ASIA)(?<![A-Za-z0-9_]AKIA)(?<![A-Za-z0-9_]ASIA)[0-9A-Z]{16}\b",
        "AKIA",
        "ASIA",
    ),
    _d(
        "aws-secret-key",
        r"(?i)aws_?secret_?access_?key[\"']?\s*[=:]\s*[\"']?(?P<s>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        anchor="secret",
        fold=True,
    ),
    _d("jwt", r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "eyJ"),
    _d("gcp-api-key", _word("AIza") + r"[0-9A-Za-z_-]{35}", "AIza"),
    _d("slack-token", _word("xox") + r"[abprse]-[A-Za-z0-9-]{10,}", "xox"),
    _d("slack-webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}", "hooks.slack.com"),
    _d("huggingface-token", _word("hf_") + r"[A-Za-z0-9]{30,}", "hf_"),
    _d(
        "stripe-key",
        r"(?:sk|rk)_(?<![A-Za-z0-9_]sk_)(?<![A-Za-z0-9_]rk_)(?:live|test)_[A-Za-z0-9]{20,}",
        "k_live_",
        "k_test_",
    ),
    _d(
        "flag",
        r"--(?<![\w-]--)(?:[A-Za-z0-9]+[-_])*" + _FLAG_WORDS + _FLAG_GAP + _VALUE,
        "--",
        flags=re.I,
    ),
    # Short flags that take a password, only for the programs where they do: sshpass -p X, mysql -pX.
    _d("flag", _word("sshpass") + r"(?:[ \t]+-[A-Za-oq-z]\S*)*[ \t]+-p[ \t]*(?P<s>[^\s\"']{3,})", "sshpass"),
    _d(
        "flag",
        _word("redis-cli") + r"(?:[ \t]+[^\s|;&]+){0,20}?[ \t]+-a[ \t]+(?P<s>[^\s\"'-][^\s\"']{2,})",
        "redis-cli",
    ),
    _d(
        "flag",
        r"(?:mysql|mariadb)[a-z-]*(?:[ \t]+[^\s|;&]+){0,20}?[ \t]+-p(?P<s>[^\s\"'-][^\s\"']{2,})",
        "mysql",
        "mariadb",
    ),
    # A credential header written out as text (curl -H, a logged request): custom X-...-Auth/-Token/-Key
    # headers lose their value, a Cookie line all of it.
    _d(
        "header",
        r"(?i)(?<![\w-])(?:x-[a-z0-9-]*?(?:auth|token|key|secret|session|password)(?:-[a-z0-9-]*)?[ \t]*:[ \t]*"
        r"(?P<s>[^\s\"'\\,;]{3,})|(?:set-)?cookie[ \t]*:[ \t]*(?P<c>[^\r\n\"'\\]{3,}))",
        anchor=(r"x-[a-z0-9-]*(?:auth|token|key|secret|session|password)[a-z0-9-]*[ \t]*:", r"cookie[ \t]*:"),
        fold=True,
    ),
    _d(
        "assignment",
        # `==` compares or pins a version (`tiktoken==0.12.0` in a pip freeze); it assigns nothing.
        # `token: str = "..."`: the annotation is skipped and the value after `=` is the secret.
        rf"(?i){_KEY_WORDS}\\*[\"']?[ \t]*(?::[ \t]*{_TYPE_NAME}(?:\[[^\]\n]{{0,80}}\])?[ \t]*(?==[^=]))?"
        rf"(?:=>|:=|[=:])(?!=)[ \t]*\\*[\"']?(?!{_TYPE_NAME})" + _VALUE,
        anchor=_ASSIGNMENT_ANCHORS,
        fold=True,
        reach=len("private_"),  # a match starts at its key word; the anchor at that word's `key` at most
    ),
    _d(
        "email",
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b",
        "@",
        anchor=r"@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b",
        reach=64,  # the local part before the `@` the anchor starts at
    ),
    _d("phone", r"\+(?<![\w+]\+)[1-9]\d{0,2}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}(?!\w)", "+"),
    _d("phone", r"(?<![\w-])\(?\d{3}\)?[ .-]\d{3}-\d{4}(?![\w-])", "-", anchor=r"-\d{4}(?![\w-])"),
)

# Kinds only the strict policies use: noisy in logs, but personal data in some jurisdictions.
EXTRA_DETECTORS: tuple[Detector, ...] = (
    _d(
        "ip-address",
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])",
        ".",
        anchor=r"\d\.\d{1,3}\.\d",
    ),
)
