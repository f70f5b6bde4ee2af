"""The redaction pass run when a pack is built (the privileged way back is `unseal`).

Inputs: the builder's staged members and the manifest, `PrivacyOptions` (policy name, tenant keyring,
whether to encrypt payloads, principal). Output: the manifest to write (artifacts renamed after their new
hashes, expectations pointing at them, a `privacy` section with policy, key ids, sealed member and audit);
the builder's members rewritten in place.
Rules:
- Every text member is redacted: prompts, traces, cassettes (headers, URLs, bodies), env snapshot files,
  patches, the dirty baseline and artifacts (tool output, logs, files). JSON members are redacted value by
  value so they stay valid JSON (object keys too). A member that is not UTF-8 (a latin-1 file, a binary
  artifact) is redacted all the same: its bytes are read with surrogateescape, so every secret in its
  text-like parts goes and every other byte comes back unchanged; a member (or JSON value) that is one
  base64 blob is decoded and, when its text holds a secret, replaced whole. Only the git bundle is left
  alone: a compressed packfile whose object ids and checksums would break under any edit, so secrets
  committed to the base tree stay in it (the recorder bundles the base tree alone by default, scans it
  and warns; encrypt payloads to keep them unreadable).
- The manifest's own secrets go too: command lines (the agent's and each step's, through
  `policy.redact_argv`), environment values (through `policy.redact_env_value`: whole values for keys the
  policy denies and for token-shaped values) and the git remote's URL credentials.
- Each secret becomes `REDACTED_<kind>_<hex>`, the hex an HMAC under the tenant's redaction key (random
  per pack without a keyring: stable inside the pack only). Originals are kept only when a keyring is
  given, sealed (AES-256-GCM) in `privacy/sealed.bin`; without one they are gone.
- Steps whose expected output was redacted compare through the `secrets` normaliser, so a replay that
  prints the live secret (or another of the same kind) still reproduces.
- With `encrypt_payloads`, prompts/, cassettes/, artifacts/, traces.jsonl, patches/ and workspace/ (the
  dirty baseline and the git bundle) are sealed member by member after redaction, and the manifest's
  command lines and environment values are sealed in `privacy/manifest.bin` (see `sealedmanifest`);
  `unseal.open_payloads` (called by `pack.unpack` with a keyring) opens them and returns the full manifest.
- The pass may start before the build: a `prescan.Prescan` made with the options the build will use runs
  the detectors over members as the builder gets them (on threads, bounded memory), notes those left as
  they are and redacts the others; `protect` with the same policy and known secrets (or more, for the
  text members in which none of the new values is written) reads and scans only the others, and takes
  what was redacted ahead when its key is the same too (see that module).
- Keys and sealing (`crypto`, `sealedmanifest`) and the cassette format are imported when a pack uses
  them: a build without a keyring or cassettes does not pay for their imports.
- Patches are redacted too (source code, where secrets hide), so a patch with a secret no longer applies
  to the unredacted base commit; with the keyring, `unseal.open_payloads` puts the original values back into
  the patches (and the dirty baseline), so a privileged replay applies exactly what was recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets as _secrets
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from proxy.redact import PLACEHOLDER_RE, remember
from runner.errors import PrivacyError
from runner.pack.manifest import (
    BUNDLE_PATH,
    Artifact,
    CommandStep,
    Comparison,
    Expectation,
    Manifest,
    MemberDigest,
    Privacy,
    Step,
)
from runner.privacy import audit
from runner.privacy.membertext import bytes_of, lines_of, rewrite_text, text_of
from runner.privacy.policy import (
    DEFAULT_POLICY,
    Policy,
    get,
    known_detectors,
    redact_argv,
    redact_env_value,
)
from runner.privacy.scan import ScanRedactor

if TYPE_CHECKING:
    from runner.privacy.crypto import Keyring

__all__ = [
    "ENCRYPTED_PREFIXES",
    "SEALED_FORMAT",
    "SEALED_MEMBER",
    "Builder",
    "PrivacyOptions",
    "Redacted",
    "Secret",
    "is_json",
    "protect",
    "rewrite_text",
    "scanned",
]

SEALED_MEMBER = "privacy/sealed.bin"
ENCRYPTED_PREFIXES = ("prompts/", "cassettes/", "artifacts/", "traces.jsonl", "patches/", "workspace/")
SEALED_FORMAT = "runner-sealed/1"
_ARTIFACT = "artifacts/sha256/"
_AHEAD = 16 << 20  # member bytes read ahead of the rewrites (at least one member)
_SHORT = 64  # texts up to this long are remembered when clean (see `_Pass.text`)


class Builder(Protocol):
    """What the pass needs from `runner.pack.PackBuilder`."""

    @property
    def members(self) -> dict[str, MemberDigest]: ...

    def member_bytes(self, member: str) -> bytes: ...

    def rewrite(self, member: str, data: bytes, sha256: str | None = None) -> str: ...

    def rewrite_in_place(self, member: str, data: bytes) -> None: ...

    def add_bytes(self, member: str, data: bytes) -> MemberDigest: ...


@dataclass(frozen=True)
class PrivacyOptions:
    """How a pack is protected when it is built. The default is redaction with `default-v1`."""

    policy: str | None = DEFAULT_POLICY  # None: no redaction at all (an explicit choice)
    keyring: Keyring | None = None  # seals the originals; without it they are dropped
    encrypt_payloads: bool = False
    sign: bool = False  # write signature.json with the keyring's newest key
    principal: str | None = None  # who recorded; default $RUNNER_PRINCIPAL, else user@host
    now: Callable[[], str] | None = None  # stamps the audit's packed_at (off by default: deterministic)
    # Placeholders made before the build (the recording proxy's): their originals, sealed with the rest,
    # and, without a keyring, the key that made them (so one value gets one placeholder in the pack).
    known: tuple[Secret, ...] = ()
    redaction_key: bytes | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PrivacyOptions:
        """$RUNNER_REDACTION_POLICY (a name, or `off`), $RUNNER_KEYRING (a keyring file),
        $RUNNER_ENCRYPT_PAYLOADS and $RUNNER_SIGN (1/true), $RUNNER_PRINCIPAL."""
        name = environ.get("RUNNER_REDACTION_POLICY", DEFAULT_POLICY)
        ring = environ.get("RUNNER_KEYRING")
        return cls(
            policy=None if name.lower() in {"off", "none"} else name,
            keyring=_load_keyring(Path(ring)) if ring else None,
            encrypt_payloads=environ.get("RUNNER_ENCRYPT_PAYLOADS", "").lower() in {"1", "true", "yes"},
            sign=environ.get("RUNNER_SIGN", "").lower() in {"1", "true", "yes"},
            principal=environ.get("RUNNER_PRINCIPAL") or None,
        )


def _load_keyring(path: Path) -> Keyring:
    from runner.privacy import crypto

    return crypto.load_keyring(path)


@dataclass(frozen=True)
class Secret:
    token: str
    kind: str
    value: str


@dataclass
class _Pass:
    """One redaction pass: the redactor and what it found (the `known` secrets, then every replacement:
    `found` by placeholder, `counts` by kind, as of the last `settle`)."""

    policy: Policy
    key: bytes
    known: tuple[Secret, ...] = ()

    def __post_init__(self) -> None:
        self.redactor = ScanRedactor(
            self.key,
            (*known_detectors((s.kind, s.value) for s in self.known), *self.policy.detectors),
            self._note,
        )
        self.counts = Counter(s.kind for s in self.known)
        self._notes: list[tuple[str, str, str]] = []
        self._settled: list[tuple[str, str, str]] = []  # the notes `settle` folded into `counts`
        self._clean: dict[str, bool] = {}  # short texts the detectors leave as they are
        self._denied: dict[str, bool] = {}  # JSON key -> whether the policy masks its value

    def _note(self, kind: str, value: str, token: str) -> None:
        self._notes.append((kind, value, token))  # one append: atomic on any of the pass's threads

    def notes(self) -> tuple[tuple[str, str, str], ...]:
        """The replacements noted since the last `settle`: (kind, secret, placeholder)."""
        return tuple(self._notes)

    def adopt(self, notes: tuple[tuple[str, str, str], ...]) -> None:
        """Take the notes of another pass with the same key (a member redacted ahead, see `Redacted`)."""
        self._notes.extend(notes)

    def settle(self) -> None:
        """Fold the replacements noted so far into `counts` and `found`."""
        notes, self._notes = self._notes, []
        self.counts.update(kind for kind, _, _ in notes)
        self._settled += notes

    @property
    def found(self) -> dict[str, Secret]:
        """The secret behind each placeholder: the known ones, then each replacement's as last noted (made
        when asked: only a keyring seals them; a pass full of secrets would spend its end on this map)."""
        found = {s.token: s for s in self.known}
        found.update({token: Secret(token, kind, value) for kind, value, token in self._settled})
        return found

    def text(self, text: str) -> str:
        """`text` redacted. Short texts (JSON keys, names, ids) repeat from line to line: one found clean
        is remembered as such (the same text is always left the same)."""
        if len(text) > _SHORT:
            return self.redactor.text(text)
        if text in self._clean:
            return text
        new = self.redactor.text(text)
        if new == text:
            remember(self._clean, text, True)
        return new

    def value_of(self, key: str, value: str) -> str:
        """A JSON value under `key`: whole when the policy denies the key, else through the detectors."""
        denied = self._denied.get(key)
        if denied is None:
            denied = self.policy.masks_key(key)
            remember(self._denied, key, denied)
        if denied and value and not PLACEHOLDER_RE.fullmatch(value):
            return self.redactor.placeholder(value, self.redactor.kind_of(value, "credential"))
        return self.text(value)

    def strings(self, values: list[str]) -> list[str]:
        """A JSON list of strings, read as a command line: `["--password", "x"]` loses the "x"."""
        return redact_argv(values, self.redactor)

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """A command's environment: also token-shaped values whatever their name (ids in JSON are not)."""
        return {k: redact_env_value(k, v, self.redactor, self.policy) for k, v in env.items()}

    def untouched(self, name: str, data: memoryview) -> bool:
        """True when `member(name, data)` is surely None, decided by the scan alone where it can be (a text
        member without a possible match); False when not known that cheaply. JSON members go through
        `member` (escapes and denied keys are only seen once parsed)."""
        if not is_json(name):
            return self.redactor.untouched(data)
        return self.member(name, bytes_of(data)) is None

    def member(self, name: str, data: bytes) -> bytes | None:
        """The redacted content, or None when the member holds nothing to redact. Bytes that are not
        UTF-8 are scanned too (see `membertext.text_of`) and come back unchanged around the placeholders."""
        if not is_json(name):
            return None if (redacted := self.redactor.redact(data)) is data else redacted  # rewrite_text's
        text = text_of(data)
        if name.startswith("cassettes/"):
            new = "".join(self._exchange(line) for line in lines_of(text))
        else:
            new = rewrite_text(name, text, self.text, self.value_of, self.strings)
        return new.encode("utf-8", "surrogateescape") if new != text else None

    def _exchange(self, line: str) -> str:
        """A cassette line through the proxy's own redaction of an exchange (sensitive headers and query
        parameters lose their whole value); a line that is not an exchange is redacted as JSON."""
        from proxy.cassette import Exchange  # only for packs with cassettes

        try:
            exchange = Exchange.from_json(json.loads(line))
        except (ValueError, RecursionError):
            return rewrite_text(".jsonl", line, self.text, self.value_of, self.strings)
        redacted = exchange.redacted(self.redactor)
        if redacted == exchange:
            return line
        end = line[len(line.rstrip("\r\n")) :]
        return json.dumps(redacted.to_json(), ensure_ascii=False, separators=(",", ":")) + end


