"""Members compressed as they are added: the pack reads as if each were compressed at write time."""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zstandard

from proxy.redact import Redactor
from runner.errors import PackError
from runner.pack import build as pack
from runner.pack import read as pack_read
from runner.pack import spool as spool_module
from runner.pack.manifest import Manifest, MemberDigest
from runner.pack.spool import Spool
from runner.privacy import mask, prescan
from runner.privacy.mask import PrivacyOptions
from tests.packfactory import make_manifest, raw_members

SECRET = "sk-" + "A1b2C3d4" * 4
KEY = PrivacyOptions(redaction_key=b"k" * 32)
SHA_X = hashlib.sha256(b"x\n").hexdigest()
PLACEHOLDER = Redactor(b"k" * 32).placeholder(SECRET, "openai-key")


def _build(tmp_path: Path, out: str, signer: object = None) -> tuple[Path, Path]:
    src = tmp_path / f"{out}.log"
    src.write_bytes(f"line one\nkey {SECRET} used\n".encode() * 50)
    with pack.PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        (tmp_path / f"{out}.txt").write_bytes(b"pytest==8\n")
        b.add_file("env/pip-freeze.txt", tmp_path / f"{out}.txt")
        b.add_artifact(src, media_type="text/plain", name="a.log")
        # An artifact whose redacted content is another one's: one blob.
        b.add_artifact(f"token {SECRET}\n".encode(), media_type="text/plain", name="b.log")
        b.add_artifact(f"token {PLACEHOLDER}\n".encode(), media_type="text/plain", name="c.log")
        b.add_artifact(b"no secret here\n" * 100, media_type="text/plain", name="d.log")
        b.build(make_manifest(), tmp_path / out, privacy=KEY, signer=signer)  # type: ignore[arg-type]
    return tmp_path / out, src


def _frames(path: Path) -> int:
    data, count = path.read_bytes(), 0
    while data[:4] == b"\x28\xb5\x2f\xfd":  # zstd frames, up to the trailer (a skippable frame)
        size = zstandard.frame_content_size(data)
        dctx = zstandard.ZstdDecompressor()
        reader = dctx.decompressobj()
        reader.decompress(data)
        data = reader.unused_data
        count += 1
        assert size != 0
    return count


def test_spooled_members_read_back_as_members_compressed_at_write_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spooled, _ = _build(tmp_path, "spooled.tar.zst")
    monkeypatch.setattr(Spool, "usable", lambda self, members: [])
    plain, _ = _build(tmp_path, "plain.tar.zst")
    assert _frames(spooled) >= 3  # manifest, the groups copied, the members compressed again, the end
    assert dict(raw_members(spooled)) == dict(raw_members(plain))
    assert raw_members(spooled)[0][0] == "manifest.yaml"
    out = pack_read.unpack(spooled, tmp_path / "out")
    blobs = [p.read_bytes() for p in (tmp_path / "out/artifacts/sha256").iterdir()]
    assert len(blobs) == 3 and not any(SECRET.encode() in b for b in blobs)
    assert len({a.path for a in out.manifest.artifacts}) == 3


def test_groups_whose_members_stand_are_copied_and_the_others_compressed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "FILL", 1)  # a group per member
    copied: list[list[str]] = []
    copy = Spool.copy

    def copying(self: Spool, group: spool_module.Group, write: object) -> None:
        copied.append(list(group.members))
        copy(self, group, write)  # type: ignore[arg-type]

    monkeypatch.setattr(Spool, "copy", copying)
    out, _ = _build(tmp_path, "p.tar.zst")
    names = [n for group in copied for n in group]
    assert len(names) == len(set(names))  # each member once
    members = dict(raw_members(out))
    assert set(names) == set(members) - {"manifest.yaml"}
    secret_free = [n for n, data in members.items() if n.startswith("artifacts/")]
    assert all(SECRET.encode() not in members[n] for n in secret_free)


def test_spooled_build_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert (
        _build(tmp_path / "a", "p.tar.zst")[0].read_bytes()
        == _build(tmp_path / "b", "p.tar.zst")[0].read_bytes()
    )


