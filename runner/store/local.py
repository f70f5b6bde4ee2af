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
- The index comes from disk, so it is input like any other: an entry whose id is not a full sha256
  (e.g. `../../x`), whose file name is not its id, or whose date or tier is malformed refuses the whole
  command (PackError naming the index file) before anything is deleted; every path gc removes is
  resolved and must stay under the store root.
- A stored pack keeps its source's read permissions (owner read always, no write bits): a 0600 pack
  is stored 0400, never made readable by others. The store root must be a folder.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from runner.errors import PackError, PrivacyError, UsageError
from runner.pack import manifest as mf
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary

__all__ = ["Action", "Entry", "Hold", "Retention", "Store", "utc_now"]

Tier = Literal["full", "traces", "audit"]
_TIERS: frozenset[str] = frozenset({"full", "traces", "audit"})
_ID = re.compile(r"[0-9a-f]{64}")  # a root digest: full sha256, lower-case hex


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
        spans = []
        for name, days in (("--full-days", full), ("--traces-days", traces), ("--audit-days", audit)):
            # timedelta raises ValueError for NaN and OverflowError past 999,999,999 days.
            if not math.isfinite(days) or not 0 <= days <= 1_000_000:
                raise UsageError(f"{name} must be a number of days between 0 and 1000000, not {days}")
            spans.append(dt.timedelta(days=days))
        return cls(*spans)


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
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"store {self.root} is not a folder; pass the store folder with --store DIR")

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
            d = json.loads(path.read_text(encoding="utf-8"))
            hold = Hold(**d["hold"]) if d.get("hold") else None
            entry = Entry(d["id"], d["session"], d["added_at"], d["tier"], hold)
            problem = _entry_problem(entry, path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise PackError(
                f"store index {path} is unreadable ({type(e).__name__}); restore it from a backup"
            ) from e
        if hold is not None and not all(isinstance(v, str) for v in vars(hold).values()):
            problem = "its hold must hold text fields"
        if problem:
            raise PackError(
                f"store index {path}: {problem}; nothing was changed; remove or restore that file"
            )
        return entry

    def _inside(self, path: Path) -> Path:
        """`path` if it stays under the store root once resolved (symlinks followed), else PackError."""
        root = self.root.resolve()
        resolved = path.resolve()
        if path.is_symlink() or not resolved.is_relative_to(root) or resolved == root:
            raise PackError(f"{path} leads outside the store {self.root}; refusing to delete it")
        return path

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
        if not _ID.fullmatch(id):
            raise PackError(f"not storing {pack}: its root digest {id[:80]!r} is not a sha256")
        if self._index(id).exists():
            return self._load(self._index(id))
        mode = _read_only_mode(pack)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.root, prefix=".put-") as tmp:
                unpacked = pack_read.extract(pack, Path(tmp) / "pack")
                traces = self._traces(id)
                traces.mkdir(parents=True, exist_ok=True)
                staged = [(unpacked.path / name, traces / name) for name in ("manifest.yaml", "traces.jsonl")]
                staged.append((pack, self._object(id)))
                for n, (src, dst) in enumerate(staged):
                    if not src.exists():
                        continue
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    copy = Path(tmp) / f"staged-{n}"
                    shutil.copyfile(src, copy)
                    os.chmod(copy, mode)  # never more readable than the pack it came from
                    os.replace(copy, dst)
        except OSError as e:
            raise UsageError(f"cannot write to the store {self.root}: {e.strerror or e}") from e
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
        entries = self.entries()  # every index file is validated before anything is deleted
        for entry in entries:
            for path in (
                self._object(entry.id),
                self._traces(entry.id),
                self._audit(entry.id),
                self._index(entry.id),
            ):
                self._inside(path)
        for entry in entries:
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
            self._inside(self._object(entry.id)).unlink(missing_ok=True)
        elif action.action == "drop-traces":
            shutil.rmtree(self._inside(self._traces(entry.id)), ignore_errors=True)
        else:
            self._inside(self._audit(entry.id)).unlink(missing_ok=True)
            self._inside(self._index(entry.id)).unlink(missing_ok=True)
            return
        assert tier is not None
        self._save(replace(entry, tier=tier))


def _entry_problem(entry: Entry, path: Path) -> str:
    """What is wrong with an index entry read from `path`, or "" when it is sound."""
    if not isinstance(entry.id, str) or not _ID.fullmatch(entry.id):
        return "its id is not a pack root digest (64 lower-case hex digits)"
    if path.name != f"{entry.id}.json":
        return "its file name does not match its id"
    if entry.tier not in _TIERS:
        return f"its tier is not one of {sorted(_TIERS)}"
    if not isinstance(entry.session, str) or not isinstance(entry.added_at, str):
        return "its session and added_at must be text"
    if _parse(entry.added_at).tzinfo is None:  # ValueError for a malformed date, caught by the caller
        return "its added_at has no time zone"
    return ""


def _read_only_mode(source: Path) -> int:
    """The mode a stored copy of `source` gets: its read bits only, owner read always."""
    return stat.S_IRUSR | (source.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
