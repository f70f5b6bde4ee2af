"""The repro pack manifest, format version 1: JSON Schema validation and YAML (de)serialisation.

The typed model lives in `runner.pack.model`; its names are re-exported here, the one import for callers.

Inputs: the text of `manifest.yaml` (untrusted). Outputs: a frozen `Manifest`, or YAML text from one.
Rules:
- YAML is read by `runner.pack.strictyaml` (a strict `yaml.SafeLoader`: duplicate keys, aliases, merge
  keys, over-long or 64-bit-overflowing integers and impossible timestamps are refused with their line);
  the parsed tree must be plain JSON data (no non-finite numbers) before anything else looks at it.
- An unknown `format_version` is refused before schema validation, so a newer pack gets a clear message.
- The shipped schema (`manifest.schema.json`) is the single source of structural truth; errors name the
  field as a path, e.g. `steps[2].timeout: -1 is less than the minimum of 1`. jsonschema_rs (compiled)
  passes a valid manifest; what it refuses goes to jsonschema, which decides and words the error.
- Checks the schema cannot express (unique step ids, artifact paths matching their hashes, expectations
  pointing at indexed artifacts) run right after it, with the same kind of message.
- `root_digest` binds the manifest body (everything but `integrity`) to the member hashes, so editing any
  field of a packed manifest is detected by `pack.verify`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any

from runner.errors import PackError
from runner.pack.model import (
    BASELINE_PATH,
    BUNDLE_PATH,
    FORMAT_VERSION,
    NORMALISERS,
    OUTPUT_RULES,
    Agent,
    AgentCommand,
    AgentFile,
    Artifact,
    CassetteIndex,
    CommandStep,
    Comparison,
    DockerfileRef,
    EnvDecision,
    Environment,
    EnvSnapshot,
    Expectation,
    GitInputs,
    ImageRef,
    Integrity,
    LlmDefaults,
    Manifest,
    MemberDigest,
    PatchStep,
    Privacy,
    Recording,
    SecretShape,
    Session,
    Step,
)

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
    "CommandStep",
    "Comparison",
    "DockerfileRef",
    "EnvDecision",
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
    "dump",
    "fast_validator",
    "load",
    "prepare",
    "root_digest",
    "schema",
    "to_dict",
    "validate",
]

_MAX_DEPTH = 32
_MAX_MESSAGE = 240


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of format version 1, as shipped in the package."""
    text = resources.files(__package__).joinpath("manifest.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> Any:
    import jsonschema  # slow to import: only for what jsonschema_rs refuses

    return jsonschema.Draft202012Validator(schema())


@cache
def fast_validator() -> Any:
    """jsonschema_rs's validator of the schema (~40x faster than jsonschema on 300 artifacts), compiled at
    the first call and kept."""
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(schema())


def prepare() -> None:
    """Import the YAML reader and writer and compile the schema's validator now (~40 ms, done once): a caller
    may do it while it waits on other threads rather than at its first manifest."""
    from runner.pack import strictyaml  # noqa: F401

    fast_validator()


def load(text: str | bytes, source: str = "manifest.yaml") -> Manifest:
    """Parse and validate manifest text. Raises PackError naming `source` and the offending field."""
    from runner.pack import strictyaml  # PyYAML, imported when a manifest is first read or written

    try:
        data = strictyaml.load(text, max_depth=_MAX_DEPTH + 1)
    except strictyaml.YamlRefused as e:
        raise PackError(f"{source}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise PackError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    version = data.get("format_version")
    if type(version) is not int:
        raise PackError(f"{source}: format_version is missing or not an integer; is this a repro pack?")
    if version != FORMAT_VERSION:
        raise PackError(
            f"{source}: format_version {version} is not supported (this runner reads {FORMAT_VERSION}); "
            "use a runner release that supports it"
        )
    data = _plain(data, source, "", 0, set())
    _check_schema(data, source)
    manifest = _from_dict(data)
    _check_semantics(manifest, source)
    return manifest


def validate(manifest: Manifest, source: str = "manifest") -> None:
    """Check a manifest built in code against the schema and the cross-field rules (PackError if not)."""
    _check_schema(to_dict(manifest), source)
    _check_semantics(manifest, source)


def dump(manifest: Manifest) -> str:
    """YAML text for a manifest; `load(dump(m)) == m` for every valid manifest."""
    from runner.pack import strictyaml

    return strictyaml.dump(to_dict(manifest))


def root_digest(manifest: Manifest, members: Mapping[str, MemberDigest]) -> str:
    """sha256 over the manifest body (all but `integrity`) and every member's name, size and hash."""
    body = to_dict(replace(manifest, integrity=None))
    h = hashlib.sha256(b"repro-pack/1\n")
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    h.update(b"\n")
    for name in sorted(members):
        h.update(f"{members[name].sha256} {members[name].size} {name}\n".encode())
    return h.hexdigest()


# --- validation helpers -------------------------------------------------------------------------


def _where(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _plain(value: Any, source: str, where: str, depth: int, seen: set[int]) -> Any:
    """Check the YAML tree is plain JSON data; YAML timestamps become their RFC 3339 text."""
    at = f"{source}: {where or '(top level)'}"
    if depth > _MAX_DEPTH:
        raise PackError(f"{at}: nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, dict | list):
        # A container seen twice came from a YAML alias: refused, so a tiny file cannot expand into a huge tree.
        if id(value) in seen:
            raise PackError(f"{at}: YAML aliases are not allowed")
        seen.add(id(value))
        if isinstance(value, list):
            return [_plain(v, source, f"{where}[{i}]", depth + 1, seen) for i, v in enumerate(value)]
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise PackError(f"{at}: key {_short(repr(k))} is not a string")
            out[k] = _plain(v, source, f"{where}.{k}" if where else k, depth + 1, seen)
        return out
    if isinstance(value, float) and not math.isfinite(value):
        raise PackError(f"{at}: {value} is not a finite number")
    if isinstance(value, _dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise PackError(f"{at}: values of type {type(value).__name__} are not allowed")


def _check_schema(data: dict[str, Any], source: str) -> None:
    with contextlib.suppress(ValueError, TypeError, OverflowError):  # data it cannot take: ints past 64 bits
        if fast_validator().is_valid(data):
            return
    from jsonschema.exceptions import best_match  # it decides: Python's `$` also matches before a final \n

    error = best_match(_validator().iter_errors(data))
    if error is not None:
        raise PackError(f"{source}: {_where(error.absolute_path)}: {_short(error.message)}")


def _check_semantics(m: Manifest, source: str) -> None:
    problem = _semantic_problem(m)
    if problem:
        raise PackError(f"{source}: {problem}")


def _semantic_problem(m: Manifest) -> str | None:
    seen_ids: dict[str, int] = {}
    for i, step in enumerate(m.steps):
        if step.id in seen_ids:
            return f"steps[{i}].id: {step.id!r} is already used by steps[{seen_ids[step.id]}]"
        seen_ids[step.id] = i
    if m.agent.patch is not None and not isinstance(
        m.steps[seen_ids[m.agent.patch]] if m.agent.patch in seen_ids else None, PatchStep
    ):
        return f"agent.patch: {m.agent.patch!r} is not the id of a patch step"
    indexed = set()
    for i, art in enumerate(m.artifacts):
        if art.path != f"artifacts/sha256/{art.sha256}":
            return f"artifacts[{i}].path: {art.path!r} does not match its sha256 {art.sha256}"
        indexed.add(art.sha256)
    for i, step in enumerate(m.steps):
        if not isinstance(step, CommandStep):
            continue
        wanted = [("stdout", step.expect.stdout), ("stderr", step.expect.stderr)]
        wanted += [(f"outputs.{p}", h) for p, h in step.expect.outputs.items()]
        for name, digest in wanted:
            if digest is not None and digest not in indexed:
                return f"steps[{i}].expect.{name}: no artifact with sha256 {digest} in artifacts"
        for path in step.compare.outputs:
            if path not in step.expect.outputs:
                return f"steps[{i}].compare.outputs.{path}: not a declared output in expect.outputs"
    return None


# --- dict <-> dataclasses -----------------------------------------------------------------------
# The schema has already checked shapes and types, so these only map names.


def _from_dict(d: dict[str, Any]) -> Manifest:
    env = d["environment"]
    g = d["inputs"]["git"]
    llm = d.get("llm")
    privacy = dict(d.get("privacy") or {})
    integ = d.get("integrity")
    config_version = d["agent"].get("config_version")
    command = d["agent"].get("command")
    return Manifest(
        format_version=d["format_version"],
        session=Session(id=d["session"]["id"], created_at=d["session"]["created_at"]),
        agent=Agent(
            name=d["agent"]["name"],
            commit=d["agent"].get("commit"),
            config_version=None if config_version is None else str(config_version),
            command=AgentCommand(
                argv=tuple(command["argv"]),
                cwd=command.get("cwd", "."),
                env=dict(command.get("env", {})),
                timeout=command.get("timeout"),
                stdin=command.get("stdin"),
                argv_recorded=tuple(command.get("argv_recorded", ())),
                console_script=command.get("console_script"),
                files=tuple(AgentFile(**f) for f in command.get("files", ())),
                exit_code=command.get("exit_code"),
            )
            if command
            else None,
            patch=d["agent"].get("patch"),
        ),
        git=GitInputs(
            base_commit=g["base_commit"],
            remote=g.get("remote"),
            branch=g.get("branch"),
            dirty=g["dirty"],
            baseline_patch=g.get("baseline_patch"),
            bundle=g["bundle"],
            history=g.get("history", "full"),
            bundle_commit=g.get("bundle_commit"),
        ),
        environment=Environment(
            kind=env["kind"],
            image=ImageRef(**env["image"]) if env.get("image") else None,
            dockerfile=DockerfileRef(**env["dockerfile"]) if env.get("dockerfile") else None,
            snapshot=EnvSnapshot(**env["snapshot"]) if env.get("snapshot") else None,
            lockfiles=tuple(env.get("lockfiles", ())),
            runtimes=dict(env.get("runtimes", {})),
            variables={k: _decision(v) for k, v in env.get("variables", {}).items()},
        ),
        llm=LlmDefaults(**llm) if llm else None,
        steps=tuple(_step_from_dict(s) for s in d["steps"]),
        artifacts=tuple(Artifact(**a) for a in d.get("artifacts", ())),
        cassettes=tuple(CassetteIndex(**c) for c in d.get("cassettes", ())),
        privacy=Privacy(
            redaction_policy=privacy.pop("redaction_policy", None),
            encrypted_payloads=privacy.pop("encrypted_payloads", False),
            key_ids=tuple(privacy.pop("key_ids", ())),
            extra=privacy,
        ),
        recording=_recording(d["recording"]) if "recording" in d else None,
        integrity=Integrity(
            algorithm=integ["algorithm"],
            root=integ["root"],
            members={k: MemberDigest(**v) for k, v in integ["members"].items()},
        )
        if integ
        else None,
    )


def _recording(d: dict[str, Any]) -> Recording:
    return Recording(d["exchanges"], d["model_exchanges"], d["loopback"], tuple(d.get("warnings", ())))


def _decision(d: dict[str, Any]) -> EnvDecision:
    shape = d.get("shape")
    return EnvDecision(d["action"], d["reason"], SecretShape(**shape) if shape else None)


def _step_from_dict(s: dict[str, Any]) -> Step:
    if s["kind"] == "patch":
        return PatchStep(id=s["id"], patch=s["patch"], span_id=s.get("span_id"), reason=s.get("reason"))
    expect = s["expect"]
    compare = s.get("compare", {})
    return CommandStep(
        id=s["id"],
        argv=tuple(s["argv"]),
        cwd=s.get("cwd", "."),
        env=dict(s.get("env", {})),
        timeout=s["timeout"],
        expect=Expectation(
            exit_code=expect["exit_code"],
            stdout=expect.get("stdout"),
            stderr=expect.get("stderr"),
            outputs=dict(expect.get("outputs", {})),
        ),
        compare=Comparison(
            stdout=tuple(compare.get("stdout", ())),
            stderr=tuple(compare.get("stderr", ())),
            outputs=dict(compare.get("outputs", {})),
        ),
        span_id=s.get("span_id"),
    )


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def to_dict(m: Manifest) -> dict[str, Any]:
    """Plain JSON-compatible data for a manifest, in the documented key order (optional empties omitted)."""
    env = m.environment
    out: dict[str, Any] = {
        "format_version": m.format_version,
        "session": {"id": m.session.id, "created_at": m.session.created_at},
        "agent": _drop_none(
            {
                "name": m.agent.name,
                "commit": m.agent.commit,
                "config_version": m.agent.config_version,
                "command": _command_to_dict(m.agent.command) if m.agent.command else None,
                "patch": m.agent.patch,
            }
        ),
        "inputs": {
            "git": _drop_none(
                {
                    "remote": m.git.remote,
                    "base_commit": m.git.base_commit,
                    "branch": m.git.branch,
                    "dirty": m.git.dirty,
                    "baseline_patch": m.git.baseline_patch,
                    "bundle": m.git.bundle,
                    # Written only when not the default of older packs, so their bytes are unchanged.
                    "history": None if m.git.history == "full" else m.git.history,
                    "bundle_commit": m.git.bundle_commit,
                }
            )
        },
        "environment": _drop_none(
            {
                "kind": env.kind,
                "image": _drop_none(vars(env.image)) if env.image else None,
                "dockerfile": dict(vars(env.dockerfile)) if env.dockerfile else None,
                "snapshot": _drop_none(vars(env.snapshot)) if env.snapshot else None,
                "lockfiles": list(env.lockfiles) or None,
                "runtimes": dict(env.runtimes) or None,
                "variables": {
                    k: _drop_none(
                        {"action": d.action, "reason": d.reason, "shape": d.shape and vars(d.shape)}
                    )
                    for k, d in env.variables.items()
                }
                or None,
            }
        ),
    }
    if m.llm is not None:
        out["llm"] = _drop_none(vars(m.llm))
    out["steps"] = [_step_to_dict(s) for s in m.steps]
    out["artifacts"] = [_drop_none(vars(a)) for a in m.artifacts]
    out["cassettes"] = [dict(vars(c)) for c in m.cassettes]
    if m.recording is not None:
        out["recording"] = {**vars(m.recording), "warnings": list(m.recording.warnings)}
    out["privacy"] = {
        **_drop_none({"redaction_policy": m.privacy.redaction_policy}),
        "encrypted_payloads": m.privacy.encrypted_payloads,
        "key_ids": list(m.privacy.key_ids),
        **m.privacy.extra,
    }
    if m.integrity is not None:
        out["integrity"] = {
            "algorithm": m.integrity.algorithm,
            "root": m.integrity.root,
            "members": {
                k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(m.integrity.members.items())
            },
        }
    return out


def _command_to_dict(c: AgentCommand) -> dict[str, Any]:
    lists = {"argv": list(c.argv), "env": dict(c.env) or None, "argv_recorded": list(c.argv_recorded) or None}
    return _drop_none({**vars(c), **lists, "files": [dict(vars(f)) for f in c.files] or None})


def _step_to_dict(s: Step) -> dict[str, Any]:
    if isinstance(s, PatchStep):
        return _drop_none(
            {"id": s.id, "kind": s.kind, "patch": s.patch, "span_id": s.span_id, "reason": s.reason}
        )
    expect = _drop_none(
        {
            "exit_code": s.expect.exit_code,
            "stdout": s.expect.stdout,
            "stderr": s.expect.stderr,
            "outputs": dict(s.expect.outputs) or None,
        }
    )
    compare = {k: list(v) if isinstance(v, tuple) else dict(v) for k, v in vars(s.compare).items() if v}
    return _drop_none(
        {
            "id": s.id,
            "kind": s.kind,
            "argv": list(s.argv),
            "cwd": s.cwd,
            "env": dict(s.env) or None,
            "timeout": s.timeout,
            "expect": expect,
            "compare": compare or None,
            "span_id": s.span_id,
        }
    )