def test_a_file_changed_after_it_was_spooled_is_refused(tmp_path: Path) -> None:
    def change(manifest: Manifest) -> bytes:  # runs between the redaction pass and the write
        (tmp_path / "p.tar.zst.txt").write_bytes(b"changed")
        return b"{}"

    with pytest.raises(PackError, match="changed after it was added"):
        _build(tmp_path, "p.tar.zst", signer=change)
    assert not (tmp_path / "p.tar.zst").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def _entries(spool: Spool, group: spool_module.Group) -> bytes:
    chunks: list[bytes] = []
    spool.copy(group, chunks.append)
    data, out = b"".join(chunks), b""
    while data:
        reader = zstandard.ZstdDecompressor().decompressobj()
        out += reader.decompress(data)
        data = reader.unused_data
    return out


def test_a_group_is_copied_only_while_every_member_in_it_is_still_that_member(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 3)
    a = spool.add("env/a.txt", 1, [b"a"])
    assert a == MemberDigest(hashlib.sha256(b"a").hexdigest(), 1)
    b = spool.add("env/b.txt", 1, [b"b"], sha256="2" * 64)  # the caller's hash of bytes is taken as given
    assert b == MemberDigest("2" * 64, 1)
    assert list(spool.usable({})) == []
    (group,) = list(spool.usable({"env/a.txt": a, "env/b.txt": b, "env/c.txt": a}))
    assert group.members == {"env/a.txt": a, "env/b.txt": b} and group.size == 2
    assert not list(spool.usable({"env/a.txt": MemberDigest("3" * 64, 1), "env/b.txt": b}))  # rewritten since
    assert not list(spool.usable({"env/b.txt": b}))  # a member gone (an artifact renamed by its redaction)
    entries = _entries(spool, group)
    assert entries[512:513] == b"a" and entries[1536:1537] == b"b"
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_a_member_read_short_or_long_breaks_its_group(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 3)
    assert spool.add("env/a.txt", 5, [b"abc"]).size == 3  # the file shrank while read
    spool.add("env/b.txt", 1, [b"b"])
    assert list(spool.usable({"env/b.txt": MemberDigest(hashlib.sha256(b"b").hexdigest(), 1)})) == []
    other = Spool(tmp_path, 3)
    assert other.add("env/a.txt", 2, [b"ab", b"c"]).size == 3  # it grew
    assert list(other.usable({})) == [] and other.groups[0].broken

    def failing() -> Iterator[bytes]:
        yield b"a"
        raise OSError("I/O error")

    third = Spool(tmp_path, 3)
    with pytest.raises(OSError):
        third.add("env/a.txt", 2, failing())
    third.add("env/a.txt", 1, [b"a"])  # added again, in the same group: that group stays broken
    assert list(third.usable({"env/a.txt": MemberDigest(hashlib.sha256(b"a").hexdigest(), 1)})) == []
    for s in (spool, other, third):
        s.close()


def test_jobs_end_at_a_member_past_fill_or_when_full_and_groups_never_cut_a_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "JOB", 4096)
    monkeypatch.setattr(spool_module, "FILL", 2048)
    spool = Spool(tmp_path, 3, workers=2)
    members = {}
    contents = {f"env/{i}.txt": bytes([65 + i]) * (300 if i % 3 else 9000) for i in range(12)}
    buffers: set[int] = set()
    for name, data in contents.items():
        members[name] = spool.add(name, len(data), [data[:100], data[100:]])
        # memory stays bounded: a job per worker, one more
        assert len(spool._inflight) + (spool._buf is not None) <= 3
        buffers.update(id(buf) for _, _, buf, _ in spool._inflight)
    groups = list(spool.usable(members))
    assert [n for g in groups for n in g.members] == list(contents)
    assert any(len(g.frames) > 1 for g in groups)  # a member larger than a job spans frames
    assert all(len(g.frames) == 1 for g in groups if g.size < 2048)
    assert len(buffers) <= 3  # job buffers are used again
    with tarfile.open(fileobj=io.BytesIO(b"".join(_entries(spool, g) for g in groups) + b"\0" * 1024)) as tar:
        assert {m.name: tar.extractfile(m).read() for m in tar} == contents  # type: ignore[union-attr]
    spool.close()


