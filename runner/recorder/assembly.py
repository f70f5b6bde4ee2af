"""Manifest assembly: what a session captured becomes the pack's members and its Manifest.

Inputs: a `Captured` (git state and dirty baseline, environment snapshot and the decision on each variable,
prompts, patches, steps, blobs, the agent's own files, the first model call's parameters, what the HTTP
recording saw) and the sampling decision. Output: the pack written
by a `PackBuilder` at `out`, and its Manifest.
Rules:
- Sampling: artifacts "all" keeps every blob; "failing-only" keeps blobs only for failed or slow sessions,
  otherwise command steps keep their exit code only (the hashes stay in the spans).
- A command step records of its environment the portable variables that change output (REPLAYED_ENV) as
  the session had them, and the command's own variables, never one named like a credential.
- Environment and llm defaults are taken from the snapshot and the first model call only when they are
  well formed (a version that parses, numbers in range); anything else is left out, not guessed.
"""

from __future__ import annotations

import dataclasses
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from runner.pack import manifest as mf
from runner.pack import snapshot
from runner.pack.build import PackBuilder
from runner.pack.snapshot import REPLAYED_ENV
from runner.privacy import policy
from runner.privacy.mask import PrivacyOptions
from runner.recorder.gitstate import Bundled, GitState, bundle
from runner.recorder.tools import Blob, Command

__all__ = [
    "ArtifactMode",
    "Captured",
    "Sampling",
    "SamplingReason",
    "build",
    "bundle_scan",
    "bundle_warnings",
    "environment",
    "llm_defaults",
    "replayed_env",
    "sampling",
]

ArtifactMode = Literal["all", "failing-only"]
SamplingReason = Literal["all", "failed", "slow", "passed"]
_SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw|auth|cookie|credential|session)")


@dataclass(frozen=True)
class Sampling:
    keep: bool  # the blobs go into the pack
    reason: SamplingReason

    @property
    def artifacts(self) -> Literal["kept", "metadata-only"]:
        return "kept" if self.keep else "metadata-only"


@dataclass(frozen=True)
class Captured:
    session_id: str
    created_at: str
    agent: mf.Agent
    git: GitState
    baseline: bytes  # the dirty working tree against HEAD, empty when clean
    snapshot: snapshot.EnvSnapshot
    prompts: Mapping[str, bytes]
    patches: tuple[tuple[str, bytes], ...]  # (pack path, diff)
    steps: tuple[mf.PatchStep | Command, ...]
    blobs: tuple[Blob, ...]  # artifacts; the commands' own blobs are in their steps
    llm_first: Mapping[str, Any] | None
    exchanges: int
    env_decisions: Mapping[str, mf.EnvDecision] = dataclasses.field(default_factory=dict)
    agent_files: tuple[tuple[str, bytes], ...] = ()  # (member, bytes) of agent.command.files
    recording: mf.Recording | None = None
    history: str = "base"  # what the git bundle carries: base | full | N (gitstate.parse_history)


def sampling(mode: ArtifactMode, failed: bool, slow: bool) -> Sampling:
    if mode == "all":
        return Sampling(True, "all")
    return Sampling(failed or slow, "failed" if failed else "slow" if slow else "passed")


_REPLAYED_NAMES = tuple(sorted(REPLAYED_ENV))  # in a fixed order: a set's order changes between processes


