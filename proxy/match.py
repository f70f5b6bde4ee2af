"""Request matching for replay: normalise, index, take in recorded order, explain misses.

Input: the recorded exchanges and each live request (both already redacted, so secrets compare by
placeholder; placeholders compare by kind, so a pack redacted under the tenant's key still matches live
requests redacted under the proxy's own key). Output: the exchange to serve, or the nearest recorded requests with the matcher
that failed for each.

Rules:
- a request matches a recorded one when every matcher in MATCHERS passes: method, scheme, host, port,
  path, query, body;
- JSON bodies are parsed and compared without the ignored fields (a bare name is ignored at any depth,
  a dotted name only at that path from the root); query parameters with an ignored name are dropped too;
  other bodies compare as bytes;
- identical requests are served in recorded order, each recording once; one more is a miss;
- lookup is one dict access on a key hashing every normalised field, so latency does not grow with the
  cassette; a request byte for byte like a recorded one is not even normalised, one that matches as it
  is is not redacted (`CassetteIndex.match`); only a miss scans the cassette for the nearest candidates.
Matchers are small named functions raising AssertionError with the difference (as in vcrpy).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .cassette import Exchange, RecordedRequest
from .redact import collapse

__all__ = [
    "DEFAULT_IGNORE_FIELDS",
    "MATCHERS",
    "CassetteIndex",
    "Failure",
    "Nearest",
    "Normalised",
    "Normaliser",
    "failures",
]

# Fields that change on every run without changing what is asked: ids, timestamps, client bookkeeping.
DEFAULT_IGNORE_FIELDS: tuple[str, ...] = (
    "request_id",
    "requestId",
    "idempotency_key",
    "timestamp",
    "created",
    "created_at",
    "stream_options",
    "user",
    "metadata.user_id",
    "metadata.session_id",
    "metadata.request_id",
)

_MAX_DIFF_LINES = 20
_MAX_LINE = 200


@dataclass(frozen=True)
class Normalised:
    """A request reduced to what matching compares."""

    method: str
    scheme: str
    host: str
    port: int
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes  # canonical JSON when the body is JSON, else the raw bytes
    is_json: bool
    url: str = field(compare=False)

    @property
    def key(self) -> bytes:
        parts = (self.method, self.scheme, self.host, str(self.port), self.path, repr(self.query))
        digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape"))
        digest.update(b"\x00")
        digest.update(self.body)
        return digest.digest()


class Normaliser:
    """Turns a RecordedRequest into a Normalised one, dropping the ignored fields."""

    def __init__(self, ignore_fields: Iterable[str] = DEFAULT_IGNORE_FIELDS) -> None:
        self.ignore = frozenset(ignore_fields)
        self._anywhere = frozenset(f for f in self.ignore if "." not in f)
        self._paths = frozenset(tuple(f.split(".")) for f in self.ignore if "." in f)

    def __call__(self, request: RecordedRequest) -> Normalised:
        body, is_json = self._body(request.body)
        return Normalised(
            method=request.method.upper(),
            scheme=request.scheme.lower(),
            host=request.host.lower().rstrip("."),
            port=request.port,
            path=collapse(request.path or "/"),
            query=tuple(sorted((k, collapse(v)) for k, v in request.query if k not in self._anywhere)),
            body=body,
            is_json=is_json,
            url=request.url,
        )

    def _body(self, body: bytes) -> tuple[bytes, bool]:
        if b"REDACTED_" in body:
            body = collapse(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        stripped = body.lstrip()
        if stripped[:1] not in (b"{", b"["):
            return body, False
        anywhere = self._anywhere
        try:  # the bare names go as each object is parsed, the dotted paths after
            parsed = json.loads(
                body, object_pairs_hook=lambda pairs: {k: v for k, v in pairs if k not in anywhere}
            )
        except (ValueError, RecursionError):
            return body, False
        for dotted in self._paths:
            _drop_path(parsed, dotted)
        return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(), True


def _drop_path(value: object, path: tuple[str, ...]) -> None:
    """Remove the field at `path` from the root `value`, in place; lists keep the path of their parent."""
    if isinstance(value, list):
        for item in value:
            _drop_path(item, path)
    elif isinstance(value, dict):
        if len(path) == 1:
            value.pop(path[0], None)
        elif path[0] in value:
            _drop_path(value[path[0]], path[1:])


# --- matchers: (live, recorded) -> None, or AssertionError saying how they differ -------------------


def method(live: Normalised, recorded: Normalised) -> None:
    if live.method != recorded.method:
        raise AssertionError(f"{live.method} != {recorded.method} (recorded)")


def scheme(live: Normalised, recorded: Normalised) -> None:
    if live.scheme != recorded.scheme:
        raise AssertionError(f"{live.scheme} != {recorded.scheme} (recorded)")


def host(live: Normalised, recorded: Normalised) -> None:
    if live.host != recorded.host:
        raise AssertionError(f"{live.host} != {recorded.host} (recorded)")


def port(live: Normalised, recorded: Normalised) -> None:
    if live.port != recorded.port:
        raise AssertionError(f"{live.port} != {recorded.port} (recorded)")


def path(live: Normalised, recorded: Normalised) -> None:
    if live.path != recorded.path:
        raise AssertionError(f"{live.path} != {recorded.path} (recorded)")


def query(live: Normalised, recorded: Normalised) -> None:
    if live.query != recorded.query:
        raise AssertionError(f"{list(live.query)} != {list(recorded.query)} (recorded)")


def body(live: Normalised, recorded: Normalised) -> None:
    if live.body != recorded.body:
        raise AssertionError(_body_diff(live, recorded))


Matcher = Callable[[Normalised, Normalised], None]
MATCHERS: tuple[Matcher, ...] = (method, scheme, host, port, path, query, body)


@dataclass(frozen=True)
class Failure:
    matcher: str
    difference: str


def failures(live: Normalised, recorded: Normalised, matchers: Sequence[Matcher] = MATCHERS) -> list[Failure]:
    """Every matcher that fails for this pair, with its explanation; empty when they match."""
    out = []
    for matcher in matchers:
        try:
            matcher(live, recorded)
        except AssertionError as e:
            out.append(Failure(matcher.__name__, str(e)))
    return out


def _body_diff(live: Normalised, recorded: Normalised) -> str:
    def lines(n: Normalised) -> list[str] | None:
        if n.is_json:
            return json.dumps(json.loads(n.body), indent=1, sort_keys=True, ensure_ascii=False).splitlines()
        try:
            return n.body.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            return None

    new, old = lines(live), lines(recorded)
    if new is None or old is None:
        return f"the bodies differ ({len(live.body)} bytes in this request, {len(recorded.body)} recorded)"
    diff = list(difflib.unified_diff(old, new, "recorded", "this request", n=1, lineterm=""))[2:]
    shown = [d if len(d) <= _MAX_LINE else d[:_MAX_LINE] + "…" for d in diff[:_MAX_DIFF_LINES]]
    if len(diff) > _MAX_DIFF_LINES:
        shown.append(f"… ({len(diff) - _MAX_DIFF_LINES} more lines)")
    return "\n".join(shown)


@dataclass(frozen=True)
class Nearest:
    """A recorded request close to a missed one, and why it did not match."""

    index: int
    method: str
    url: str
    failed: tuple[Failure, ...]
    already_served: bool


def _verbatim_key(r: RecordedRequest) -> bytes:
    """A digest of every field a Normalised is made from, as they are."""
    parts = (r.method, r.scheme, r.host, str(r.port), r.path, repr(r.query))
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape"))
    digest.update(b"\x00")
    digest.update(r.body)
    return digest.digest()


class CassetteIndex:
    """Recorded exchanges by match key, each key a queue in recorded order."""

    def __init__(self, exchanges: Sequence[Exchange], normaliser: Normaliser) -> None:
        self.exchanges = exchanges
        self.normaliser = normaliser
        self.normalised = [normaliser(e.request) for e in exchanges]
        self._queues: dict[bytes, deque[int]] = {}
        self._verbatim: dict[bytes, bytes] = {}  # a recorded request's exact fields -> its match key
        for i, n in enumerate(self.normalised):
            self._queues.setdefault(n.key, deque()).append(i)
            self._verbatim[_verbatim_key(exchanges[i].request)] = n.key
        self.served: set[int] = set()

    def match(
        self, request: RecordedRequest, redact: Callable[[RecordedRequest], RecordedRequest]
    ) -> tuple[int | None, Normalised | None]:
        """The exchange to serve for a live request (None on a miss) and the request normalised after
        redaction (None when not needed). Cheapest first, same answer: a request field for field like a
        recorded one normalises like it; else it is normalised as it is, and redacted only when that
        misses (a recorded request holds no secret the redactor finds, so one matching as it is had none)."""
        key = self._verbatim.get(_verbatim_key(request))
        found = self._take(key) if key is not None else None
        if found is not None:
            return found, None
        live = self.normaliser(request)
        found = self.take(live)
        if found is None:
            live = self.normaliser(redact(request))
            found = self.take(live)
        return found, live

    def take(self, live: Normalised) -> int | None:
        """The index of the next unserved exchange matching `live`, or None."""
        return self._take(live.key)

    def _take(self, key: bytes) -> int | None:
        queue = self._queues.get(key)
        if not queue:
            return None
        i = queue.popleft()
        self.served.add(i)
        return i

    def unused(self) -> list[int]:
        return [i for i in range(len(self.exchanges)) if i not in self.served]

    def nearest(self, live: Normalised, limit: int = 3) -> list[Nearest]:
        """The recorded requests failing the fewest matchers, closest bodies first."""
        scored = []
        for i, recorded in enumerate(self.normalised):
            failed = failures(live, recorded, MATCHERS[:-1])  # body last: its diff is the costly part
            if recorded.body != live.body:
                failed.append(Failure("body", ""))
            scored.append((len(failed), i, failed))
        scored.sort(key=lambda s: (s[0], s[1] in self.served, s[1]))
        top = scored[: limit * 4]
        # Among the best few, prefer the closest body; only these pay for a similarity ratio.
        top.sort(
            key=lambda s: (
                s[0],
                s[1] in self.served,
                -difflib.SequenceMatcher(
                    None, live.body[:4000], self.normalised[s[1]].body[:4000]
                ).quick_ratio(),
            )
        )
        out = []
        for _, i, failed in top[:limit]:
            recorded = self.normalised[i]
            explained = tuple(
                Failure("body", _body_diff(live, recorded)) if f.matcher == "body" else f for f in failed
            )
            out.append(Nearest(i, recorded.method, recorded.url, explained, i in self.served))
        return out