def test_a_member_added_again_starts_a_group_and_is_copied_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 3)
    first = {"env/a.txt": spool.add("env/a.txt", 1, [b"a"]), "env/b.txt": spool.add("env/b.txt", 1, [b"b"])}
    rewritten = {**first, "env/a.txt": spool.add("env/a.txt", 2, [b"aa"])}  # in the same open group
    assert [list(g.members) for g in spool.usable(rewritten)] == [["env/a.txt"]]
    spool.add("env/a.txt", 1, [b"a"])  # back to its first content
    (group,) = list(spool.usable(first))
    assert list(group.members) == ["env/a.txt", "env/b.txt"]
    assert _entries(spool, group).count(b"ustar") == 2
    spool.close()


def test_the_pass_reads_a_bounded_number_of_bytes_ahead_of_its_rewrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mask, "_AHEAD", 250)  # bytes: three members of 100 in flight at most
    events: list[str] = []
    read, rewrite = pack.PackBuilder.member_bytes, pack.PackBuilder.rewrite

    def reading(self: pack.PackBuilder, member: str) -> bytes:
        events.append("read")
        return read(self, member)

    def rewriting(self: pack.PackBuilder, member: str, data: bytes, sha256: str | None = None) -> str:
        events.append("rewrite")
        return rewrite(self, member, data, sha256)

    monkeypatch.setattr(pack.PackBuilder, "member_bytes", reading)
    monkeypatch.setattr(pack.PackBuilder, "rewrite", rewriting)
    with pack.PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        b.add_bytes("env/pip-freeze.txt", b"pytest==8\n")  # read too, not rewritten
        for i in range(20):  # 100 bytes each, each with a secret
            b.add_artifact(
                (b"%02d key " % i + SECRET.encode()).ljust(99) + b"\n",
                media_type="text/plain",
                name=f"{i}.log",
            )
        b.build(make_manifest(), tmp_path / "p.tar.zst", privacy=KEY)
    ahead = [events[: i + 1].count("read") - events[: i + 1].count("rewrite") for i in range(len(events))]
    assert events.count("rewrite") == 20 and max(ahead) == 3


