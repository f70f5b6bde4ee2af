"""The configuration registry: versioned agent configurations, environment pointers, gated promotion and rollback.

A wing beside `golden` (it runs the golden set as its gate) below the CLI. `document` validates the YAML
documents against `config.schema.json`; `registry` reads a registry (a git repository) and commits changes
under a lock with compare-and-swap; `gate` judges a version against golden packs; `deploy` pushes,
promotes and rolls back. The viewer calls `deploy.rollback`, as `runner rollback` does.
"""

from __future__ import annotations

from runner.config.deploy import GateRefused, Move, Pushed, promote, push, rollback
from runner.config.document import AgentConfig, Environment, LiveEntry, Settings
from runner.config.gate import GateCheck, GateReport, run_gate
from runner.config.registry import ENV_VARIABLE, AuditEntry, Registry, history, init, open_registry

__all__ = [
    "ENV_VARIABLE",
    "AgentConfig",
    "AuditEntry",
    "Environment",
    "GateCheck",
    "GateRefused",
    "GateReport",
    "LiveEntry",
    "Move",
    "Pushed",
    "Registry",
    "Settings",
    "history",
    "init",
    "open_registry",
    "promote",
    "push",
    "rollback",
    "run_gate",
]
