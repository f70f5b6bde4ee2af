"""Git state of the recorded repository: base commit, bundle, dirty baseline and patches between states.

Input: a repository folder. Outputs: `GitState` (base commit, branch, remote, dirty flag), tree hashes
of the working tree, binary-safe unified diffs between two trees, and a bundle holding the base commit.
Rules: the user's index, worktree and refs are never touched. The working tree is hashed through a
temporary index (GIT_INDEX_FILE) seeded from HEAD, so untracked files count and ignored files do not;
caches that tools write while a session runs (__pycache__, .pytest_cache) and paths given as `exclude`
(the pack being written, for one) are left out. Diffs use --binary --full-index so any file round-trips.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner import gitcmd
from runner.errors import RecordError

if TYPE_CHECKING:
    from proxy.detectors import Detector

__all__ = [
    "Bundled",
    "Finding",
    "GitState",
    "bundle",
    "diff_trees",
    "parse_history",
    "read_state",
    "worktree_tree",
]

# Patches of the bytes themselves, laid out as `git apply` reads them, whatever the user's git config sets
# (a diff driver or text conversion for some files, as git-crypt or notebook tools set up, would turn a
# change into something else or make two versions read alike; diff.noprefix drops the a/ and b/).
_PLAIN_DIFF = (
    "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "--src-prefix=a/", "--dst-prefix=b/",
)  # fmt: skip
_C_ESCAPE = re.compile(rb'\\([0-7]{1,3}|[abtnvfr"\\])')  # git's quoting of a file name, C style
_C_CHARS = {bytes([k]): bytes([v]) for k, v in zip(b'abtnvfr"\\', b'\a\b\t\n\v\f\r"\\', strict=True)}
_MAYBE_BASE64 = re.compile(rb"\s*[A-Za-z0-9+/=_-]{16,}\s*")  # a line `base64_text` may read as a blob
_CACHE_EXCLUDES = (
    ":(exclude,glob)**/__pycache__/**",
    ":(exclude,glob)**/.pytest_cache/**",
    ":(exclude,glob)**/*.pyc",
)


@dataclass(frozen=True)
class GitState:
    root: Path  # top level of the working tree
    base_commit: str
    head_tree: str
    branch: str | None
    remote: str | None
    dirty: bool


def _answer(cwd: Path, *args: str) -> str | None:
    """What git prints for a question it may answer with nothing (or a failure): stripped, or None."""
    return gitcmd.output(cwd, *args, check=False, error=RecordError).strip() or None


def read_state(repo: Path) -> GitState:
    """The base commit and branch of `repo`; RecordError when it is not a git repository with a commit."""
    if not repo.is_dir():
        raise RecordError(f"{repo}: no such folder; pass --repo with the repository the agent works in")
    # One git for the usual case (a repository with a commit); the questions one by one when it fails, for
    # the error naming what is missing. `--abbrev-ref=loose` names the branch as `symbolic-ref --short`
    # does, and a detached HEAD as HEAD (no branch is named HEAD).
    first = gitcmd.run(
        repo, "rev-parse", "--show-toplevel", "HEAD^{commit}", "HEAD^{tree}", "--abbrev-ref=loose", "HEAD",
        check=False, error=RecordError,
    )  # fmt: skip
    answers = [line.strip() for line in first.stdout.decode("utf-8", "surrogateescape").splitlines()]
    if first.returncode == 0 and len(answers) == 4 and all(answers):
        top, commit, head_tree, head = answers
        root, branch = Path(top), None if head == "HEAD" else head
    else:
        root, commit, head_tree = _one_by_one(repo)
        branch = _answer(root, "symbolic-ref", "-q", "--short", "HEAD")
    remote = _answer(root, "config", "--get", "remote.origin.url")
    return GitState(root, commit, head_tree, branch, remote, dirty=False)


def _one_by_one(repo: Path) -> tuple[Path, str, str]:
    """The top level, the base commit and its tree; RecordError for the first one missing."""
    top = _answer(repo, "rev-parse", "--show-toplevel")
    if top is None:
        raise RecordError(f"{repo}: not a git repository; run `git init` and commit the starting state")
    root = Path(top)
    commit = _answer(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    if commit is None:
        raise RecordError(f"{root}: the repository has no commit yet; commit the starting state first")
    return root, commit, gitcmd.output(root, "rev-parse", "HEAD^{tree}", error=RecordError).strip()


def worktree_tree(state: GitState, exclude: tuple[Path, ...] = ()) -> str:
    """The tree hash of the working tree as it is now (tracked and untracked files, not ignored ones)."""
    specs = [".", *_CACHE_EXCLUDES]
    for path in exclude:
        try:
            rel = path.resolve().relative_to(state.root.resolve())
        except ValueError:
            continue
        specs.append(f":(exclude,literal){rel.as_posix()}")
    with tempfile.TemporaryDirectory(prefix="runner-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        gitcmd.run(state.root, "read-tree", state.base_commit, env=env, error=RecordError)
        gitcmd.run(state.root, "add", "-A", "--", *specs, env=env, error=RecordError)
        return gitcmd.output(state.root, "write-tree", env=env, error=RecordError).strip()


def diff_trees(state: GitState, before: str, after: str) -> bytes:
    """A unified diff from tree `before` to tree `after`, binary files and new files included, as `git apply`
    takes it whatever the user's git config says (see `_PLAIN_DIFF`)."""
    if before == after:
        return b""
    return gitcmd.run(
        state.root, "diff", *_PLAIN_DIFF, "--binary", "--full-index", before, after, error=RecordError
    ).stdout


