"""Pack reading: verify, unpack and extract, including hostile packs, bombs, mutations and garbled streams."""

from __future__ import annotations

import random
import subprocess
import sys
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import PackError
from runner.pack import layout as pack_layout
from runner.pack import read as pack
from runner.pack import stream
from tests.pack.conftest import REPO
from tests.packfactory import raw_members, repack, seal, tar_bytes, write_pack, zstd_bomb

# --- verify ---------------------------------------------------------------------------------------


def test_verify_accepts_an_intact_pack(small_pack: Path) -> None:
    report = pack.verify(small_pack)
    assert report.ok and report.problem is None
    assert report.members_checked == len(raw_members(small_pack))


Members = list[tuple[str, bytes]]


def test_verify_detects_an_edited_manifest_field(small_pack: Path, tmp_path: Path) -> None:
    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        text = members[0][1].replace(b"model: gpt-4o-mini", b"model: gpt-4o")
        assert text != members[0][1]
        return [("manifest.yaml", text), *members[1:]]

    report = pack.verify(repack(small_pack, tmp_path / "p.tar.zst", edit))
    assert not report.ok and report.member == "manifest.yaml"
    assert "root digest does not match" in (report.problem or "")


def test_verify_names_the_first_altered_member(small_pack: Path, tmp_path: Path) -> None:
    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(n, d + b"!" if n.startswith("patches/") else d) for n, d in members]

    report = pack.verify(repack(small_pack, tmp_path / "p.tar.zst", edit))
    assert report.member == "patches/0001.diff"


def test_verify_names_a_missing_and_an_extra_member(small_pack: Path, tmp_path: Path) -> None:
    missing = pack.verify(
        repack(small_pack, tmp_path / "a.tar.zst", lambda m: [x for x in m if x[0] != "traces.jsonl"])
    )
    assert missing.member == "traces.jsonl" and "missing" in (missing.problem or "")
    extra = pack.verify(repack(small_pack, tmp_path / "b.tar.zst", lambda m: [*m, ("env/extra.txt", b"x")]))
    assert extra.member == "env/extra.txt" and "not listed" in (extra.problem or "")


def test_verify_refuses_an_unknown_format_version(tmp_path: Path) -> None:
    report = pack.verify(write_pack(tmp_path / "p.tar.zst", [("manifest.yaml", b"format_version: 7\n")]))
    assert "format_version 7 is not supported" in (report.problem or "")


def test_a_newer_container_version_says_so(small_pack: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer.tar.zst"
    newer.write_bytes(small_pack.read_bytes().replace(b"RPK1sha256", b"RPK2sha256"))
    assert "newer version" in (pack.verify(newer).problem or "")
    truncated = tmp_path / "truncated.tar.zst"
    truncated.write_bytes(small_pack.read_bytes()[:-10])
    assert "truncated" in (pack.verify(truncated).problem or "")


def test_every_single_byte_mutation_is_caught(small_pack: Path, tmp_path: Path) -> None:
    data = small_pack.read_bytes()
    rng = random.Random(20251125)
    target = tmp_path / "mutant.tar.zst"
    missed = []
    for _ in range(1000):
        pos = rng.randrange(len(data))
        mutant = bytearray(data)
        mutant[pos] ^= rng.randrange(1, 256)
        target.write_bytes(mutant)
        if pack.verify(target).ok:
            missed.append(pos)
    assert missed == []


# --- hostile packs --------------------------------------------------------------------------------

EVIL_NAMES = [
    "/etc/passwd", "../escape", "env/../../escape", "./env/x", "env//x", "env/./x", "env/x/", "C:/x",
    "env\\..\\x", "env/\x01", "..", ".", "unknown.txt", "ENV/PIP-FREEZE.TXT", "env/pip-freeze.txt",
    "manifest.yaml", "traces.jsonl", "env/ok.txt", "env/" + "a" * 2000, "artifacts/sha256/abc",
    "prompts/0001-user.txt", "workspace/base.bundle", "workspace", "env/sub",
]  # fmt: skip
TYPES = [
    tarfile.REGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.FIFOTYPE,
    tarfile.CONTTYPE,
]


@st.composite
def hostile_entries(draw: st.DrawFn) -> list[tuple[str, bytes, str]]:
    """(type, name, link target) triples, plus a few huge members."""
    n = draw(st.integers(1, 6))
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from(TYPES))
        name = draw(st.sampled_from(EVIL_NAMES) | st.text(min_size=1, max_size=30))
        size = draw(st.sampled_from([0, 5, 3 << 20]))
        out.append(
            (kind, name, size, draw(st.sampled_from(["/etc/passwd", "../../outside", "env/pip-freeze.txt"])))
        )
    return out


