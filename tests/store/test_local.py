"""The pack store: write once, retention tiers over a fake clock, legal holds that gc never touches."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from runner.errors import PackError, PrivacyError, UsageError
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.store.local import Retention, Store
from tests.packfactory import command, make_pack


class Clock:
    def __init__(self) -> None:
        self.t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.t

    def advance(self, days: float) -> None:
        self.t += dt.timedelta(days=days)


@pytest.fixture()
def clock() -> Clock:
    return Clock()


def two_packs(tmp_path: Path) -> tuple[Path, Path]:
    a = make_pack(tmp_path, name="a.tar.zst", steps=[command("c1", ["true"], stdout=b"a\n")])
    b = make_pack(tmp_path, name="b.tar.zst", steps=[command("c1", ["true"], stdout=b"b\n")])
    return a, b


def files(store: Path) -> set[str]:
    return {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}


def test_put_is_content_addressed_and_write_once(tmp_path: Path, clock: Clock) -> None:
    a, _ = two_packs(tmp_path)
    store = Store(tmp_path / "store", now=clock)
    first = store.put(a)
    assert first.id == pack_summary.inspect(a).manifest.integrity.root  # type: ignore[union-attr]
    clock.advance(1)
    assert store.put(a) == first  # the same pack again: nothing changes, not even the date
    stored = store.pack_path(first.id[:12])
    assert stored.read_bytes() == a.read_bytes()
    assert pack_read.verify(stored).ok
    assert stored.stat().st_mode & 0o222 == 0  # read-only on disk
    assert len(store.entries()) == 1


def test_a_damaged_pack_is_not_stored(tmp_path: Path, clock: Clock) -> None:
    a, _ = two_packs(tmp_path)
    data = bytearray(a.read_bytes())
    data[100] ^= 1
    a.write_bytes(bytes(data))
    with pytest.raises(PrivacyError, match="not storing"):
        Store(tmp_path / "store", now=clock).put(a)


def test_gc_walks_the_tiers_with_the_clock(tmp_path: Path, clock: Clock) -> None:
    a, _ = two_packs(tmp_path)
    root = tmp_path / "store"
    store = Store(root, now=clock)
    id = store.put(a).id
    assert store.gc() == []
    assert f"objects/{id}.tar.zst" in files(root)

    clock.advance(6.9)
    assert store.gc() == []
    clock.advance(0.2)  # 7.1 days
    dry = store.gc(dry_run=True)
    assert [x.action for x in dry] == ["drop-pack"] and f"objects/{id}.tar.zst" in files(root)
    assert [x.action for x in store.gc()] == ["drop-pack"]
    assert f"objects/{id}.tar.zst" not in files(root)
    assert {f"traces/{id}/manifest.yaml", f"traces/{id}/traces.jsonl", f"audit/{id}.json"} <= files(root)
    assert store.get(id).tier == "traces"
    with pytest.raises(UsageError, match="expired"):
        store.pack_path(id)

    clock.advance(83)  # 90.1 days
    assert [x.action for x in store.gc()] == ["drop-traces"]
    assert files(root) == {f"audit/{id}.json", f"index/{id}.json"}

    clock.advance(275)  # 365.1 days
    assert [x.action for x in store.gc()] == ["drop-entry"]
    assert files(root) == set() and store.entries() == []


def test_a_late_gc_drops_several_tiers_at_once(tmp_path: Path, clock: Clock) -> None:
    a, _ = two_packs(tmp_path)
    store = Store(tmp_path / "store", now=clock)
    store.put(a)
    clock.advance(100)
    assert [x.action for x in store.gc()] == ["drop-pack", "drop-traces"]


def test_holds_keep_everything_until_released(tmp_path: Path, clock: Clock) -> None:
    a, b = two_packs(tmp_path)
    root = tmp_path / "store"
    store = Store(root, now=clock)
    held = store.put(a).id
    free = store.put(b).id
    store.hold(held[:10], "incident 42", "sre@host")
    before = {p: (root / p).read_bytes() for p in files(root) if held in p}
    clock.advance(400)
    actions = store.gc()
    assert {(x.id, x.action) for x in actions} >= {(held, "keep-held"), (free, "drop-entry")}
    assert {p: (root / p).read_bytes() for p in files(root) if held in p} == before  # not even modified
    assert store.get(held).tier == "full" and store.get(held).hold.reason == "incident 42"  # type: ignore[union-attr]
    store.release(held)
    assert [x.action for x in store.gc()] == ["drop-pack", "drop-traces", "drop-entry"]
    assert store.entries() == []


def test_custom_retention_and_bad_input(tmp_path: Path, clock: Clock) -> None:
    a, _ = two_packs(tmp_path)
    store = Store(tmp_path / "store", now=clock)
    id = store.put(a).id
    clock.advance(2)
    assert [x.action for x in store.gc(Retention.from_days(1, 30, 60))] == ["drop-pack"]
    with pytest.raises(UsageError):
        Retention.from_days(10, 5, 60)
    with pytest.raises(UsageError, match="reason"):
        store.hold(id, "  ", "me")
    with pytest.raises(UsageError, match="no entry"):
        store.get("ffff")
    with pytest.raises(UsageError, match="not under hold"):
        store.release(id)


def test_store_commands(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from runner.cli import app

    a, _ = two_packs(tmp_path)
    store = str(tmp_path / "store")
    cli = CliRunner()
    put = cli.invoke(app, ["store", "put", str(a), "--store", store])
    assert put.exit_code == 0, put.output
    id = json.loads(put.output)[0]["id"]
    held = cli.invoke(app, ["store", "hold", id[:12], "--reason", "case 7", "--store", store])
    assert held.exit_code == 0 and json.loads(held.output)["hold"]["reason"] == "case 7"
    gc = cli.invoke(app, ["store", "gc", "--store", store, "--full-days", "0", "--dry-run"])
    assert json.loads(gc.output)["actions"] == [{"id": id, "action": "keep-held", "reason": "held: case 7"}]
    assert cli.invoke(app, ["store", "release", id[:12], "--store", store]).exit_code == 0
    gc = cli.invoke(app, ["store", "gc", "--store", store, "--full-days", "0"])
    assert [x["action"] for x in json.loads(gc.output)["actions"]] == ["drop-pack"]
    listed = cli.invoke(app, ["store", "list", "--store", store, "--json"])
    assert json.loads(listed.output)[0]["tier"] == "traces"
    bad = cli.invoke(app, ["store", "hold", "zzzz", "--reason", "x", "--store", store])
    assert bad.exit_code == 2 and "no entry" in bad.output


def cli_run(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from runner.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("bad_id", ["../../victim", "../outside", "ab" * 31 + "/..", "A" * 64, "f" * 63])
def test_gc_refuses_an_index_entry_whose_id_escapes_the_store(tmp_path: Path, bad_id: str) -> None:
    a, _ = two_packs(tmp_path)
    root = tmp_path / "deep" / "store"
    good = Store(root).put(a).id
    victim = tmp_path / "victim"
    (victim / "data").mkdir(parents=True)
    (victim / "data" / "keep.txt").write_text("precious")
    (tmp_path / "deep" / "outside").mkdir()
    # An index entry planted with a hostile id, old enough for every tier to expire.
    (root / "index" / "planted.json").write_text(
        json.dumps(
            {"id": bad_id, "session": "s", "added_at": "2000-01-01T00:00:00Z", "tier": "traces", "hold": None}
        )
    )
    before = files(root)
    code, out = cli_run("store", "gc", "--store", str(root), "--full-days", "0")
    assert code == 2
    line = one_error_line(out)
    assert "planted.json" in line
    assert (victim / "data" / "keep.txt").read_text() == "precious"
    assert (tmp_path / "deep" / "outside").is_dir()
    assert (
        files(root) == before and f"objects/{good}.tar.zst" in before
    )  # nothing deleted, not even the good one


def test_gc_refuses_an_entry_whose_file_name_is_not_its_id(tmp_path: Path, clock: Clock) -> None:
    a, b = two_packs(tmp_path)
    store = Store(tmp_path / "store", now=clock)
    first, second = store.put(a).id, store.put(b).id
    index = tmp_path / "store" / "index"
    (index / f"{first}.json").write_text((index / f"{second}.json").read_text())
    with pytest.raises(PackError, match=f"{first}.json: its file name does not match its id"):
        store.gc()


def test_gc_never_follows_a_symlink_out_of_the_store(tmp_path: Path, clock: Clock) -> None:
    a, _ = two_packs(tmp_path)
    root = tmp_path / "store"
    store = Store(root, now=clock)
    id = store.put(a).id
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    shutil.rmtree(root / "traces" / id)
    (root / "traces" / id).symlink_to(outside)
    clock.advance(100)
    with pytest.raises(PackError, match="outside the store"):
        store.gc()
    assert (outside / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("field", ["added_at", "tier"])
def test_a_malformed_index_entry_is_one_line_and_exit_2(tmp_path: Path, field: str) -> None:
    a, _ = two_packs(tmp_path)
    root = tmp_path / "store"
    id = Store(root).put(a).id
    path = root / "index" / f"{id}.json"
    data = json.loads(path.read_text())
    data[field] = "2026-01-01T00:00:00" if field == "added_at" else "forever"  # no zone / unknown tier
    path.write_text(json.dumps(data))
    code, out = cli_run("store", "gc", "--store", str(root))
    assert code == 2 and f"{id}.json" in one_error_line(out)


@pytest.mark.parametrize("days", ["nan", "inf", "-1", "-inf", "1e300"])
def test_gc_refuses_days_that_are_not_a_span(tmp_path: Path, days: str) -> None:
    a, _ = two_packs(tmp_path)
    root = tmp_path / "store"
    Store(root).put(a)
    before = files(root)
    for option in ("--full-days", "--traces-days", "--audit-days"):
        code, out = cli_run("store", "gc", "--store", str(root), option, days)
        assert code == 2 and option in one_error_line(out)
    assert files(root) == before


@pytest.mark.parametrize("verb", [["list"], ["gc"], ["put", "PACK"], ["hold", "ab", "--reason", "r"]])
def test_a_store_path_that_is_a_file_is_one_line_and_exit_2(tmp_path: Path, verb: list[str]) -> None:
    a, _ = two_packs(tmp_path)
    not_a_folder = tmp_path / "store"
    not_a_folder.write_text("a file")
    args = [str(a) if x == "PACK" else x for x in verb]
    code, out = cli_run("store", *args, "--store", str(not_a_folder))
    assert code == 2 and "not a folder" in one_error_line(out)
    assert not_a_folder.read_text() == "a file"


def test_put_keeps_a_private_pack_private(tmp_path: Path) -> None:
    a, b = two_packs(tmp_path)
    a.chmod(0o600)
    b.chmod(0o644)
    root = tmp_path / "store"
    store = Store(root)
    private, public = store.put(a).id, store.put(b).id
    assert (root / "objects" / f"{private}.tar.zst").stat().st_mode & 0o777 == 0o400
    assert (root / "objects" / f"{public}.tar.zst").stat().st_mode & 0o777 == 0o444
    for name in ("manifest.yaml", "traces.jsonl"):
        assert (root / "traces" / private / name).stat().st_mode & 0o077 == 0
    for folder in ("audit", "index"):
        assert (root / folder / f"{private}.json").stat().st_mode & 0o077 == 0
