"""The manifest of a pack with encrypted payloads: its sensitive text sealed, a plain copy of the rest.

Inputs: the redacted manifest being built and the tenant keyring; at unpack, the unpacked folder, its plain
manifest and the keyring. Outputs: the plain manifest (command lines and environment values replaced by
`MARKER`) with the full one sealed in `SEALED_MANIFEST`; at unpack, the manifest with those values back.
Rules:
- The plain manifest keeps the structure and the integrity section, so `verify` works without the key;
  only the agent's and each step's argv and environment values are hidden (what a command line carries:
  tokens, URLs with credentials, paths).
- Restoring takes only those fields from the sealed copy, matched by step id, so a sealed copy (written
  by whoever held the key) can change no member, hash or expectation of the checked manifest.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from runner.errors import PrivacyError
from runner.pack.manifest import CommandStep, Manifest, to_dict
from runner.privacy import crypto
from runner.privacy.crypto import Keyring

__all__ = ["MARKER", "SEALED_MANIFEST", "hide", "restore"]

SEALED_MANIFEST = "privacy/manifest.bin"
MARKER = "<encrypted>"


def _hidden_env(env: Any) -> dict[str, str]:
    return {k: MARKER for k in env}


def hide(manifest: Manifest, keyring: Keyring) -> tuple[Manifest, bytes]:
    """The plain manifest with its command lines and environment values replaced, and the sealed full one."""
    sealed = crypto.seal(keyring, json.dumps(to_dict(manifest), sort_keys=True).encode(), SEALED_MANIFEST)
    agent = manifest.agent
    if agent.command is not None:
        command = replace(
            agent.command,
            argv=tuple(MARKER for _ in agent.command.argv),
            argv_recorded=tuple(MARKER for _ in agent.command.argv_recorded),
            env=_hidden_env(agent.command.env),
        )
        agent = replace(agent, command=command)
    steps = tuple(
        replace(s, argv=tuple(MARKER for _ in s.argv), env=_hidden_env(s.env))
        if isinstance(s, CommandStep)
        else s
        for s in manifest.steps
    )
    return replace(manifest, agent=agent, steps=steps), sealed


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PrivacyError(f"{SEALED_MANIFEST}: {where} is not a list of strings; the pack is damaged")
    return tuple(value)


def _env(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise PrivacyError(f"{SEALED_MANIFEST}: {where} is not a map of strings; the pack is damaged")
    return dict(value)


def restore(folder: Path, manifest: Manifest, keyring: Keyring) -> Manifest:
    """`manifest` with the command lines and environment values of its sealed copy put back."""
    if manifest.privacy.extra.get("sealed_manifest") != SEALED_MANIFEST:
        return manifest
    path = folder / SEALED_MANIFEST
    if not path.is_file():
        raise PrivacyError(f"privacy.sealed_manifest names {SEALED_MANIFEST}, which the pack does not hold")
    try:
        full = json.loads(crypto.open_sealed(keyring, path.read_bytes(), SEALED_MANIFEST))
        command = full["agent"].get("command")
        steps = {s["id"]: s for s in full.get("steps", ()) if s.get("kind") == "command"}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise PrivacyError(f"{SEALED_MANIFEST}: unreadable sealed manifest ({e}); the pack is damaged") from e
    agent = manifest.agent
    if agent.command is not None and isinstance(command, dict):
        agent = replace(
            agent,
            command=replace(
                agent.command,
                argv=_strings(command.get("argv", []), "agent.command.argv"),
                argv_recorded=_strings(command.get("argv_recorded", []), "agent.command.argv_recorded"),
                env=_env(command.get("env", {}), "agent.command.env"),
            ),
        )
    restored = []
    for step in manifest.steps:
        sealed = steps.get(step.id) if isinstance(step, CommandStep) else None
        if isinstance(step, CommandStep) and isinstance(sealed, dict):
            where = f"steps[{step.id}]"
            step = replace(
                step,
                argv=_strings(sealed.get("argv"), f"{where}.argv"),
                env=_env(sealed.get("env", {}), f"{where}.env"),
            )
        restored.append(step)
    return replace(manifest, agent=agent, steps=tuple(restored))
