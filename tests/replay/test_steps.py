"""The re-run agent's files: where each goes back in the container, and hostile paths refused; its clock:
pinned at the recorded start when the image has libfaketime (any architecture) and no HTTPS was recorded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from proxy.cassette import CassetteWriter, Exchange, RecordedRequest, RecordedResponse
from runner.errors import PackError
from runner.pack import manifest as mf
from runner.pack.read import UnpackedPack
from runner.replay.steps import _container_path, _faketime
from tests.packfactory import make_manifest


def test_home_paths_go_to_the_sandbox_users_home_and_absolute_ones_stay() -> None:
    assert _container_path("~/.config/io.datasette.llm/x.yaml") == PurePosixPath(
        "/tmp/.config/io.datasette.llm/x.yaml"
    )
    assert _container_path("/home/u/tools/agent.py") == PurePosixPath("/home/u/tools/agent.py")


@pytest.mark.parametrize("path", ["relative/agent.py", "~/../etc/passwd", "/tmp/../etc/shadow", ""])
def test_a_path_that_is_relative_or_climbs_is_a_bad_pack(path: str) -> None:
    with pytest.raises(PackError, match=r"agent\.command\.files"):
        _container_path(path)


class _Workload:
    def __init__(self, found: str) -> None:
        self.found = found

    def exists(self, path: PurePosixPath) -> bool:
        return str(path) == self.found


def _pack(
    tmp_path: Path, schemes: tuple[str, ...], created_at: str = "2026-11-25T18:01:02.5Z"
) -> UnpackedPack:
    cassette = tmp_path / "cassettes" / "http.jsonl"
    with CassetteWriter(cassette) as writer:
        for scheme in schemes:
            request = RecordedRequest("GET", scheme, "h", 443 if scheme == "https" else 80, "/", (), (), b"")
            writer.write(Exchange(request, RecordedResponse(200, "OK", (), b"{}")))
    m = make_manifest()
    m = replace(
        m,
        session=replace(m.session, created_at=created_at),
        cassettes=(mf.CassetteIndex("cassettes/http.jsonl", 1, len(schemes)),),
    )
    return UnpackedPack(tmp_path, m)


def test_the_clock_starts_at_the_recorded_start_with_the_images_libfaketime(tmp_path: Path) -> None:
    lib = "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"
    env = _faketime(_Workload(lib), _pack(tmp_path, ("http", "http")))  # type: ignore[arg-type]
    assert env == {"LD_PRELOAD": lib, "FAKETIME": "@2026-11-25 18:01:02", "FAKETIME_DONT_RESET": "1"}


@pytest.mark.parametrize(
    ("found", "schemes", "created_at"),
    [
        ("", ("http",), "2026-11-25T18:01:02Z"),  # no libfaketime in the image
        (
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            ("http", "https"),
            "2026-11-25T18:01:02Z",
        ),  # HTTPS recorded
        (
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            ("http",),
            "2026-11-25 18:01:02; rm -rf /",
        ),  # odd start
    ],
)
def test_the_clock_stays_real(tmp_path: Path, found: str, schemes: tuple[str, ...], created_at: str) -> None:
    assert _faketime(_Workload(found), _pack(tmp_path, schemes, created_at)) == {}  # type: ignore[arg-type]