def test_a_full_temp_folder_is_a_pack_error_and_leaves_no_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mkstemp = tempfile.mkstemp

    def full(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if kwargs.get("prefix") == ".spool-":
            raise OSError(28, "No space left on device")
        return mkstemp(*args, **kwargs)

    monkeypatch.setattr(spool_module.tempfile, "mkstemp", full)
    with pytest.raises(PackError, match="No space left on device; check that folder has space"):
        _build(tmp_path, "p.tar.zst")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tar.zst.log", "p.tar.zst.txt"]  # the sources


def test_a_builder_can_build_twice(tmp_path: Path) -> None:
    with pack.PackBuilder() as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        b.add_bytes("env/pip-freeze.txt", b"pytest==8\n")
        b.add_artifact(f"token {SECRET}\n".encode(), media_type="text/plain", name="b.log")
        first = b.build(make_manifest(), tmp_path / "a.tar.zst", privacy=KEY)
        b.add_bytes("env/uv.lock", b"x\n")
        second = b.build(make_manifest(artifacts=first.artifacts), tmp_path / "b.tar.zst", privacy=KEY)
    assert first.integrity and second.integrity
    assert second.integrity.members == {**first.integrity.members, "env/uv.lock": MemberDigest(SHA_X, 2)}
    assert dict(raw_members(tmp_path / "b.tar.zst"))["env/uv.lock"] == b"x\n"


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read, names = pack.PackBuilder.member_bytes, []

    def reading(self: pack.PackBuilder, member: str) -> bytes:
        names.append(member)
        return read(self, member)

    monkeypatch.setattr(pack.PackBuilder, "member_bytes", reading)
    return names


CLEAN = b"2026-01-01 INFO all good, nothing to see.\n" * 200
CLEAN_MEMBER = f"artifacts/sha256/{hashlib.sha256(CLEAN).hexdigest()}"


def _session(b: pack.PackBuilder, tmp_path: Path) -> None:
    (tmp_path / "clean.log").write_bytes(CLEAN)
    (tmp_path / "secret.log").write_bytes(f"2026-01-01 INFO key {SECRET} used.\n".encode() * 20)
    b.add_bytes("workspace/base.bundle", b"bundle")
    b.add_bytes("env/pip-freeze.txt", b"pytest==8.3.1\n")
    b.add_bytes("env/settings.json", b'{"password": "hunter2", "ok": 1}')  # denied key: JSON rules
    b.add_artifact(tmp_path / "clean.log", media_type="text/plain", name="clean.log")
    b.add_artifact(tmp_path / "secret.log", media_type="text/plain", name="secret.log")


def test_members_the_pass_ran_ahead_on_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left as they were or redacted as they were added: the build reads none of them again, and makes the
    pack a build without the pass ahead makes."""
    monkeypatch.setattr(spool_module, "FILL", 1)  # a group per member
    reads = _reads(monkeypatch)
    with pack.PackBuilder(privacy=KEY) as b:
        _session(b, tmp_path)
        b.build(make_manifest(), tmp_path / "ahead.tar.zst")
    assert reads == []
    monkeypatch.setattr(prescan.Prescan, "inspect", lambda self, name, sha256, data: False)
    with pack.PackBuilder(privacy=KEY) as b:
        _session(b, tmp_path)
        b.build(make_manifest(), tmp_path / "plain.tar.zst")
    assert len(reads) == 4 and "env/settings.json" in reads
    members = dict(raw_members(tmp_path / "ahead.tar.zst"))
    assert members == dict(raw_members(tmp_path / "plain.tar.zst"))
    assert members[CLEAN_MEMBER] == CLEAN
    assert not any(SECRET.encode() in data or b"hunter2" in data for data in members.values())


def test_known_secrets_added_at_build_send_back_only_the_members_that_hold_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redacted, redact = [], mask._redacted

    def redacting(run: Any, builder: Any, name: str) -> Any:
        redacted.append(name)
        return redact(run, builder, name)

    monkeypatch.setattr(mask, "_redacted", redacting)
    known = mask.Secret("REDACTED_credential_0123456789ab", "credential", "all good")  # a value the proxy saw
    with pack.PackBuilder(privacy=KEY) as b:
        _session(b, tmp_path)
        b.add_bytes("env/notes.json", b'{"note": "all good"}')  # JSON: looked at again whatever it holds
        b.add_bytes("env/other.json", b'{"note": "fine"}')
        b.build(make_manifest(), tmp_path / "p.tar.zst", privacy=replace(KEY, known=(known,)))
    assert CLEAN_MEMBER in redacted and "env/notes.json" in redacted and "env/other.json" in redacted
    assert "env/pip-freeze.txt" not in redacted  # cleared ahead, and the new value is not written in it
    members = dict(raw_members(tmp_path / "p.tar.zst"))
    assert not any(b"all good" in data for data in members.values())
    assert members["env/pip-freeze.txt"] == b"pytest==8.3.1\n"


@pytest.mark.parametrize(
    ("ahead", "at_build"),
    [
        (KEY, PrivacyOptions(policy="strict-v1", redaction_key=b"k" * 32)),  # another policy
        (  # a known secret the build does not have
            replace(KEY, known=(mask.Secret("REDACTED_credential_0123456789ab", "credential", "hunter22"),)),
            KEY,
        ),
    ],
    ids=["policy", "fewer-known"],
)
def test_verdicts_that_do_not_carry_over_send_every_member_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: PrivacyOptions, at_build: PrivacyOptions
) -> None:
    reads = _reads(monkeypatch)
    with pack.PackBuilder(privacy=ahead) as b:
        _session(b, tmp_path)
        b.build(make_manifest(), tmp_path / "p.tar.zst", privacy=at_build)
    assert CLEAN_MEMBER in reads and "env/pip-freeze.txt" in reads


def test_files_larger_than_a_job_are_hashed_then_read_again_and_one_content_is_one_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "JOB", 8192)
    monkeypatch.setattr(spool_module, "FILL", 4096)
    big, small = b"large log line.\n" * 2000, b"small log line.\n" * 100
    for name, data in (("big", big), ("big-again", big), ("small", small), ("small-again", small)):
        (tmp_path / name).write_bytes(data)
    with pack.PackBuilder(privacy=KEY) as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        b.add_file("env/pip-freeze.txt", tmp_path / "big")  # a named member larger than a job: by pieces
        digests = [b.add_artifact(tmp_path / n, name=n) for n in ("big", "big-again", "small", "small-again")]
        b.build(make_manifest(), tmp_path / "p.tar.zst")
    assert digests == [hashlib.sha256(d).hexdigest() for d in (big, big, small, small)]
    members = dict(raw_members(tmp_path / "p.tar.zst"))
    assert members["env/pip-freeze.txt"] == big
    assert (
        members[f"artifacts/sha256/{digests[0]}"] == big
        and members[f"artifacts/sha256/{digests[2]}"] == small
    )
    assert len([n for n in members if n.startswith("artifacts/")]) == 2


def test_a_file_that_grows_while_read_is_refused_and_the_builder_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "growing.log"
    log.write_bytes(b"line.\n" * 100)
    read_into = Spool.read_into

    def growing(self: Spool, f: Any, size: int, room: int) -> memoryview | None:
        with log.open("ab") as more:
            more.write(b"one more line.\n")
        return read_into(self, f, size, room)

    with pack.PackBuilder(privacy=KEY) as b:
        b.add_bytes("workspace/base.bundle", b"bundle")
        with monkeypatch.context() as m:
            m.setattr(Spool, "read_into", growing)
            with pytest.raises(PackError, match="changed while it was being added"):
                b.add_artifact(log, name="growing.log")
        digest = b.add_artifact(log, name="growing.log")
        b.add_bytes("env/pip-freeze.txt", b"pytest==8\n")
        b.build(make_manifest(), tmp_path / "p.tar.zst")
    assert dict(raw_members(tmp_path / "p.tar.zst"))[f"artifacts/sha256/{digest}"] == log.read_bytes()


def test_inspect_runs_on_members_whole_in_one_job_and_a_failing_one_says_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "JOB", 4096)
    monkeypatch.setattr(spool_module, "FILL", 2048)
    seen: list[tuple[str, bytes]] = []

    def inspect(name: str, _sha256: str, data: memoryview) -> bool:
        seen.append((name, bytes(data)))
        if name == "env/boom.txt":
            raise RuntimeError("boom")
        return True

    spool = Spool(tmp_path, 3)
    spool.inspect = inspect
    kept = spool.add("env/kept.txt", 3000, [b"k" * 3000], inspect=True)  # a job of its own, compressed
    a = spool.add("env/a.txt", 3, [b"abc"], inspect=True)
    spool.add("env/not-asked.txt", 3, [b"xyz"])
    boom = spool.add("env/boom.txt", 4, [b"boom"], inspect=True)
    spans = spool.add("env/long.txt", 6000, [b"L" * 6000], inspect=True)  # across two jobs
    spool.flush()
    assert sorted(seen) == [("env/a.txt", b"abc"), ("env/boom.txt", b"boom"), ("env/kept.txt", b"k" * 3000)]
    assert spool.verdicts == {
        ("env/kept.txt", kept.sha256): True,
        ("env/a.txt", a.sha256): True,
        ("env/boom.txt", boom.sha256): False,
    }
    assert ("env/long.txt", spans.sha256) not in spool.verdicts
    # The job holding a member likely to be rewritten is not compressed: its group is never copied.
    (kept_group,) = [g for g in spool.groups if "env/kept.txt" in g.members]
    (boom_group,) = [g for g in spool.groups if "env/boom.txt" in g.members]
    assert kept_group.frames and not kept_group.broken
    assert boom_group.broken and len(boom_group.frames) == 1  # the job with boom.txt was not compressed
    with (tmp_path / "f").open("wb") as f:
        f.write(b"12345")
    with open(tmp_path / "f", "rb", buffering=0) as f:
        view = spool.read_into(f, 5, 512)
        assert view is not None and bytes(view) == b"12345"
        with pytest.raises(ValueError, match="takes"):
            spool.commit("env/" + "x" * 200 + ".txt", MemberDigest("0" * 64, 5))  # a longer header
    spool.close()


def test_bytes_are_held_in_memory_up_to_a_budget_then_staged_and_the_pack_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def session(out: str) -> tuple[dict[str, bytes], list[Path]]:
        with pack.PackBuilder(privacy=KEY) as b:
            b.add_bytes("workspace/base.bundle", b"bundle")
            b.add_bytes("env/pip-freeze.txt", b"pytest==8.3.1\n")
            for i in range(6):  # 300 bytes each, two with a secret (rewritten: held or staged too)
                text = f"{i} key {SECRET} used.\n" if i % 3 == 0 else f"{i} nothing to see here.\n"
                b.add_artifact(text.encode().ljust(299, b".") + b"\n", name=f"{i}.log")
            b.build(make_manifest(), tmp_path / out)
            staged = [p for p in b.staging.rglob("*") if p.is_file() and not p.name.startswith(".spool")]
        return dict(raw_members(tmp_path / out)), staged

    held, none_staged = session("held.tar.zst")
    monkeypatch.setattr(pack, "_HOLD", 700)  # two members' worth
    budget, staged = session("budget.tar.zst")
    assert none_staged == [] and len(staged) >= 4  # past the budget, members go to the staging folder
    assert held == budget
    assert not any(SECRET.encode() in data for data in held.values())


def test_verdicts_are_all_in_while_the_last_job_still_compresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`judge` waits for `inspect` alone: the pass can start while the last members compress."""
    release, real = threading.Event(), zstandard.ZstdCompressor(level=3, write_checksum=True)

    class Slow:
        def compress(self, data: bytes) -> bytes:
            assert release.wait(10)
            return real.compress(data)

    monkeypatch.setattr(spool_module.zstandard, "ZstdCompressor", lambda **kwargs: Slow())
    spool = Spool(tmp_path, 3, workers=2)
    spool.inspect = lambda name, sha256, data: bytes(data) != b"secret"
    a = spool.add("env/a.txt", 1, [b"a"], inspect=True)
    s = spool.add("env/s.txt", 6, [b"secret"], inspect=True)
    spool.judge()
    assert spool.verdicts == {("env/a.txt", a.sha256): True, ("env/s.txt", s.sha256): False}
    assert list(spool.usable({"env/a.txt": a, "env/s.txt": s})) == []  # the job holding a rewritten member
    b = spool.add("env/b.txt", 1, [b"b"], inspect=True)
    spool.judge()
    assert spool.verdicts[("env/b.txt", b.sha256)] is True
    assert not spool._inflight[-1][0].done()  # its compression is still waiting
    release.set()
    (group,) = list(spool.usable({"env/a.txt": a, "env/s.txt": s, "env/b.txt": b}))
    assert list(group.members) == ["env/b.txt"] and group.frames
    spool.close()


def test_groups_are_handed_over_as_their_frames_come_in_while_the_last_job_compresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`send` sends the job being filled without waiting for room; `usable` gives each group once its own
    frames are in, so a build copies the first groups while the last members still compress."""
    monkeypatch.setattr(spool_module, "JOB", 4096)
    monkeypatch.setattr(spool_module, "FILL", 2048)
    release, real = threading.Event(), zstandard.ZstdCompressor(level=3, write_checksum=True)

    class SlowOnTheLast:
        def compress(self, data: memoryview) -> bytes:
            if b"last" in bytes(data):
                assert release.wait(10)
            return real.compress(data)

    monkeypatch.setattr(spool_module.zstandard, "ZstdCompressor", lambda **kwargs: SlowOnTheLast())
    spool = Spool(tmp_path, 3, workers=1)
    contents = {"env/a.txt": b"a" * 3000, "env/b.txt": b"b" * 3000, "env/z.txt": b"last"}  # a job each
    members = {name: spool.add(name, len(data), [data]) for name, data in contents.items()}
    spool.send()
    assert spool._buf is None and len(spool._inflight) == 2  # sent though the one worker is busy
    groups = spool.usable(members)
    first = next(groups)
    assert list(first.members) == ["env/a.txt"] and first.frames
    assert not spool._inflight[-1][0].done()  # the last job still compresses
    release.set()
    assert [list(g.members) for g in groups] == [["env/b.txt"], ["env/z.txt"]]
    assert not spool._inflight
    spool.close()


def test_a_big_bytes_member_is_a_job_of_its_own_holding_those_very_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes cannot change, so a big member given as one bytes object is compressed where it lies (no copy
    into a job buffer under the interpreter's lock): a frame and a group of its own, between the others."""
    monkeypatch.setattr(spool_module, "OWN", 1000)
    spool = Spool(tmp_path, 3, workers=2)
    seen: dict[str, object] = {}

    def inspect(name: str, sha256: str, data: memoryview) -> bool:
        seen[name] = data.obj
        return b"secret" not in bytes(data)

    spool.inspect = inspect
    big, secret, small = b"b" * 1500, b"secret" + b"s" * 1500, b"small"
    members = {
        "env/small-1.txt": spool.add("env/small-1.txt", 5, [small], inspect=True),
        "env/big.txt": spool.add("env/big.txt", len(big), (big,), inspect=True),
        "env/secret.txt": spool.add("env/secret.txt", len(secret), [secret], inspect=True),
        "env/small-2.txt": spool.add("env/small-2.txt", 5, [small], inspect=True),
    }
    assert members["env/big.txt"] == MemberDigest(hashlib.sha256(big).hexdigest(), len(big))
    groups = list(spool.usable(members))
    assert [list(g.members) for g in groups] == [["env/small-1.txt"], ["env/big.txt"], ["env/small-2.txt"]]
    assert seen["env/big.txt"] is big and seen["env/secret.txt"] is secret  # inspected in place
    assert spool.verdicts[("env/secret.txt", members["env/secret.txt"].sha256)] is False
    (big_group,) = [g for g in spool.groups if "env/big.txt" in g.members]
    assert len(big_group.frames) == 1
    entries = b"".join(_entries(spool, g) for g in groups) + b"\0" * 1024
    with tarfile.open(fileobj=io.BytesIO(entries)) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    assert got == {"env/small-1.txt": small, "env/big.txt": big, "env/small-2.txt": small}
    # Pieces, a size that does not match, or bytes under the bound go through the buffers as before.
    other = Spool(tmp_path, 3)
    assert other.add("env/a.txt", len(big) + 1, (big,)).size == len(big)  # the size announced is not met
    assert list(other.usable({})) == [] and other.groups[0].broken
    spool.close()
    other.close()


def test_the_bytes_a_view_shows_are_the_bytes_object_itself_when_it_covers_it_whole() -> None:
    from runner.privacy.membertext import bytes_of

    data = b"0123456789"
    assert bytes_of(data) is data
    assert bytes_of(memoryview(data)) is data
    assert bytes_of(memoryview(data)[2:5]) == b"234"
    buffer = bytearray(data)
    shown = bytes_of(memoryview(buffer))
    assert shown == data and type(shown) is bytes  # a buffer that can change is copied
    buffer[0] = 0
    assert shown == data


def test_a_big_member_redacted_ahead_is_compressed_there_and_its_rewrite_takes_that_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass run ahead compresses what it redacts on the worker it runs on; the rewrite at the end takes
    that frame instead of compressing again, and the pack is byte for byte the one built without it."""
    monkeypatch.setattr(spool_module, "OWN", 1000)
    sent: list[bool] = []  # per member sent as its own job: whether its content's frame was made ahead
    send = Spool._send

    def sending(self: Spool, data: memoryview, look: Any, buf: Any, around: Any) -> None:
        if around is not None:
            sent.append(around[2] is not None)
        send(self, data, look, buf, around)

    monkeypatch.setattr(Spool, "_send", sending)

    def session(name: str) -> Path:
        with pack.PackBuilder(privacy=KEY) as b:
            b.add_bytes("workspace/base.bundle", b"bundle")
            b.add_bytes("env/pip-freeze.txt", b"pytest==8\n")
            b.add_artifact(f"key {SECRET} used\n".encode() * 100, media_type="text/plain", name="a.log")
            b.add_artifact(b"nothing to hide\n" * 100, media_type="text/plain", name="b.log")
            b.build(make_manifest(), tmp_path / name)
        return tmp_path / name

    ahead = session("ahead.tar.zst")
    assert sent == [False, False, True]  # a.log and b.log as added, then a.log redacted
    sent.clear()
    monkeypatch.setattr(Spool, "compress_ahead", lambda self, data, sha256: 0)
    plain = session("plain.tar.zst")
    assert sent == [False, False, False]
    assert ahead.read_bytes() == plain.read_bytes()
    members = dict(raw_members(ahead))
    assert SECRET.encode() not in members[next(n for n in members if n.startswith("artifacts/"))]
    assert not any(SECRET.encode() in data for data in members.values())
