"""A local pack store: content-addressed by root digest, with retention tiers and legal holds.

Inputs: pack files (`put`), a clock (`now`, injected so tests can move time), a `Retention` policy.
Outputs: `Entry` records; `gc` returns the `Action`s it took (or would take, with `dry_run`).
Layout of a store folder:
    objects/<root>.tar.zst      the whole pack, read-only (tier `full`)
    traces/<root>/              manifest.yaml and traces.jsonl (kept through tier `traces`)
    audit/<root>.json           session, privacy section and audit summary (kept through tier `audit`)
    index/<root>.json           the entry: when it was added, its tier, its hold
Rules:
- The id is the pack's root digest: storing the same pack twice stores it once; nothing already stored
  is ever overwritten (write once). A pack is verified before it is stored.
- Tiers follow the pack's age since it was added: the whole pack for `full` (7 days by default), then
  manifest and traces only until `traces` (90 days), then the audit summary only until `audit` (1 year),
  then nothing.
- An entry under legal hold is never deleted nor downgraded, whatever its age, until it is released.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from runner.errors import PrivacyError, UsageError
from runner.pack import manifest as mf
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary

__all__ = ["Action", "Entry", "Hold", "Retention", "Store", "utc_now"]

Tier = Literal["full", "traces", "audit"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Retention:
    """How long each tier lasts, counted from when the pack was stored."""

    full: dt.timedelta = dt.timedelta(days=7)
    traces: dt.timedelta = dt.timedelta(days=90)
    audit: dt.timedelta = dt.timedelta(days=365)

    def __post_init__(self) -> None:
        if not dt.timedelta(0) <= self.full <= self.traces <= self.audit:
            raise UsageError("retention must satisfy 0 <= full <= traces <= audit (e.g. 7d, 90d, 365d)")

    @classmethod
    def from_days(cls, full: float, traces: float, audit: float) -> Retention:
        return cls(dt.timedelta(days=full), dt.timedelta(days=traces), dt.timedelta(days=audit))


@dataclass(frozen=True)
class Hold:
    reason: str
    since: str
    by: str


@dataclass(frozen=True)
class Entry:
    id: str  # the pack's root digest
    session: str
    added_at: str
    tier: Tier
    hold: Hold | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session": self.session,
            "added_at": self.added_at,
            "tier": self.tier,
            "hold": vars(self.hold) if self.hold else None,
        }


@dataclass(frozen=True)
class Action:
    id: str
    action: Literal["keep-held", "drop-pack", "drop-traces", "drop-entry"]
    reason: str


class Store:
    def __init__(self, root: Path, now: Callable[[], dt.datetime] = utc_now) -> None:
        self.root = Path(root)
        self.now = now

    # --- paths and records ---

    def _object(self, id: str) -> Path:
        return self.root / "objects" / f"{id}.tar.zst"

    def _traces(self, id: str) -> Path:
        return self.root / "traces" / id

    def _audit(self, id: str) -> Path:
        return self.root / "audit" / f"{id}.json"

    def _index(self, id: str) -> Path:
        return self.root / "index" / f"{id}.json"

    def _write_json(self, path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)

    def _save(self, entry: Entry) -> None:
        self._write_json(self._index(entry.id), entry.to_dict())

    def _load(self, path: Path) -> Entry:
        try:
            d = json.loads(path.read_text())
            hold = Hold(**d["hold"]) if d.get("hold") else None
            return Entry(d["id"], d["session"], d["added_at"], d["tier"], hold)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PrivacyError(f"store index {path} is unreadable ({e}); restore it from a backup") from e

    def entries(self) -> list[Entry]:
        folder = self.root / "index"
        found = [self._load(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
        return sorted(found, key=lambda e: (e.added_at, e.id))

    def get(self, id_or_prefix: str) -> Entry:
        matches = [e for e in self.entries() if e.id.startswith(id_or_prefix.lower())] if id_or_prefix else []
        if len(matches) != 1:
            what = "no entry" if not matches else f"{len(matches)} entries"
            raise UsageError(f"{what} in {self.root} match {id_or_prefix!r}; see `runner store list`")
        return matches[0]

    def pack_path(self, id_or_prefix: str) -> Path:
        entry = self.get(id_or_prefix)
        if entry.tier != "full":
            raise UsageError(f"{entry.id[:16]} is in tier {entry.tier}: the pack itself has expired")
        return self._object(entry.id)

    # --- verbs ---

    def put(self, pack: Path) -> Entry:
        """Verify and store a pack; storing one already there returns its entry and changes nothing."""
        report = pack_read.verify(pack)
        if not report.ok:
            raise PrivacyError(f"not storing {pack}: {report.problem}")
        m = pack_summary.inspect(pack).manifest
        assert m.integrity is not None
        id = m.integrity.root
        if self._index(id).exists():
            return self._load(self._index(id))
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".put-") as tmp:
            unpacked = pack_read.extract(pack, Path(tmp) / "pack")
            traces = self._traces(id)
            traces.mkdir(parents=True, exist_ok=True)
            for name in ("manifest.yaml", "traces.jsonl"):
                if (unpacked.path / name).exists():
                    shutil.copyfile(unpacked.path / name, traces / name)
            obj = self._object(id)
            obj.parent.mkdir(parents=True, exist_ok=True)
            staged = Path(tmp) / "object"
            shutil.copyfile(pack, staged)
            os.chmod(staged, 0o444)
            os.replace(staged, obj)
        self._write_json(
            self._audit(id),
            {"session": mf.to_dict(m)["session"], "agent": m.agent.name, "privacy": mf.to_dict(m)["privacy"]},
        )
        entry = Entry(id, m.session.id, _iso(self.now()), "full")
        self._save(entry)
        return entry

    def hold(self, id_or_prefix: str, reason: str, by: str) -> Entry:
        if not reason.strip():
            raise UsageError("a legal hold needs a reason (--reason 'incident 42')")
        entry = self.get(id_or_prefix)
        held = replace(entry, hold=Hold(reason, _iso(self.now()), by))
        self._save(held)
        return held

    def release(self, id_or_prefix: str) -> Entry:
        entry = self.get(id_or_prefix)
        if entry.hold is None:
            raise UsageError(f"{entry.id[:16]} is not under hold")
        released = replace(entry, hold=None)
        self._save(released)
        return released

    def gc(self, retention: Retention = Retention(), dry_run: bool = False) -> list[Action]:
        """Downgrade or delete what retention says has expired; held entries are left exactly as they are."""
        now = self.now()
        actions: list[Action] = []
        for entry in self.entries():
            age = now - _parse(entry.added_at)
            if entry.hold is not None:
                actions.append(Action(entry.id, "keep-held", f"held: {entry.hold.reason}"))
                continue
            tier = entry.tier
            steps: list[tuple[Tier | None, Action]] = []
            if tier == "full" and age >= retention.full:
                steps.append(
                    ("traces", Action(entry.id, "drop-pack", f"older than {retention.full.days} days"))
                )
                tier = "traces"
            if tier == "traces" and age >= retention.traces:
                steps.append(
                    ("audit", Action(entry.id, "drop-traces", f"older than {retention.traces.days} days"))
                )
                tier = "audit"
            if tier == "audit" and age >= retention.audit:
                steps.append(
                    (None, Action(entry.id, "drop-entry", f"older than {retention.audit.days} days"))
                )
            for new_tier, action in steps:
                actions.append(action)
                if not dry_run:
                    self._apply(entry, new_tier, action)
        return actions

    def _apply(self, entry: Entry, tier: Tier | None, action: Action) -> None:
        if action.action == "drop-pack":
            self._object(entry.id).unlink(missing_ok=True)
        elif action.action == "drop-traces":
            shutil.rmtree(self._traces(entry.id), ignore_errors=True)
        else:
            self._audit(entry.id).unlink(missing_ok=True)
            self._index(entry.id).unlink(missing_ok=True)
            return
        assert tier is not None
        self._save(replace(entry, tier=tier))
