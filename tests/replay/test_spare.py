"""Spare proxy sidecars without an engine: what a spare is started with, that one replay alone claims it,
that a spare of another image or about to expire is not claimed, and that expired ones are swept."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from runner.engine.sandbox import User
from runner.replay import spare

USER = User(os.getuid(), os.getgid())  # the runner's own user: nothing to hand over


class _Container:
    def __init__(self, client: _Client, cid: str, labels: dict[str, str], **kwargs: Any) -> None:
        self.client, self.id, self.labels, self.kwargs = client, cid, labels, kwargs
        self.status = "created"

    def start(self) -> None:
        self.status = "running"

    def update(self, **kwargs: Any) -> None:
        self.kwargs.update(kwargs)

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.client.removed.append(self.id)
        self.client.containers.by_id.pop(self.id, None)


class _Containers:
    def __init__(self, client: _Client) -> None:
        self.client, self.by_id = client, {}  # type: dict[str, _Container]

    def create(self, **kwargs: Any) -> _Container:
        container = _Container(self.client, f"id{len(self.by_id)}", kwargs.pop("labels"), **kwargs)
        self.by_id[container.id] = container
        return container

    def run(self, image: str, command: list[str], **kwargs: Any) -> _Container:
        container = self.create(image=image, command=command, **kwargs)
        container.start()
        return container

    def get(self, cid: str) -> _Container:
        if cid not in self.by_id:
            raise docker.errors.NotFound(cid)
        return self.by_id[cid]


class _Image:
    def __init__(self, image_id: str) -> None:
        self.id = image_id


class _Images:
    def __init__(self) -> None:
        self.ids = {"runner-proxy:a": "sha256:aaa", "runner-proxy:b": "sha256:bbb"}

    def get(self, tag: str) -> _Image:
        return _Image(self.ids[tag])


class _Client:
    def __init__(self) -> None:
        self.containers = _Containers(self)
        self.images = _Images()
        self.removed: list[str] = []


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Client:
    monkeypatch.setenv("RUNNER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(spare.ENABLED_ENV, raising=False)
    monkeypatch.delenv(spare.IDLE_ENV, raising=False)
    return _Client()


def _ready() -> list[str]:
    folder = spare.root() / "ready"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_spare_is_a_hardened_self_removing_sidecar_waiting_for_its_claim(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    [name] = _ready()
    [container] = client.containers.by_id.values()
    kw = container.kwargs
    assert container.status == "running" and kw["name"] == name and kw["auto_remove"] is True
    assert kw["command"][:3] == ["python3", "-m", "proxy.claim"] and float(kw["command"][4]) == 300
    assert kw["network_mode"] == "none" and kw["read_only"] and kw["cap_drop"] == ["ALL"]
    assert container.labels["runner.role"] == "spare" and container.labels["runner.owner"] == "runner"
    assert kw["cpu_shares"] == 2  # waiting, it takes only CPU nothing else wants
    folder = spare.root() / "ready" / name
    assert kw["volumes"] == {str(folder.parent.parent / "staging" / name): {"bind": "/data", "mode": "rw"}}
    assert (folder / "confdir" / "mitmproxy-ca.pem").stat().st_mode & 0o777 == 0o600  # its own CA
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    assert len(client.containers.by_id) == 1  # one waits already: no second


def test_one_replay_alone_claims_a_spare(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    first = spare.claim(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    assert first is not None and first.folder.parent.name == "claimed" and (first.folder / "confdir").is_dir()
    assert first.container.kwargs["cpu_shares"] == 1024  # claimed: an ordinary sidecar
    assert spare.claim(client, "runner-proxy:a", USER) is None  # type: ignore[arg-type]
    assert _ready() == []


def test_a_spare_of_another_image_or_user_is_left_alone(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    assert spare.claim(client, "runner-proxy:b", USER) is None  # type: ignore[arg-type]
    other = User(USER.uid + 1, USER.gid)
    assert spare.claim(client, "runner-proxy:a", other) is None  # type: ignore[arg-type]
    client.images.ids["runner-proxy:a"] = "sha256:rebuilt"  # same tag, another image
    assert spare.claim(client, "runner-proxy:a", USER) is None  # type: ignore[arg-type]
    assert len(_ready()) == 1 and client.removed == []


def test_a_spare_about_to_expire_or_gone_is_not_claimed(
    client: _Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(spare.IDLE_ENV, "20")  # less than the claim margin
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    assert spare.claim(client, "runner-proxy:a", USER) is None  # type: ignore[arg-type]
    monkeypatch.setenv(spare.IDLE_ENV, "300")
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    assert len(_ready()) == 2
    for container in client.containers.by_id.values():
        container.status = "exited"  # it gave up (or crashed) meanwhile
    assert spare.claim(client, "runner-proxy:a", USER) is None  # type: ignore[arg-type]
    assert len(client.removed) == 1 and list((spare.root() / "claimed").glob("*")) == []


def test_spares_can_be_turned_off(client: _Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(spare.ENABLED_ENV, "0")
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    assert client.containers.by_id == {} and _ready() == []
    monkeypatch.setenv(spare.ENABLED_ENV, "1")
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    monkeypatch.setenv(spare.ENABLED_ENV, "off")
    assert spare.claim(client, "runner-proxy:a", USER) is None  # type: ignore[arg-type]


def test_expired_spares_and_folders_of_gone_containers_are_swept(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    [name] = _ready()
    info_path = spare.root() / "ready" / name / "spare.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "expires": time.time() - 1}))
    orphan = spare.root() / "claimed" / "runner-spare-0rphan"
    orphan.mkdir(parents=True)
    (orphan / "spare.json").write_text(json.dumps({"id": "gone"}))
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    spare.sweep(client)  # type: ignore[arg-type]
    assert _ready() == [] and not orphan.exists() and client.removed == [info["id"]]


def test_a_spare_that_fails_to_start_leaves_nothing(client: _Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: _Container) -> None:
        raise docker.errors.APIError("no")

    monkeypatch.setattr(_Container, "start", refuse)
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]  # logged, not raised
    assert _ready() == [] and client.containers.by_id == {}
    assert list((spare.root() / "staging").iterdir()) == []


def test_of_many_replays_claiming_at_once_one_gets_the_spare(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    barrier = threading.Barrier(8)

    def claim() -> spare.Claimed | None:
        barrier.wait()
        return spare.claim(client, "runner-proxy:a", USER)  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = [c for c in pool.map(lambda _: claim(), range(8)) if c is not None]
    assert len(claims) == 1 and claims[0].folder.is_dir()


def _pair(client: _Client, spec: str = "w1") -> spare.SpareWorkload:
    return spare.SpareWorkload(
        spec, "runner-env:x", {"user": "1:1", "read_only": True}, "/workspace", "/runner/ca"
    )


def test_a_spare_pair_is_claimed_whole_by_a_replay_whose_workload_matches(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER, _pair(client))  # type: ignore[arg-type]
    [name] = _ready()
    folder = spare.root() / "ready" / name
    assert (folder / "workspace").is_dir() and (folder / "ca" / "ca.pem").is_file()
    sidecar, workload = client.containers.by_id.values()
    assert workload.kwargs["network_mode"] == f"container:{sidecar.id}" and workload.kwargs["auto_remove"]
    assert workload.kwargs["read_only"] and workload.labels["runner.role"] == "spare-workload"
    assert workload.kwargs["volumes"][str(spare.root() / "staging" / name / "ca")]["mode"] == "ro"
    assert spare.claim(client, "runner-proxy:a", USER, workload="other") is None  # type: ignore[arg-type]
    claimed = spare.claim(client, "runner-proxy:a", USER, workload="w1")  # type: ignore[arg-type]
    assert claimed is not None and claimed.workload is not None
    assert claimed.workspace == claimed.folder / "workspace"
    assert not (claimed.folder / "ca" / "claimed").exists()  # an unclaimed workload ends at its idle time
    spare.adopt(claimed)
    assert (claimed.folder / "ca" / "claimed").exists()


def test_a_replay_claiming_the_sidecar_alone_removes_the_spare_workload(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER, _pair(client))  # type: ignore[arg-type]
    claimed = spare.claim(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    assert claimed is not None and claimed.workload is None
    for _ in range(100):  # removed in the background
        if len(client.removed) == 1:
            break
        time.sleep(0.01)
    assert client.removed == ["id1"] and "workload" not in json.loads(
        (claimed.folder / "spare.json").read_text()
    )


def test_a_released_pair_goes_with_its_folder_by_a_detached_process_or_else_here(
    client: _Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs: list[dict[str, Any]] = []
    for started in (True, False):  # the detached process starts; it cannot start
        monkeypatch.setattr(spare, "_detach", lambda job, ok=started: jobs.append(job) or ok)
        spare.start_spare(client, "runner-proxy:a", USER, _pair(client))  # type: ignore[arg-type]
        claimed = spare.claim(client, "runner-proxy:a", USER, workload="w1")  # type: ignore[arg-type]
        assert claimed is not None and claimed.workload is not None
        spare.release(client, claimed)  # type: ignore[arg-type]
        released = spare.root() / "released" / claimed.folder.name
        assert not claimed.folder.exists() and jobs[-1] == {"release": str(released)}
        pair = {claimed.container.id, claimed.workload.id}
        if started:  # left to that process: nothing removed here
            assert released.is_dir() and pair <= set(client.containers.by_id)
            spare.sweep(client)  # type: ignore[arg-type]
            assert released.is_dir()  # a minute for that process to do its work
            old = time.time() - 3600
            os.utime(released, (old, old))
            spare.sweep(client)  # type: ignore[arg-type]
        assert not released.exists() and not pair & set(client.containers.by_id)


def test_a_claimed_pair_whose_workload_is_gone_is_swept_with_its_sidecar(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER, _pair(client))  # type: ignore[arg-type]
    claimed = spare.claim(client, "runner-proxy:a", USER, workload="w1")  # type: ignore[arg-type]
    assert claimed is not None and claimed.workload is not None
    claimed.workload.remove()  # its replay died before starting: no `claimed` mark, the workload expired
    old = time.time() - 3600
    os.utime(claimed.folder, (old, old))
    spare.sweep(client)  # type: ignore[arg-type]
    assert not claimed.folder.exists() and client.containers.by_id == {}


def test_a_spare_being_made_is_waited_for(client: _Client) -> None:
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    [name] = _ready()
    staging = spare.root() / "staging" / name
    os.rename(spare.root() / "ready" / name, staging)  # as if its maker were still at work
    finish = threading.Timer(0.3, os.rename, (staging, spare.root() / "ready" / name))
    finish.start()
    claimed = spare.claim(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    finish.join()
    assert claimed is not None and claimed.folder.name == name


def test_a_spare_becoming_ready_between_the_two_looks_is_claimed(
    client: _Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The maker renames staging/ to ready/ just after `claim` looked at one of them: whichever it looks at
    first, the spare is seen (it once looked at ready/ first, then found staging/ empty and gave up)."""
    spare.start_spare(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    [name] = _ready()
    staging = spare.root() / "staging" / name
    os.rename(spare.root() / "ready" / name, staging)
    looks: list[str] = []
    names = spare._names

    def look(folder: Path) -> list[str]:
        found = names(folder)
        looks.append(folder.name)
        if len(looks) == 1:  # the maker finishes right after the first look
            os.rename(staging, spare.root() / "ready" / name)
        return found

    monkeypatch.setattr(spare, "_names", look)
    claimed = spare.claim(client, "runner-proxy:a", USER)  # type: ignore[arg-type]
    assert claimed is not None and claimed.folder.name == name