def _ti(kind: bytes, name: str, size: int, link: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size if kind in (tarfile.REGTYPE, tarfile.CONTTYPE) else 0
    ti.linkname = link
    ti.mode = 0o4777
    return ti


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=hostile_entries(), with_manifest=st.booleans(), position=st.integers(0, 20))
def test_hostile_packs_never_write_outside_and_nothing_on_refusal(
    small_pack: Path,
    tmp_path_factory: pytest.TempPathFactory,
    entries: list,
    with_manifest: bool,
    position: int,
) -> None:
    sandbox = tmp_path_factory.mktemp("sandbox")
    outside = sandbox / "outside"
    outside.mkdir()
    members: list[tarfile.TarInfo | tuple[str, bytes]] = (
        list(raw_members(small_pack)) if with_manifest else []
    )
    evil = [_ti(*e) for e in entries]
    for i, ti in enumerate(evil):
        members.insert(min(position + i, len(members)), ti)
    hostile = write_pack(sandbox / "hostile.tar.zst", members)
    before = _snapshot(sandbox)
    limits = pack_layout.Limits(max_total_bytes=1 << 20, max_member_bytes=1 << 20)
    try:
        pack.unpack(hostile, sandbox / "new" / "dest", limits)
    except PackError as e:
        assert str(hostile) in str(e) and "\n" not in str(e)
        assert _snapshot(sandbox) == before  # nothing at all was written
    else:
        # Only accepted when every injected entry is a plain file or folder inside the layout
        # (tar readers drop the trailing slash of a folder's name).
        def plain(ti: tarfile.TarInfo) -> bool:
            name = ti.name.rstrip("/") if ti.isdir() else ti.name
            return (
                ti.type in (tarfile.REGTYPE, tarfile.DIRTYPE)
                and pack_layout.layout_problem(name, ti.isdir()) is None
            )

        assert all(plain(ti) for ti in evil)
        dest = sandbox / "new" / "dest"
        assert _snapshot(sandbox) - before <= {"new", "new/dest", *(f"new/dest/{p}" for p in _snapshot(dest))}
    assert list(outside.iterdir()) == []
    assert not any(p.is_symlink() for p in sandbox.rglob("*"))


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (_ti(tarfile.SYMTYPE, "env/link", 0, "/etc/passwd"), "links are not allowed"),
        (_ti(tarfile.LNKTYPE, "env/hard", 0, "env/pip-freeze.txt"), "links are not allowed"),
        (_ti(tarfile.CHRTYPE, "env/tty", 0, ""), "devices and fifos"),
        (_ti(tarfile.FIFOTYPE, "env/fifo", 0, ""), "devices and fifos"),
        (_ti(tarfile.REGTYPE, "../escape", 5, ""), "'..' component"),
        (_ti(tarfile.REGTYPE, "/abs", 5, ""), "absolute path"),
        (_ti(tarfile.REGTYPE, "env//x", 5, ""), "not in normal form"),
        (_ti(tarfile.REGTYPE, "ENV/PIP-FREEZE.TXT", 5, ""), "not part of the pack layout"),
        (_ti(tarfile.REGTYPE, "traces.jsonl", 5, ""), "duplicate of traces.jsonl"),
        (_ti(tarfile.REGTYPE, "env/extra", 5, ""), "not listed in the manifest"),
    ],
)
def test_each_hostile_entry_has_a_clear_reason(
    small_pack: Path, tmp_path: Path, entry: tarfile.TarInfo, reason: str
) -> None:
    members: list[tarfile.TarInfo | tuple[str, bytes]] = [*raw_members(small_pack), entry]
    hostile = write_pack(tmp_path / "h.tar.zst", members)
    with pytest.raises(PackError, match=reason):
        pack.unpack(hostile, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_unpack_into_an_existing_empty_folder_leaves_it_empty_on_refusal(
    small_pack: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    hostile = repack(small_pack, tmp_path / "h.tar.zst", lambda m: [*m, ("env/extra.txt", b"x")])
    with pytest.raises(PackError):
        pack.unpack(hostile, dest)
    assert list(dest.iterdir()) == []
    pack.unpack(small_pack, dest)
    with pytest.raises(PackError, match="not an empty folder"):
        pack.unpack(small_pack, dest)


# --- bombs ----------------------------------------------------------------------------------------


def _zeros_frame(size: int) -> bytes:
    """A few KB of zstd that expand to `size` zero bytes, with the small window a streaming writer uses."""
    z = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
    return z.compress(b"\0" * size) + z.flush()


def _measure(monkeypatch: pytest.MonkeyPatch, fn: Callable[[], pack.VerifyReport]) -> tuple[str, int, int]:
    """Run `fn`, return (problem, peak Python memory, decompressed bytes read)."""
    seen = [0]
    original = stream.CappedReader.read

    def counting(self: stream.CappedReader, n: int = -1) -> bytes:
        data = original(self, n)
        seen[0] = max(seen[0], self.count)
        return data

    monkeypatch.setattr(stream.CappedReader, "read", counting)
    tracemalloc.start()
    try:
        report = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report.problem or "", peak, seen[0]


def test_zstd_bomb_after_the_archive_stops_early_with_bounded_memory(
    small_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw_tar = tar_bytes(list(raw_members(small_pack)))
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
    zeros = _zeros_frame(64 << 20)
    bomb = tmp_path / "bomb.tar.zst"
    bomb.write_bytes(seal(cctx.compress(raw_tar) + zeros * 64))  # 4 GiB once decompressed
    problem, peak, read = _measure(monkeypatch, lambda: pack.verify(bomb))
    assert "goes past" in problem
    assert read < 8 << 20
    assert peak < 24 << 20


# VmHWM is this process's own peak (ru_maxrss would also count the parent's peak, inherited at exec).
BOMB_CHILD = """
import sys
from pathlib import Path
from runner.pack import read as pack
report = pack.verify(Path(sys.argv[1]))
print(report.problem)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from Linux /proc")
def test_zstd_bomb_peak_rss_of_a_real_process(small_pack: Path, tmp_path: Path) -> None:
    """tracemalloc cannot see the decoder's C memory: measure a whole process instead."""
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
    bomb = tmp_path / "bomb.tar.zst"
    raw_tar = tar_bytes(list(raw_members(small_pack)))
    bomb.write_bytes(seal(cctx.compress(raw_tar) + _zeros_frame(64 << 20) * 64))
    out = subprocess.run(
        [sys.executable, "-c", BOMB_CHILD, str(bomb)], cwd=REPO, capture_output=True, text=True
    )
    problem, rss_mb = out.stdout.strip().splitlines()
    assert "goes past" in problem
    assert int(rss_mb) < 80


def test_verify_first_writes_nothing_of_a_member_that_fails_its_hash(tmp_path: Path) -> None:
    bomb = zstd_bomb(tmp_path, "env/big.bin", 16 << 20, declared=16 << 20)
    dest = tmp_path / "out" / "pack"
    with pytest.raises(PackError, match=r"env/big\.bin: sha256 does not match"):
        pack.unpack(bomb, dest, verify_first=True)
    assert not (tmp_path / "out").exists()  # refused before the destination was even created


def test_only_writes_the_named_members_and_still_checks_the_rest(small_pack: Path, tmp_path: Path) -> None:
    unpacked = pack.unpack(small_pack, tmp_path / "a", only={"traces.jsonl"})
    assert sorted(p.name for p in unpacked.path.iterdir()) == ["manifest.yaml", "traces.jsonl"]
    bomb = zstd_bomb(tmp_path, "env/big.bin", 1 << 20, declared=1 << 20)
    with pytest.raises(PackError, match=r"env/big\.bin: sha256 does not match"):
        pack.unpack(bomb, tmp_path / "b", only={"traces.jsonl"})
    assert not (tmp_path / "b").exists()


def test_huge_declared_member_is_refused_from_its_header(
    small_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = _ti(tarfile.REGTYPE, "traces.jsonl", 0, "")
    huge.size = 1 << 40
    name, text = raw_members(small_pack)[0]
    first = _ti(tarfile.REGTYPE, name, len(text), "")
    padded = text + b"\0" * (-len(text) % tarfile.BLOCKSIZE)
    data = first.tobuf(tarfile.PAX_FORMAT) + padded + huge.tobuf(tarfile.PAX_FORMAT)
    bomb = tmp_path / "bomb.tar.zst"
    cctx = zstandard.ZstdCompressor(write_checksum=True)
    bomb.write_bytes(seal(cctx.compress(data) + _zeros_frame(64 << 20) * 4))
    problem, peak, read = _measure(monkeypatch, lambda: pack.verify(bomb))
    assert "differs from the" in problem and "traces.jsonl" in problem
    assert read < 8 << 20 and peak < 24 << 20


def test_oversized_manifest_and_meta_headers_are_refused(tmp_path: Path) -> None:
    big = tarfile.TarInfo("manifest.yaml")
    big.size = 1 << 33
    bomb = write_pack(tmp_path / "m.tar.zst", [])
    cctx = zstandard.ZstdCompressor(write_checksum=True)
    bomb.write_bytes(seal(cctx.compress(big.tobuf(tarfile.PAX_FORMAT)) + _zeros_frame(64 << 20)))
    assert "larger than the" in (pack.verify(bomb).problem or "")
    pax = tarfile.TarInfo("manifest.yaml")
    pax.pax_headers = {"comment": "x" * (1 << 20)}
    assert "meta header" in (pack.verify(write_pack(tmp_path / "p.tar.zst", [pax])).problem or "")


def test_a_frame_asking_for_a_huge_window_is_refused(small_pack: Path, tmp_path: Path) -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=28)
    big_window = zstandard.ZstdCompressor(compression_params=params).compressobj()
    frame = big_window.compress(tar_bytes(list(raw_members(small_pack)))) + big_window.flush()
    bomb = tmp_path / "window.tar.zst"
    bomb.write_bytes(seal(frame))
    assert "corrupt or truncated" in (pack.verify(bomb).problem or "")


def test_integrity_sizes_over_the_limits_are_refused_before_reading(small_pack: Path) -> None:
    report = pack.verify(small_pack, pack_layout.Limits(max_total_bytes=100))
    assert "over the 100 byte limit" in (report.problem or "")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_garbled_tar_streams_only_ever_give_pack_errors(
    small_pack: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Random damage to the tar stream itself (under a valid zstd frame and trailer) never escapes as
    anything but PackError, and never writes anything when refused."""
    raw_tar = bytearray(tar_bytes(list(raw_members(small_pack))))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, 4 * tarfile.BLOCKSIZE - 1) | st.integers(0, len(raw_tar) - 1))
        raw_tar[pos] = data.draw(st.integers(0, 255))
    sandbox = tmp_path_factory.mktemp("garbled")
    garbled = sandbox / "g.tar.zst"
    garbled.write_bytes(seal(zstandard.ZstdCompressor(write_checksum=True).compress(bytes(raw_tar))))
    report = pack.verify(garbled)
    assert report.ok or (report.problem and "\n" not in report.problem)
    try:
        pack.unpack(garbled, sandbox / "dest")
    except PackError:
        assert not (sandbox / "dest").exists()
    else:
        assert report.ok


def test_a_member_with_capitals_is_found(tmp_path: Path) -> None:
    from tests.packfactory import make_pack

    # Duplicates are found by casefolded name; the members found must still be matched by their own name.
    built = make_pack(tmp_path, files={"env/Dockerfile": b"FROM scratch\n"})
    assert pack.verify(built).ok, pack.verify(built).problem
    assert (
        pack.unpack(built, tmp_path / "out").path / "env" / "Dockerfile"
    ).read_bytes() == b"FROM scratch\n"
