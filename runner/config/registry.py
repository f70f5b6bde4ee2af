"""The configuration registry: a git repository of numbered agent configurations and environment pointers.

Layout of a registry folder (a git repository, branch of your choosing):

    registry.yaml                 format: 1, and the golden gate (tasks, packs, replay)
    versions/0001.yaml ...        one immutable agent configuration per file, numbered from 1
    environments/production.yaml  the pointer: version, and `live` (the versions live here, oldest first)

Inputs: the folder. Outputs: `Registry` (a validated snapshot at one commit) and `commit`, which writes
files and moves the branch. Rules: every document is validated when the registry is opened, and a version
changed after it was pushed, an uncommitted hand edit or a dangling pointer is refused naming the file and
field. A change is one commit whose author is the principal ($RUNNER_PRINCIPAL, else git's user.name) and
whose message holds the why and `Runner-*` trailers: the history is the audit log. Changes are serialised
by a lock file made with O_EXCL in .git/, and the branch moves by compare-and-swap from the commit the
change was computed on, so two concurrent changes never both land.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git

from runner.config.document import (
    AgentConfig,
    Environment,
    Settings,
    dump,
    load_yaml,
    parse_config,
    parse_environment,
    parse_settings,
)
from runner.errors import ConfigError

__all__ = [
    "ENV_VARIABLE",
    "AuditEntry",
    "Registry",
    "commit",
    "history",
    "init",
    "locked",
    "open_registry",
    "principal",
]

ENV_VARIABLE = "RUNNER_CONFIG_REGISTRY"
SETTINGS = "registry.yaml"
LOCK = "runner-config.lock"
_VERSION_FILE = re.compile(r"^(\d{4,9})\.yaml$")
_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TRAILER = re.compile(r"^(Runner-[A-Za-z-]+): ?(.*)$")


@dataclass(frozen=True)
class Registry:
    """A validated snapshot of the registry at `head` (a commit id)."""

    root: Path
    head: str
    settings: Settings
    versions: Mapping[int, AgentConfig]
    environments: Mapping[str, Environment]

    def config(self, version: int) -> AgentConfig:
        if version not in self.versions:
            known = ", ".join(map(str, sorted(self.versions))) or "none yet"
            raise ConfigError(f"{self.root}: no version {version} (versions: {known})")
        return self.versions[version]

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none yet"
            raise ConfigError(
                f"{self.root}: no environment {name!r} (environments: {known}); "
                f"promote a version to it first: runner config promote {name} VERSION"
            )
        return self.environments[name]


@dataclass(frozen=True)
class AuditEntry:
    """One commit of the registry: who, when, what and why."""

    commit: str
    who: str
    when: str  # ISO 8601 with offset
    subject: str
    reason: str
    trailers: Mapping[str, str]  # Runner-Action, Runner-Environment, Runner-Version, Runner-Gate, ...


def version_path(version: int) -> str:
    return f"versions/{version:04d}.yaml"


def environment_path(name: str) -> str:
    return f"environments/{name}.yaml"


def check_env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ConfigError(f"environment {name!r}: use letters, digits, '.', '_' or '-' (at most 100)")
    return name


def _repo(root: Path) -> git.Repo:
    try:
        return git.Repo(root)
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        raise ConfigError(
            f"{root}: not a configuration registry (no git repository); make one: runner config init {root}"
        ) from None


def init(root: Path, who: str | None = None) -> str:
    """Make a registry at `root` (absent or an empty folder); returns the first commit id."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root}: exists and is not an empty folder; pick a new one")
    repo = git.Repo.init(root, mkdir=True, initial_branch="main")
    (root / SETTINGS).write_text(
        "# The configuration registry (docs/config-registry.md). Uncomment to gate promotions and rollbacks\n"
        "# behind golden packs: each pack is checked against the task at its position; {version} is the\n"
        "# version being promoted.\n"
        "format: 1\n"
        "# gate:\n#   tasks: [golden/tasks/fix-add.yaml]\n#   packs: ['golden/v{version}/fix-add.tar.zst']\n"
        "#   replay: false\n",
        encoding="utf-8",
    )
    return _land(
        repo, None, [SETTINGS], "init the configuration registry", "created", {"Action": "init"}, who
    )


