"""The typed model of the pack manifest, format version 1: frozen values, no I/O.

Inputs: none; `runner.pack.manifest` builds these from YAML and back. Outputs: the dataclasses every stage
passes around (`Manifest`, its steps, environment, artifacts, integrity) and the format's fixed names.
Rules: values only; validation lives in `runner.pack.manifest` (schema first, then semantic checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BASELINE_PATH",
    "BUNDLE_PATH",
    "FORMAT_VERSION",
    "NORMALISERS",
    "OUTPUT_RULES",
    "Agent",
    "AgentCommand",
    "AgentFile",
    "Artifact",
    "CassetteIndex",
    "Charset",
    "CommandStep",
    "Comparison",
    "DockerfileRef",
    "EnvAction",
    "EnvDecision",
    "EnvKind",
    "EnvSnapshot",
    "Environment",
    "Expectation",
    "GitInputs",
    "ImageRef",
    "Integrity",
    "LlmDefaults",
    "Manifest",
    "MemberDigest",
    "PatchStep",
    "Privacy",
    "Recording",
    "SecretShape",
    "Session",
    "Step",
]

FORMAT_VERSION = 1

# Names of the output normalisers a command step may ask the compare stage to apply before diffing.
# The schema lists the same names (a test keeps them equal); the compare stage implements each one.
NORMALISERS: frozenset[str] = frozenset(
    {"addresses", "durations", "ports", "secrets", "timestamps", "tmp_paths", "uuids"}
)

# How a declared output file is compared: byte for byte, as text after normalisers, or as JUnit XML results.
OUTPUT_RULES: frozenset[str] = frozenset({"exact", "text", "junit"})

BUNDLE_PATH = "workspace/base.bundle"
BASELINE_PATH = "workspace/baseline.diff"


@dataclass(frozen=True)
class Session:
    """The recorded session: its id and when it started."""

    id: str
    created_at: str  # RFC 3339, kept as text so it round-trips exactly


@dataclass(frozen=True)
class AgentFile:
    """A file of the agent's own outside the repository (its script, a config file), stored in the pack."""

    path: str  # where it goes back: absolute, or `~/...` for the home folder of whoever replays
    member: str  # agent/files/NNNN-<name>
    role: Literal["script", "config"] = "config"


@dataclass(frozen=True)
class AgentCommand:
    """How the recorded agent process was started, so replay can run it again against the cassettes."""

    argv: tuple[str, ...]  # in the form that resolves inside the replay image (see argv_recorded)
    cwd: str = "."  # relative to the workspace root
    env: Mapping[str, str] = field(default_factory=dict)  # the variables replayed verbatim
    timeout: float | None = None  # seconds; None: no limit was set when recording
    stdin: Literal["closed"] | None = None  # None in packs older than the field (they ran it closed too)
    argv_recorded: tuple[str, ...] = ()  # argv as it was typed, when `argv` differs from it
    console_script: str | None = None  # argv[0] is this console script of a recorded Python package
    files: tuple[AgentFile, ...] = ()
    # The recorded process's exit code; None when it was stopped (Ctrl-C, its timeout) or in older packs.
    exit_code: int | None = None


@dataclass(frozen=True)
class Agent:
    """The agent that worked in the session: name, version and configuration, how it was started."""

    name: str
    commit: str | None = None
    config_version: str | None = None
    command: AgentCommand | None = None
    patch: str | None = None  # id of the patch step holding what the agent changed


@dataclass(frozen=True)
class GitInputs:
    """The repository the session started from: base commit, uncommitted changes, the bundle."""

    base_commit: str
    remote: str | None = None
    branch: str | None = None
    dirty: bool = False
    baseline_patch: str | None = None  # BASELINE_PATH when dirty: uncommitted changes at session start
    bundle: str = BUNDLE_PATH
    # What the bundle carries: "base" (one squashed commit whose tree is base_commit's), "full" (the whole
    # history; packs without the field) or "N" (the last N first-parent commits, rewritten onto a squashed
    # root). `bundle_commit` is the commit the workspace checks out; None means base_commit itself.
    history: str = "full"
    bundle_commit: str | None = None

    @property
    def checkout(self) -> str:
        """The commit replay checks out of the bundle (its tree is base_commit's tree)."""
        return self.bundle_commit or self.base_commit


@dataclass(frozen=True)
class ImageRef:
    """A container image pinned by digest."""

    reference: str  # name@sha256:<digest>
    id: str | None = None  # local image id (sha256:<hex>), when known


@dataclass(frozen=True)
class DockerfileRef:
    """A Dockerfile stored in the pack, with its base image pinned by digest."""

    path: str  # env/... member holding the Dockerfile
    base_digest: str  # its FROM image, name@sha256:<digest>


@dataclass(frozen=True)
class EnvSnapshot:
    """The interpreter, packages and platform of a session recorded without an image."""

    python: str
    packages: str  # env/... member, `pip freeze` output
    os: str
    arch: str | None = None


