"""Build small, valid repro packs from readable sources, for tests of any stage.

    from tests.packfactory import command, make_pack, patch

    pack = make_pack(tmp_path, steps=[patch("p1", DIFF), command("c1", ["pytest", "-q"], stdout=b"1 passed\\n")])

Steps are given as `patch(...)`/`command(...)` recipes (they add their diff or output artifacts to the
pack) or as ready `Step` values. With `repo=` the pack carries a real git bundle of that repository's HEAD;
without it the bundle is a placeholder and the base commit a fixed fake.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zstandard

from runner.pack import manifest as mf
from runner.pack.build import PackBuilder
from runner.privacy.mask import PrivacyOptions

if TYPE_CHECKING:  # the trace model is imported where a pack gets traces (the pack bench builds without)
    from runner.pack.traces import Span

StepRecipe = Callable[[PackBuilder, int], mf.Step]

TRACE_ID = "5b8aa5a2d2c872e8321cf37308d69df2"
ROOT_SPAN = "051581bf3cb55c13"
FAKE_COMMIT = "9ac3f7f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6"


def patch(step_id: str, diff: str, reason: str | None = None, span_id: str | None = ROOT_SPAN) -> StepRecipe:
    def add(builder: PackBuilder, index: int) -> mf.Step:
        member = f"patches/{index:04d}.diff"
        builder.add_bytes(member, diff.encode())
        return mf.PatchStep(id=step_id, patch=member, span_id=span_id, reason=reason)

    return add


def command(
    step_id: str,
    argv: Sequence[str],
    *,
    stdout: bytes = b"",
    stderr: bytes = b"",
    exit_code: int = 0,
    outputs: Mapping[str, bytes] | None = None,
    compare: mf.Comparison | None = None,
    timeout: float = 60,
    cwd: str = ".",
    env: Mapping[str, str] | None = None,
    span_id: str | None = ROOT_SPAN,
) -> StepRecipe:
    def add(builder: PackBuilder, index: int) -> mf.Step:
        def art(data: bytes, name: str) -> str:
            return builder.add_artifact(data, media_type="text/plain", name=name, span_id=span_id)

        return mf.CommandStep(
            id=step_id,
            argv=tuple(argv),
            timeout=timeout,
            cwd=cwd,
            env=dict(env or {}),
            expect=mf.Expectation(
                exit_code=exit_code,
                stdout=art(stdout, f"{step_id}.stdout"),
                stderr=art(stderr, f"{step_id}.stderr"),
                outputs={p: art(d, p) for p, d in (outputs or {}).items()},
            ),
            compare=compare or mf.Comparison(),
            span_id=span_id,
        )

    return add


def make_manifest(**overrides: Any) -> mf.Manifest:
    """A valid manifest without integrity; keyword arguments replace its fields."""
    base = mf.Manifest(
        session=mf.Session(id="a017c2d6-91a3-4d9c-8d2f-40e2b8cfa0ee", created_at="2025-11-24T13:42:17Z"),
        agent=mf.Agent(name="repo-debugger", commit="6d1e5f2", config_version="42"),
        git=mf.GitInputs(
            base_commit=FAKE_COMMIT, remote="https://example.invalid/service.git", branch="main"
        ),
        environment=mf.Environment(
            kind="snapshot",
            snapshot=mf.EnvSnapshot(python="3.11.8", packages="env/pip-freeze.txt", os="Debian GNU/Linux 12"),
            runtimes={"python": "3.11.8"},
        ),
        llm=mf.LlmDefaults(provider="openai", model="gpt-4o-mini", seed=424242, temperature=0.0, top_p=1.0),
    )
    return replace(base, **overrides)


def root_span() -> Span:
    from runner.pack.traces import Span

    return Span(
        trace_id=TRACE_ID,
        span_id=ROOT_SPAN,
        parent_span_id=None,
        name="agent.session",
        start_time_unix_nano=1_764_000_000_000_000_000,
        end_time_unix_nano=1_764_000_005_000_000_000,
        attributes={"session_id": "a017c2d6-91a3-4d9c-8d2f-40e2b8cfa0ee"},
    )


def _git_bundle(repo: Path, out: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
        ).stdout

    git("bundle", "create", str(out), "HEAD")
    return git("rev-parse", "HEAD").strip()


def make_pack(
    tmp_path: Path,
    *,
    steps: Sequence[StepRecipe | mf.Step] = (),
    files: Mapping[str, bytes] | None = None,
    repo: Path | None = None,
    name: str = "session.tar.zst",
    privacy: PrivacyOptions | None = None,
    **manifest_fields: Any,
) -> Path:
    """Build `tmp_path/name` and return its path. `files` adds or replaces members (member -> bytes);
    `privacy` is passed to `PackBuilder.build` (default: redaction with default-v1, no keyring)."""
    from runner.pack.traces import span_line

    files = dict(files or {})
    defaults = {
        "traces.jsonl": (span_line(root_span()) + "\n").encode(),
        "env/pip-freeze.txt": b"pytest==8.3.3\nrequests==2.32.3\n",
    }
    out = tmp_path / name
    with PackBuilder() as builder:
        if repo is not None:
            bundle = tmp_path / f".{name}.bundle"
            manifest_fields.setdefault("git", mf.GitInputs(base_commit=_git_bundle(repo, bundle)))
            builder.add_file(mf.BUNDLE_PATH, bundle)
        else:
            defaults[mf.BUNDLE_PATH] = b"placeholder: not a git bundle\n"
        for member, data in {**defaults, **files}.items():
            builder.add_bytes(member, data)
        built = tuple(
            s if isinstance(s, mf.PatchStep | mf.CommandStep) else s(builder, i)
            for i, s in enumerate(steps, 1)
        )
        builder.build(make_manifest(steps=built, **manifest_fields), out, privacy=privacy)
    if repo is not None:
        bundle.unlink()
    return out


def seal(compressed_frames: bytes) -> bytes:
    """Append the pack trailer to zstd data, as `PackBuilder.build` does, to craft hand-made packs."""
    from runner.pack.layout import trailer as _trailer

    return compressed_frames + _trailer(hashlib.sha256(compressed_frames).digest())


def raw_members(pack: Path) -> list[tuple[str, bytes]]:
    """The (name, data) members of a pack, in order, read with no checks (for crafting variants)."""
    data = pack.read_bytes()
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=False).read()
    out = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for ti in tar:
            f = tar.extractfile(ti)
            out.append((ti.name, f.read() if f else b""))
    return out


Members = list[tuple[str, bytes]]


def tar_bytes(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry, io.BytesIO(b"\0" * entry.size) if entry.isreg() else None)
            else:
                name, data = entry
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def write_pack(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    path.write_bytes(seal(zstandard.ZstdCompressor(write_checksum=True).compress(tar_bytes(entries))))
    return path


def repack(src: Path, dst: Path, edit: Callable[[Members], Members]) -> Path:
    return write_pack(dst, list(edit(raw_members(src))))


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def zstd_bomb(tmp_path: Path, member: str, size: int, *, declared: int, sha256: str = "0" * 64) -> Path:
    """A valid pack plus `member`: `size` zero bytes in the tar stream (a few KB compressed), listed in a
    re-digested manifest as `declared` bytes with hash `sha256` (wrong by default)."""
    from runner.pack.model import Integrity, MemberDigest

    members = dict(raw_members(make_pack(tmp_path, name="bomb-base.tar.zst")))
    manifest = mf.load(members.pop("manifest.yaml"))
    assert manifest.integrity is not None
    digests = {**manifest.integrity.members, member: MemberDigest(sha256=sha256, size=declared)}
    body = replace(manifest, integrity=None)
    manifest = replace(manifest, integrity=Integrity(root=mf.root_digest(body, digests), members=digests))
    buf = io.BytesIO()
    with (
        zstandard.ZstdCompressor(level=19).stream_writer(buf, closefd=False) as zw,
        tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data in [("manifest.yaml", mf.dump(manifest).encode()), *members.items()]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo(member)
        ti.size = size
        tar.addfile(ti, io.BufferedReader(_Zeros(size), 1 << 20))
    out = tmp_path / "bomb.tar.zst"
    out.write_bytes(seal(buf.getvalue()))
    return out
