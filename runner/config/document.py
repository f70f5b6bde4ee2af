"""The registry's documents: agent configuration versions, environment pointers and the registry settings.

Inputs: YAML text and the file it came from. Outputs: frozen models (`AgentConfig`, `Environment`,
`Settings`) and the canonical YAML the registry writes. Rules: every document is checked against
`config.schema.json` (shipped in the package) before use, and a bad one is refused with one line naming the
file, the field and what was expected; YAML aliases are refused (no billion laughs from a hand-edited file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import jsonschema
import yaml

from runner import schemas
from runner.errors import ConfigError

__all__ = [
    "MAX_DOC_BYTES",
    "AgentConfig",
    "Environment",
    "GateMark",
    "GateSettings",
    "LiveEntry",
    "Settings",
    "dump",
    "load_yaml",
    "parse_config",
    "parse_environment",
    "parse_settings",
    "schema",
]

MAX_DOC_BYTES = 1 << 20
GateMark = Literal["passed", "ungated", "forced"]


@dataclass(frozen=True)
class AgentConfig:
    """One numbered, immutable agent configuration; `data` is the whole document (with `version`)."""

    version: int
    data: dict[str, Any]


@dataclass(frozen=True)
class LiveEntry:
    version: int
    gate: GateMark  # how it went live: its gate passed, no gate was configured, or --force


@dataclass(frozen=True)
class Environment:
    name: str
    version: int
    live: tuple[LiveEntry, ...]  # oldest first; the last is `version`; rollback walks it back

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.name,
            "version": self.version,
            "live": [{"version": e.version, "gate": e.gate} for e in self.live],
        }


@dataclass(frozen=True)
class GateSettings:
    tasks: tuple[str, ...]  # golden task files, relative to the registry
    packs: tuple[str, ...]  # the pack of each task (same position); `{version}` is the target version
    replay: bool


@dataclass(frozen=True)
class Settings:
    gate: GateSettings | None


@cache
def schema() -> dict[str, Any]:
    text = resources.files("runner.config").joinpath("config.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    root = schema()
    return jsonschema.Draft202012Validator({"$defs": root["$defs"], "$ref": f"#/$defs/{kind}"})


def load_yaml(text: bytes, where: str) -> Any:
    """Parse one YAML document; ConfigError naming `where` if it is not one."""
    if len(text) > MAX_DOC_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_DOC_BYTES} bytes")
    try:
        decoded = text.decode("utf-8")
        if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(decoded, Loader=yaml.SafeLoader)):
            raise ConfigError(f"{where}: YAML aliases are not allowed")
        return yaml.safe_load(decoded)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"{where}: not valid YAML ({first})") from None


def _check(data: Any, kind: str, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: (top level): expected a mapping, got {type(data).__name__}")
    error = jsonschema.exceptions.best_match(_validator(kind).iter_errors(data))
    if error is not None:
        raise ConfigError(f"{where}: {schemas.describe(error)}")
    return data


def parse_config(data: Any, where: str, version: int | None) -> AgentConfig:
    """A configuration document; `version` is the number it is stored under (None: not yet pushed)."""
    doc = _check(data, "agent_config", where)
    if version is not None and doc.get("version") != version:
        raise ConfigError(
            f"{where}: version: expected {version} (the file's number), got {doc.get('version')!r}"
        )
    return AgentConfig(version=version or 0, data=doc)


def parse_environment(data: Any, where: str, name: str) -> Environment:
    doc = _check(data, "environment", where)
    if doc["environment"] != name:
        raise ConfigError(
            f"{where}: environment: expected {name!r} (the file's name), got {doc['environment']!r}"
        )
    live = tuple(LiveEntry(e["version"], e["gate"]) for e in doc["live"])
    if live[-1].version != doc["version"]:
        raise ConfigError(
            f"{where}: version: {doc['version']} is not the last live entry ({live[-1].version})"
        )
    return Environment(name=name, version=doc["version"], live=live)


def parse_settings(data: Any, where: str) -> Settings:
    doc = _check(data, "registry", where)
    gate = doc.get("gate")
    if gate is None:
        return Settings(gate=None)
    if len(gate["tasks"]) != len(gate["packs"]):
        raise ConfigError(
            f"{where}: gate.packs: expected one pack per task ({len(gate['tasks'])}), got {len(gate['packs'])}"
        )
    return Settings(GateSettings(tuple(gate["tasks"]), tuple(gate["packs"]), bool(gate.get("replay", False))))


def dump(data: dict[str, Any]) -> str:
    """The canonical YAML the registry writes (sorted keys, so diffs are stable)."""
    return yaml.safe_dump(data, sort_keys=True, allow_unicode=True, default_flow_style=False)