EnvKind = Literal["image", "dockerfile", "snapshot"]
EnvAction = Literal["verbatim", "placeholder", "dropped"]
Charset = Literal["hex", "digits", "alnum", "base64url", "base64", "printable"]


@dataclass(frozen=True)
class SecretShape:
    """What a secret looked like, never its value: replay makes a stand-in of the same shape."""

    prefix: str  # a known vendor prefix (`sk-`, `ghp_`), else empty
    length: int
    charset: Charset


@dataclass(frozen=True)
class EnvDecision:
    """What happened to one of the agent's environment variables, and why (e.g. `name-rule:token`)."""

    action: EnvAction
    reason: str
    shape: SecretShape | None = None  # for placeholders


@dataclass(frozen=True)
class Environment:
    """Where the commands ran: an image, a Dockerfile or a snapshot; lockfiles, runtimes, variables."""

    kind: EnvKind
    image: ImageRef | None = None
    dockerfile: DockerfileRef | None = None
    snapshot: EnvSnapshot | None = None
    lockfiles: tuple[str, ...] = ()
    runtimes: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, EnvDecision] = field(default_factory=dict)  # the agent's environment


@dataclass(frozen=True)
class LlmDefaults:
    """The model the session called and the sampling settings it used."""

    provider: str
    model: str
    revision: str | None = None
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class PatchStep:
    """A patch applied to the workspace at this point of the timeline."""

    id: str
    patch: str  # patches/NNNN.diff
    span_id: str | None = None
    reason: str | None = None
    kind: Literal["patch"] = "patch"


@dataclass(frozen=True)
class Expectation:
    """What a command gave when recorded: exit code, output hashes, files it wrote."""

    exit_code: int = 0
    stdout: str | None = None  # sha256 of an indexed artifact
    stderr: str | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)  # workspace-relative path -> sha256


@dataclass(frozen=True)
class Comparison:
    """How replay compares a command's outputs with the recorded ones."""

    stdout: tuple[str, ...] = ()  # normaliser names, from NORMALISERS
    stderr: tuple[str, ...] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)  # path -> rule, from OUTPUT_RULES


@dataclass(frozen=True)
class CommandStep:
    """A command run in the workspace at this point of the timeline, and what it gave."""

    id: str
    argv: tuple[str, ...]
    timeout: float  # seconds
    expect: Expectation
    cwd: str = "."  # relative to the workspace root
    env: Mapping[str, str] = field(default_factory=dict)
    compare: Comparison = field(default_factory=Comparison)
    span_id: str | None = None
    kind: Literal["command"] = "command"


Step = PatchStep | CommandStep


@dataclass(frozen=True)
class Artifact:
    """A content-addressed blob stored in the pack (outputs, prompts, responses, files)."""

    path: str  # artifacts/sha256/<sha256>
    sha256: str
    size: int
    media_type: str
    span_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class CassetteIndex:
    """A cassette of recorded HTTP exchanges stored in the pack."""

    path: str  # cassettes/<name>.jsonl
    format_version: int
    count: int


@dataclass(frozen=True)
class Privacy:
    """How the pack was redacted and sealed."""

    redaction_policy: str | None = None
    encrypted_payloads: bool = False
    key_ids: tuple[str, ...] = ()
    # Fields this version does not know yet; kept, written back and covered by the root digest.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recording:
    """What the recorder saw of the session's HTTP traffic, and what it warned about."""

    exchanges: int = 0
    model_exchanges: int = 0  # requests to a known model API path (/v1/chat/completions, /api/chat, ...)
    loopback: bool = False  # requests to localhost went through the recording proxy
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class MemberDigest:
    """The sha256 and size of a pack member."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Integrity:
    """The digests of every member and the root digest binding them to the manifest body."""

    root: str
    members: Mapping[str, MemberDigest]
    algorithm: str = "sha256"


@dataclass(frozen=True)
class Manifest:
    """The whole manifest of a pack (format version 1)."""

    session: Session
    agent: Agent
    git: GitInputs
    environment: Environment
    steps: tuple[Step, ...] = ()
    llm: LlmDefaults | None = None
    artifacts: tuple[Artifact, ...] = ()
    cassettes: tuple[CassetteIndex, ...] = ()
    privacy: Privacy = field(default_factory=Privacy)
    recording: Recording | None = None  # absent in packs not made by the recorder
    integrity: Integrity | None = None  # filled by pack.PackBuilder.build
    format_version: int = FORMAT_VERSION

    def referenced_members(self) -> set[str]:
        """Every pack member this manifest points at (all must exist in the pack)."""
        refs = {self.git.bundle, *(a.path for a in self.artifacts), *(c.path for c in self.cassettes)}
        refs.update(self.environment.lockfiles)
        if self.git.baseline_patch:
            refs.add(self.git.baseline_patch)
        if self.environment.dockerfile:
            refs.add(self.environment.dockerfile.path)
        if self.environment.snapshot:
            refs.add(self.environment.snapshot.packages)
        refs.update(s.patch for s in self.steps if isinstance(s, PatchStep))
        if self.agent.command:
            refs.update(f.member for f in self.agent.command.files)
        return refs