def parse_history(value: str | int) -> str:
    """`base`, `full` or a count of commits N >= 1, as the manifest writes it; RecordError otherwise."""
    text = str(value).strip().lower()
    if text in ("base", "full") or (text.isdigit() and 0 < int(text) < 10**9 and not text.startswith("0")):
        return text
    raise RecordError(f"--history {value!r}: use base (the default: the base tree alone), full, or a count N")


@dataclass(frozen=True)
class Finding:
    """A secret the detectors found in what the bundle carries (never the secret itself)."""

    kind: str
    path: str
    commit: str | None  # the original commit that added it; None for the base tree


@dataclass(frozen=True)
class Bundled:
    history: str  # base | full | N
    commit: str  # the commit the bundle holds and replay checks out (its tree is the base tree)
    findings: tuple[Finding, ...]
    secrets: int = 0  # distinct secret values among the findings
    shallow: bool = False  # a shallow clone held less history than asked: the bundle holds what it has
    submodules: tuple[str, ...] = ()  # their paths: the bundle holds none of their files


# A squashed commit is the same for the same tree: fixed identity and date, so packs stay deterministic.
_SQUASH_ENV = {
    "GIT_AUTHOR_NAME": "runner", "GIT_AUTHOR_EMAIL": "runner@localhost", "GIT_AUTHOR_DATE": "@0 +0000",
    "GIT_COMMITTER_NAME": "runner", "GIT_COMMITTER_EMAIL": "runner@localhost", "GIT_COMMITTER_DATE": "@0 +0000",
}  # fmt: skip
_DROPPED_HEADERS = (b"parent ", b"gpgsig", b"mergetag ")


def _rewritten(raw: bytes, parent: str | None) -> bytes:
    """Commit object `raw` with `parent` as its only parent and no signature (which would no longer hold)."""
    head, _, message = raw.partition(b"\n\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\n"):
        if line.startswith(b" ") and skipping:
            continue  # continuation of a dropped multi-line header
        skipping = line.startswith(_DROPPED_HEADERS)
        if not skipping:
            kept.append(line)
    if parent is not None:
        kept.insert(1, b"parent " + parent.encode())
    return b"\n".join(kept) + b"\n\n" + message


def bundle(
    state: GitState, out: Path, history: str = "full", detectors: tuple[Detector, ...] = ()
) -> Bundled:
    """Write a git bundle holding the base commit's tree to `out`: `full` history, the last N first-parent
    commits rewritten onto a squashed root, or (`base`) one squashed commit. With `detectors`, scan what
    the bundle carries (every added line of every commit in it) and report the secrets found."""
    # Work in a private bare repository borrowing the user's objects (alternates): the squashed commits
    # and the temporary ref never reach the user's repository.
    with tempfile.TemporaryDirectory(prefix="runner-bundle-") as tmp:
        work = Path(tmp) / "repo.git"
        gitcmd.run(Path(tmp), "init", "-q", "--bare", str(work), error=RecordError)
        paths = gitcmd.output(
            state.root, "rev-parse", "--git-path", "objects", "--git-path", "shallow", error=RecordError
        ).splitlines()
        (work / "objects" / "info" / "alternates").write_text(str((state.root / paths[0]).resolve()) + "\n")
        # A shallow clone's oldest commits name parents it does not hold: its `shallow` file tells git where
        # history stops, and all of that history is rewritten onto a root (a bundle of the commits as they
        # are could not be fetched).
        shallow = (state.root / paths[1]).is_file()
        if shallow:
            shutil.copyfile(state.root / paths[1], work / "shallow")
        origin: dict[str, str | None] = {}  # bundled commit -> the original it stands for (None: squashed)
        asked = history
        if history == "full" and not shallow:
            tip = state.base_commit
        else:
            count = None if history in ("base", "full") else int(history)
            chain = [] if history == "base" else _first_parents(work, state.base_commit, count)
            if history != "base" and (count is None or len(chain) < count):
                history = str(len(chain))  # all there is: what a shallow clone holds, or a short history
            oldest = chain[0] if chain else state.base_commit
            parents = gitcmd.output(
                work, "rev-list", "--parents", "-n", "1", oldest, error=RecordError
            ).split()
            tip_or_none: str | None = None
            if not chain or len(parents) > 1:  # a squashed root: the tree before the kept commits
                root_tree = f"{parents[1]}^{{tree}}" if chain else f"{state.base_commit}^{{tree}}"
                message = f"runner: squashed tree of {parents[1] if chain else state.base_commit}\n"
                tip_or_none = (
                    gitcmd.run(
                        work,
                        "commit-tree",
                        root_tree,
                        stdin=message.encode(),
                        env=_SQUASH_ENV,
                        error=RecordError,
                    )
                    .stdout.decode()
                    .strip()
                )
                origin[tip_or_none] = parents[1] if chain else None  # the commit whose tree it is
            for commit in chain:
                raw = gitcmd.run(work, "cat-file", "commit", commit, error=RecordError).stdout
                tip_or_none = gitcmd.run(
                    work, "hash-object", "-t", "commit", "-w", "--stdin",
                    stdin=_rewritten(raw, tip_or_none), error=RecordError,
                ).stdout.decode().strip()  # fmt: skip
                origin[tip_or_none] = commit
            assert tip_or_none is not None
            tip = tip_or_none
        ref = "refs/heads/base"
        gitcmd.run(work, "update-ref", ref, tip, error=RecordError)
        gitcmd.run(work, "bundle", "create", "-q", str(out), ref, error=RecordError)
        findings, secrets = _scan(work, tip, origin, detectors) if detectors else ((), 0)
        # A submodule is a commit of another repository: the bundle holds its path, not its files.
        tree = gitcmd.run(work, "ls-tree", "-r", "-z", state.base_commit, error=RecordError).stdout
        submodules = tuple(
            entry.split(b"\t", 1)[1].decode("utf-8", "surrogateescape")
            for entry in tree.split(b"\0")
            if entry.startswith(b"160000 ")
        )
    return Bundled(history, tip, findings, secrets, shallow and history != asked, submodules)