def scanned(name: str) -> bool:
    """Whether the pass reads a member (not the git bundle, see the module docstring; not its own)."""
    return name != BUNDLE_PATH and not name.startswith("privacy/")


@dataclass(frozen=True)
class Redacted:
    """A member's content redacted ahead of `protect` (by `prescan.Prescan`), its sha256 and the notes of
    the replacements made."""

    data: bytes
    sha256: str
    notes: tuple[tuple[str, str, str], ...]


class Ahead(Protocol):
    """What `protect` takes from a pass run ahead with the same options: its key and what it redacted."""

    key: bytes

    def take(self, name: str, sha256: str) -> Redacted | None: ...


def pass_key(options: PrivacyOptions) -> bytes | None:
    """The key placeholders are made with, when the options give one (the keyring's, or the key given)."""
    return options.keyring.redaction_key if options.keyring else options.redaction_key


def run_for(options: PrivacyOptions, key: bytes) -> _Pass:
    """A pass with the options' policy and known secrets, making placeholders with `key`."""
    assert options.policy is not None
    return _Pass(get(options.policy), key, known=options.known)


def is_json(name: str) -> bool:
    """Whether the pass reads a member value by value (cassettes, JSON and JSON lines)."""
    return name.startswith("cassettes/") or name.endswith((".json", ".jsonl"))