def replayed_env(given: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """What a command step records of its environment (see the module docstring)."""
    env = {k: given[k] for k in _REPLAYED_NAMES if k in given}  # not a walk over all of os.environ
    env.update({k: v for k, v in extra.items() if not _SECRET_NAME.search(k)})
    return env


def build(
    captured: Captured,
    keep: bool,
    builder: PackBuilder,
    workdir: Path,
    out: Path,
    privacy: PrivacyOptions | None = None,
) -> mf.Manifest:
    """Add everything captured to `builder` and write the pack at `out` (redacted with `privacy`, by default
    as $RUNNER_* says); `workdir` holds the session's files."""
    b = builder
    for member, data in captured.agent_files:
        b.add_bytes(member, data)
    b.add_file("traces.jsonl", workdir / "traces.jsonl")
    for name, data in sorted(captured.prompts.items()):
        b.add_bytes(f"prompts/{name}", data)
    for path, diff in captured.patches:
        b.add_bytes(path, diff)
    steps: list[mf.Step] = []
    blobs = list(captured.blobs)
    for item in captured.steps:
        if isinstance(item, mf.PatchStep):
            steps.append(item)
            continue
        assert item.step is not None  # the background work was drained
        if keep:
            steps.append(item.step)
            blobs += item.blobs
        else:  # hashes stay in the span; replay then compares exit codes only
            steps.append(
                dataclasses.replace(
                    item.step, expect=mf.Expectation(item.step.expect.exit_code), compare=mf.Comparison()
                )
            )
    if keep or not captured.steps:
        for blob in blobs:
            b.add_artifact(blob.data, media_type=blob.media_type, name=blob.name, span_id=blob.span_id)
    if captured.baseline:
        b.add_bytes(mf.BASELINE_PATH, captured.baseline)
    # Scan what the bundle carries with the pack's detectors (the default policy's when redaction is off).
    options = privacy if privacy is not None else PrivacyOptions.from_env()
    detectors = policy.get(options.policy or policy.DEFAULT_POLICY).detectors
    bundled = bundle(captured.git, workdir / "base.bundle", captured.history, detectors)
    b.add_file(mf.BUNDLE_PATH, workdir / "base.bundle")
    env_dir = workdir / "env"
    for rel in snapshot.write(captured.snapshot, env_dir, repo=captured.git.root):
        b.add_file(f"env/{rel}", env_dir / rel)
    cassettes: tuple[mf.CassetteIndex, ...] = ()
    if captured.exchanges:
        b.add_file("cassettes/http.jsonl", workdir / "http.jsonl")
        cassettes = (mf.CassetteIndex("cassettes/http.jsonl", 1, captured.exchanges),)
    git = captured.git
    manifest = mf.Manifest(
        session=mf.Session(captured.session_id, captured.created_at),
        agent=captured.agent,
        git=mf.GitInputs(
            base_commit=git.base_commit,
            remote=git.remote,
            branch=git.branch,
            dirty=git.dirty,
            baseline_patch=mf.BASELINE_PATH if captured.baseline else None,
            history=bundled.history,
            bundle_commit=None if bundled.commit == git.base_commit else bundled.commit,
        ),
        environment=dataclasses.replace(environment(captured.snapshot), variables=captured.env_decisions),
        llm=llm_defaults(captured.llm_first),
        steps=tuple(steps),
        cassettes=cassettes,
        privacy=mf.Privacy(redaction_policy="runner-record-v1", extra={"bundle_scan": bundle_scan(bundled)}),
        recording=captured.recording,
    )
    from runner.cassettes.process import sealing_options

    # The proxy's placeholders are sealed with the pack's other originals (privileged reveal restores them).
    return b.build(manifest, out, privacy=sealing_options(workdir / "proxy", privacy))


_MAX_LISTED = 50  # findings listed in the manifest; the count covers them all


def bundle_scan(bundled: Bundled) -> dict[str, Any]:
    """The manifest's privacy.bundle_scan: what the detectors found in the git bundle (no secret values)."""
    listed = [
        {"kind": f.kind, "path": f.path[:500], **({"commit": f.commit} if f.commit else {})}
        for f in bundled.findings[:_MAX_LISTED]
    ]
    shallow = {"shallow": True} if bundled.shallow else {}
    submodules = (
        {"submodules": [p[:500] for p in bundled.submodules[:_MAX_LISTED]]} if bundled.submodules else {}
    )
    return {
        "history": bundled.history,
        **shallow,
        **submodules,
        "secrets": bundled.secrets,
        "findings": listed,
    }


def bundle_warnings(manifest: mf.Manifest) -> list[str]:
    """Lines for the end of the recording: the history a shallow clone could give, submodules (their files
    are not in the pack), and the secrets the git bundle carries."""
    scan = manifest.privacy.extra.get("bundle_scan")
    if not isinstance(scan, dict):
        return []
    lines = []
    if scan.get("shallow") and manifest.git.history != "base":
        lines.append(
            f"the repository is a shallow clone: the git bundle holds the {scan.get('history')} commit(s) of "
            "history it has (run `git fetch --unshallow` first for all of them)"
        )
    submodules = scan.get("submodules")
    if isinstance(submodules, list) and submodules:
        shown = ", ".join(str(p) for p in submodules[:5]) + (" ..." if len(submodules) > 5 else "")
        lines.append(
            f"the repository has submodules ({shown}): the pack holds none of their files, and replay "
            "restores those folders empty"
        )
    secrets = _secrets_warning(scan)
    return [*lines, secrets] if secrets else lines


def _secrets_warning(scan: dict[str, Any]) -> str | None:
    """One line when the git bundle carries secrets; None when it carries none."""
    if not scan.get("secrets"):
        return None
    findings = [f for f in scan.get("findings", ()) if isinstance(f, dict)]
    in_history = sorted({f"{f['path']}@{str(f['commit'])[:12]}" for f in findings if f.get("commit")})
    in_tree = sorted({str(f["path"]) for f in findings if not f.get("commit")})
    parts = [f"the git bundle carries {scan['secrets']} secret(s) that redaction cannot remove"]
    if in_history:
        shown = ", ".join(in_history[:5]) + (" ..." if len(in_history) > 5 else "")
        parts.append(f"in history ({shown}): --history base (the default) drops history")
    if in_tree:
        shown = ", ".join(in_tree[:5]) + (" ..." if len(in_tree) > 5 else "")
        parts.append(
            f"in the base tree ({shown}): the bundle keeps them as committed (redacting would change the "
            "tree); set RUNNER_ENCRYPT_PAYLOADS=1 with RUNNER_KEYRING to encrypt the bundle"
        )
    return "; ".join(parts)


def environment(snap: snapshot.EnvSnapshot) -> mf.Environment:
    """The manifest's `snapshot` environment: Python (and Node) versions, OS, pip freeze and lockfiles."""
    python = (snap.python or {}).get("version", "")
    if not re.fullmatch(r"[0-9]+\.[0-9]+(\.[0-9]+)?([a-z]+[0-9]*)?\+?", python):
        python = platform.python_version()
    runtimes = {"python": python}
    node = snap.tools.get("node")
    if node:
        runtimes["node"] = node.lstrip("v")
    os_name = (
        snap.os.get("pretty_name") or f"{snap.os.get('system', '')} {snap.os.get('release', '')}".strip()
    )
    return mf.Environment(
        kind="snapshot",
        snapshot=mf.EnvSnapshot(
            python, "env/pip-freeze.txt", os_name[:200] or "unknown", snap.os.get("machine")
        ),
        lockfiles=tuple(f"env/lockfiles/{name}" for name in snap.lockfiles),
        runtimes=runtimes,
    )


def llm_defaults(first: Mapping[str, Any] | None) -> mf.LlmDefaults | None:
    """The session's model defaults from its first model call's parameters; None without a model name."""
    if not first or not isinstance(first.get("model"), str) or not first["model"]:
        return None

    def number(name: str, integer: bool, low: float | None = None, high: float | None = None) -> Any:
        value: Any = first.get(name)
        if type(value) not in ((int,) if integer else (int, float)):
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            return None
        return value

    return mf.LlmDefaults(
        provider=str(first.get("provider") or "generic")[:200],
        model=first["model"][:200],
        seed=number("seed", True),
        temperature=number("temperature", False, 0),
        top_p=number("top_p", False, 0, 1),
        max_tokens=number("max_tokens", True, 1),
    )