def open_registry(root: Path) -> Registry:
    """Read and validate the whole registry at its branch head; ConfigError naming file and field if bad."""
    repo = _repo(root)
    if not repo.head.is_valid():
        raise ConfigError(f"{root}: the registry has no commit; make one with runner config init")
    settings_file = root / SETTINGS
    if not settings_file.is_file():
        raise ConfigError(f"{settings_file}: missing; is {root} a configuration registry?")
    settings = parse_settings(load_yaml(settings_file.read_bytes(), str(settings_file)), str(settings_file))
    versions: dict[int, AgentConfig] = {}
    for path in sorted((root / "versions").glob("*")):
        m = _VERSION_FILE.match(path.name)
        if not m or not path.is_file():
            raise ConfigError(f"{path}: not a version file (versions/NNNN.yaml); remove it or push it")
        n = int(m.group(1))
        versions[n] = parse_config(load_yaml(path.read_bytes(), str(path)), str(path), n)
    environments: dict[str, Environment] = {}
    for path in sorted((root / "environments").glob("*")):
        if path.suffix != ".yaml" or not path.is_file() or not _ENV_NAME.match(path.stem):
            raise ConfigError(f"{path}: not an environment file (environments/NAME.yaml)")
        env = parse_environment(load_yaml(path.read_bytes(), str(path)), str(path), path.stem)
        for entry in env.live:
            if entry.version not in versions:
                raise ConfigError(f"{path}: version: {entry.version} is not in the registry (versions/)")
        environments[env.name] = env
    _check_untouched(repo, root)
    return Registry(root, repo.head.commit.hexsha, settings, versions, environments)


def _check_untouched(repo: git.Repo, root: Path) -> None:
    """Refuse uncommitted edits and versions rewritten after their push: versions are immutable."""
    dirty = repo.git.status(
        "--porcelain", "--untracked-files=all", "--", SETTINGS, "versions", "environments"
    )
    if dirty.strip():
        first = dirty.splitlines()[0][3:]
        raise ConfigError(
            f"{root / first}: changed by hand and not committed; the registry changes only through runner "
            f"config commands (undo with git -C {root} checkout -- {first}, or remove the new file)"
        )
    rewritten = repo.git.log("--diff-filter=MDR", "--name-only", "--format=", "--", "versions").split()
    if rewritten:
        raise ConfigError(
            f"{root / rewritten[0]}: changed after it was pushed; versions are immutable "
            "(push the change as a new version and revert the edit)"
        )


def principal(root: Path) -> str:
    """Who makes a change: $RUNNER_PRINCIPAL, else git's user.name <user.email> for the registry."""
    who = os.environ.get("RUNNER_PRINCIPAL", "").strip()
    if who:
        return who
    reader = _repo(root).config_reader()
    name = str(reader.get_value("user", "name", "")).strip()
    if not name:
        raise ConfigError(
            "who is making this change? set RUNNER_PRINCIPAL or git config user.name; the registry records it"
        )
    email = str(reader.get_value("user", "email", "")).strip()
    return f"{name} <{email}>" if email else name