def protect(
    builder: Builder,
    manifest: Manifest,
    options: PrivacyOptions,
    untouched: Callable[[str, MemberDigest], bool] | None = None,
    ahead: Ahead | None = None,
) -> Manifest:
    """Redact every text member and the manifest, seal originals and payloads, add the audit summary.
    Members `untouched` says a `prescan.Prescan` with these options left as they are are not read again;
    those `ahead` (one with these options, see `Prescan.matches`) redacted are taken as it made them, and
    its key makes the placeholders."""
    if options.policy is None:
        if options.encrypt_payloads:
            raise PrivacyError("encrypted payloads need redaction on: pick a policy (e.g. default-v1)")
        return manifest
    if options.encrypt_payloads and options.keyring is None:
        raise PrivacyError("encrypted payloads need a keyring: pass --key FILE (see `runner keys new`)")
    run = run_for(options, ahead.key if ahead else pass_key(options) or _secrets.token_bytes(32))
    renamed: dict[str, str] = {}  # old sha256 -> new, for artifacts whose content changed
    changed: set[str] = set()
    members = builder.members
    names = [n for n in sorted(members) if scanned(n) and not (untouched and untouched(n, members[n]))]
    ready: dict[str, tuple[bytes | None, str]] = {}
    for name in names:
        if ahead is not None and (got := ahead.take(name, members[name].sha256)) is not None:
            ready[name] = (got.data, got.sha256)
            run.adopt(got.notes)
    # The others read, scanned and hashed on threads (those release the GIL), up to _AHEAD bytes ahead; all
    # rewritten here in order (deterministic: the builder compresses what is rewritten as it comes).
    queue, held = iter([n for n in names if n not in ready]), 0
    pending: deque[Future[tuple[bytes | None, str]]] = deque()
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for name in names:
            while (not pending or held < _AHEAD) and (later := next(queue, None)) is not None:
                pending.append(pool.submit(_redacted, run, builder, later))
                held += members[later].size
            if name in ready:
                new, sha256 = ready.pop(name)
            else:
                new, sha256 = pending.popleft().result()
                held -= members[name].size
            if new is None:
                continue
            changed.add(name)
            moved = builder.rewrite(name, new, sha256)
            if moved != name:
                renamed[name.removeprefix(_ARTIFACT)] = moved.removeprefix(_ARTIFACT)
    manifest = _redact_manifest(manifest, run, renamed, builder.members)
    run.settle()
    summary = _audit(builder, manifest, run, changed, options)
    extra: dict[str, Any] = {"audit": summary.to_dict()}
    key_ids: tuple[str, ...] = ()
    if options.keyring is not None:
        from runner.privacy import crypto, sealedmanifest

        key_ids = (options.keyring.newest.id,)
        extra["tenant"] = options.keyring.tenant
        extra["sealed"] = SEALED_MEMBER
        body = {
            "format": SEALED_FORMAT,
            "secrets": [vars(s) for s in sorted(run.found.values(), key=lambda s: s.token)],
        }
        builder.add_bytes(
            SEALED_MEMBER, crypto.seal(options.keyring, json.dumps(body).encode(), SEALED_MEMBER)
        )
        if options.encrypt_payloads:
            sealed = [n for n in sorted(builder.members) if n.startswith(ENCRYPTED_PREFIXES)]
            for name in sealed:
                builder.rewrite_in_place(name, crypto.seal(options.keyring, builder.member_bytes(name), name))
            extra["encrypted_members"] = sealed
            manifest, sealed_manifest = sealedmanifest.hide(manifest, options.keyring)
            builder.add_bytes(sealedmanifest.SEALED_MANIFEST, sealed_manifest)
            extra["sealed_manifest"] = sealedmanifest.SEALED_MANIFEST
    privacy = Privacy(
        redaction_policy=run.policy.name,
        encrypted_payloads=options.encrypt_payloads,
        key_ids=key_ids,
        extra={**manifest.privacy.extra, **extra},
    )
    return replace(manifest, privacy=privacy)