def _diff_path(name: bytes) -> str:
    """A file name from a `+++ b/NAME` line: git quotes one holding a quote, a backslash, a control or (by
    default) a non-ASCII byte in C style ("b/na\\303\\257ve.py"), which is read back here, and ends one
    holding a space with a tab."""
    name = name.removesuffix(b"\t")  # after a name holding a space (a tab in one would be quoted)
    if name.startswith(b'"') and name.endswith(b'"') and len(name) > 1:
        name = _C_ESCAPE.sub(lambda m: _C_CHARS.get(m[1]) or bytes([int(m[1], 8) & 0xFF]), name[1:-1])
    return name.decode("utf-8", "surrogateescape").removeprefix("b/")


def _first_parents(work: Path, commit: str, count: int | None) -> list[str]:
    """The last `count` first-parent commits ending at `commit` (None: all of them), oldest first."""
    limit = () if count is None else ("-n", str(count))
    out = gitcmd.output(work, "rev-list", "--first-parent", *limit, commit, error=RecordError)
    return out.split()[::-1]


def _scan(
    work: Path, tip: str, origin: dict[str, str | None], detectors: tuple[Detector, ...]
) -> tuple[tuple[Finding, ...], int]:
    """Every secret the detectors find in the lines the bundle's commits add (the root adds its whole tree).
    The lines a commit adds to a file are scanned as one text (hyperscan points the detectors at the lines
    where one may match, so a long history takes seconds), as they stream out of `git log`; a line that may
    be one base64 blob is also read as a text of its own, as each line was before."""
    from proxy.redact import base64_text
    from runner.privacy.scan import ScanRedactor  # compiles the detectors: only a bundle needs it, at the end

    found: list[tuple[str, str]] = []
    scan = ScanRedactor(b"scan", detectors, found=lambda kind, secret, token: found.append((kind, secret)))
    findings: dict[tuple[str, str | None, str], Finding] = {}
    commit: str | None = None
    path, header = "", False
    added: list[bytes] = []  # the lines the current commit adds to the current file

    def flush() -> None:
        if not added:
            return
        found.clear()
        scan.redact(b"".join(added))
        for line in added:
            text = line.decode("utf-8", "surrogateescape") if _MAYBE_BASE64.fullmatch(line) else None
            if text is not None and base64_text(text) is not None:
                scan.text(text)
        for kind, secret in found:
            findings.setdefault((secret, commit, path), Finding(kind, path, commit))
        added.clear()

    # --root: log.showRoot=false in the user's config hid a root's diff, the whole tree of a squashed bundle.
    args = ("log", "-p", "--root", *_PLAIN_DIFF, "--unified=0", "--format=%x00%H", tip)
    log = gitcmd.lines(work, *args, error=RecordError, timeout=1800)
    for raw in log:
        if raw.startswith(b"\x00"):
            flush()
            bundled = raw[1:].strip().decode()
            commit = origin.get(bundled, bundled) if origin else bundled
        elif raw.startswith(b"diff --git "):
            flush()
            header = True
        elif header and raw.startswith(b"+++ "):
            path = _diff_path(raw[4:].rstrip(b"\n"))
        elif raw.startswith(b"@@ "):
            header = False
        elif raw.startswith(b"+") and not header:
            added.append(raw[1:])
    flush()
    return tuple(findings.values()), len({secret for secret, _, _ in findings})