def _actor(who: str) -> git.Actor:
    m = re.match(r"^(.*?)\s*<([^>]*)>$", who)
    return git.Actor(m.group(1), m.group(2)) if m else git.Actor(who, "")


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the registry's change lock (O_EXCL): a second holder gets a clear ConfigError, not a wait."""
    lock = Path(_repo(root).git_dir) / LOCK
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        holder = lock.read_text(encoding="utf-8", errors="replace").strip() if lock.exists() else "?"
        raise ConfigError(
            f"{root}: another change to the registry is in progress ({holder}); try again when it is done "
            f"(if no runner is running, remove {lock})"
        ) from None
    try:
        os.write(
            fd,
            f"pid {os.getpid()} since {datetime.now().astimezone().isoformat(timespec='seconds')}".encode(),
        )
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def commit(
    root: Path,
    base: str,
    files: Mapping[str, dict[str, object]],
    subject: str,
    reason: str,
    trailers: Mapping[str, str],
    who: str | None = None,
) -> str:
    """Write `files` (path -> document) and commit them on top of `base`; the caller holds `locked`.

    Refused with a clear error when the branch no longer points at `base` (another change landed since
    the caller read the registry): nothing is written then.
    """
    repo = _repo(root)
    if repo.head.commit.hexsha != base:
        head = repo.head.commit
        subject = head.summary if isinstance(head.summary, str) else head.summary.decode(errors="replace")
        raise ConfigError(
            f"{root}: the registry changed while this change was prepared (now at {head.hexsha[:12]}: "
            f"{subject}); look again and retry"
        )
    existed = {rel for rel in files if (root / rel).exists()}  # the tree is clean: these are tracked
    for rel, doc in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(dump(dict(doc)), encoding="utf-8")
        tmp.replace(target)
    try:
        return _land(repo, base, list(files), subject, reason, trailers, who)
    except BaseException:
        # Put the working tree back as the branch has it (the lock keeps others out of it meanwhile).
        repo.index.reset()
        if existed:
            repo.git.checkout("HEAD", "--", *sorted(existed))
        for rel in set(files) - existed:
            (root / rel).unlink(missing_ok=True)
        raise


def _land(
    repo: git.Repo,
    base: str | None,
    paths: list[str],
    subject: str,
    reason: str,
    trailers: Mapping[str, str],
    who: str | None,
) -> str:
    root = Path(str(repo.working_tree_dir))
    actor = _actor(who or principal(root))
    lines = [subject, "", reason.strip() or "(no reason given)", ""]
    lines += [f"Runner-{k}: {v}" for k, v in {"Principal": f"{actor.name}", **trailers}.items()]
    repo.index.add(paths)
    tree = repo.index.write_tree()
    parents = [repo.commit(base)] if base else []
    new = git.Commit.create_from_tree(
        repo, tree, "\n".join(lines) + "\n", parent_commits=parents, head=False, author=actor, committer=actor
    )
    ref = repo.head.ref.path if not repo.head.is_detached else "HEAD"
    try:
        # Compare-and-swap: git moves the branch only if it still points at `base`.
        repo.git.update_ref(ref, new.hexsha, base or "0" * 40)
    except git.GitCommandError:
        raise ConfigError(
            f"{root}: another change landed first (the branch moved off {str(base)[:12]}); look again and retry"
        ) from None
    return new.hexsha


def history(root: Path, environment: str | None = None, limit: int = 200) -> list[AuditEntry]:
    """The audit log, newest first: every registry commit (only those moving `environment` if given)."""
    repo = _repo(root)
    out: list[AuditEntry] = []
    for c in repo.iter_commits(max_count=10_000):
        message = str(c.message)
        body = message.split("\n", 2)[2] if message.count("\n") >= 2 else ""
        trailers: dict[str, str] = {
            m.group(1): m.group(2) for line in body.splitlines() if (m := _TRAILER.match(line))
        }
        reason = "\n".join(line for line in body.splitlines() if not _TRAILER.match(line)).strip()
        if environment is not None and trailers.get("Runner-Environment") != environment:
            continue
        out.append(
            AuditEntry(
                commit=c.hexsha,
                who=f"{c.author.name} <{c.author.email}>" if c.author.email else str(c.author.name),
                when=c.authored_datetime.isoformat(),
                subject=str(c.summary),
                reason=reason,
                trailers=trailers,
            )
        )
        if len(out) >= limit:
            break
    return out