def _redacted(run: _Pass, builder: Builder, name: str) -> tuple[bytes | None, str]:
    """A member's redacted content (None when unchanged) and the sha256 of that."""
    new = run.member(name, builder.member_bytes(name))
    return new, "" if new is None else hashlib.sha256(new).hexdigest()


def _redact_manifest(
    m: Manifest, run: _Pass, renamed: Mapping[str, str], members: Mapping[str, MemberDigest]
) -> Manifest:
    def sha(h: str | None) -> str | None:
        return None if h is None else renamed.get(h, h)

    def artifact(a: Artifact) -> Artifact:
        new, name = renamed.get(a.sha256), a.name and run.text(a.name)
        if new is None:
            return a if name == a.name else replace(a, name=name)
        path = _ARTIFACT + new
        return replace(a, path=path, sha256=new, size=members[path].size, name=name)

    steps: list[Step] = []
    for step in m.steps:
        if not isinstance(step, CommandStep):
            steps.append(step)
            continue
        e = step.expect
        outputs = {p: renamed.get(h, h) for p, h in e.outputs.items()}
        compare = step.compare
        redacted_outputs = {p for p, h in e.outputs.items() if h in renamed}
        compare = Comparison(
            stdout=_with_secrets(compare.stdout, e.stdout in renamed),
            stderr=_with_secrets(compare.stderr, e.stderr in renamed),
            # A redacted file can no longer equal the replayed one byte for byte: compare it as text.
            outputs={
                **{p: "text" for p in redacted_outputs},
                **{p: r for p, r in compare.outputs.items() if not (p in redacted_outputs and r == "exact")},
            },
        )
        steps.append(
            replace(
                step,
                argv=tuple(redact_argv(step.argv, run.redactor)),
                env=run.env(step.env),
                expect=Expectation(e.exit_code, sha(e.stdout), sha(e.stderr), outputs),
                compare=compare,
            )
        )
    artifacts = tuple(dict.fromkeys(artifact(a) for a in m.artifacts))
    git = replace(m.git, remote=m.git.remote and run.text(m.git.remote))
    agent = m.agent
    if agent.command is not None:
        command = replace(
            agent.command,
            argv=tuple(redact_argv(agent.command.argv, run.redactor)),
            env=run.env(agent.command.env),
        )
        agent = replace(agent, command=command)
    return replace(m, steps=tuple(steps), artifacts=artifacts, git=git, agent=agent)


def _with_secrets(rules: tuple[str, ...], redacted: bool) -> tuple[str, ...]:
    return (*rules, "secrets") if redacted and "secrets" not in rules else rules


def _audit(
    builder: Builder, m: Manifest, run: _Pass, changed: set[str], options: PrivacyOptions
) -> audit.Audit:
    commands = [(f"steps[{s.id}]", " ".join(s.argv)) for s in m.steps if isinstance(s, CommandStep)]
    texts = [
        (name, builder.member_bytes(name).decode("utf-8", "replace"))
        for name in sorted(builder.members)
        if name == "traces.jsonl" or name.startswith("prompts/")
    ]
    hosts: list[str] = []
    for c in m.cassettes:
        for line in builder.member_bytes(c.path).decode("utf-8", "replace").splitlines():
            try:
                hosts.append(str(json.loads(line)["request"]["host"]))
            except (ValueError, KeyError, TypeError):
                continue
    written = sorted(n for n in changed if n.startswith("patches/") or n == m.git.baseline_patch)
    return audit.summarise(
        who=audit.principal(options.principal),
        session_created_at=m.session.created_at,
        redactions=run.counts,
        commands=commands,
        texts=texts,
        secret_files=written,
        hosts=hosts,
        traces=dict(texts).get("traces.jsonl", ""),
        now=options.now,
    )
