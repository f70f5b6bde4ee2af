from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, cast

import pytest

from runner.engine.host import BuildTrust
from runner.errors import PackError
from runner.pack import manifest as mf
from runner.pack.read import unpack
from runner.replay.environment import (
    check_pinned,
    needed_tags,
    planned_tag,
    requirements,
    resolve,
    snapshot_warnings,
)
from tests.packfactory import make_pack


def test_only_plain_pins_reach_pip() -> None:
    freeze = "\n".join(
        [
            "pytest==8.3.4",
            "Requests==2.32.3  # a comment",
            "--index-url https://evil.example.invalid/simple",
            "-e git+https://example.invalid/x.git#egg=x",
            "evil @ file:///etc/passwd",
            "pkg==1.0; rm -rf /",
            "zope.interface==7.1",
            "pytest==8.3.4",
            "",
        ]
    )
    keep, warnings = requirements(freeze)
    assert keep == ["pytest==8.3.4", "Requests==2.32.3", "zope.interface==7.1"]
    assert len(warnings) == 4
    assert all("not installed" in w for w in warnings)


def test_editable_and_url_installs_become_warnings(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "snapshot.json").write_text(
        json.dumps(
            {
                "packages": [
                    {"name": "pytest", "version": "8.3.4"},
                    {"name": "mytool", "version": "0.1", "editable": True, "direct_url": "file:///src"},
                    {"name": "fork", "version": "1.0", "direct_url": "git+https://example.invalid/f"},
                ]
            }
        )
    )
    warnings = snapshot_warnings(tmp_path)
    assert warnings == [
        "mytool 0.1 was installed editable; not in the replay image",
        "fork 1.0 was installed from a URL; not in the replay image",
    ]
    (tmp_path / "env" / "snapshot.json").write_text("{not json")
    assert "not readable" in snapshot_warnings(tmp_path)[0]


PIN = "debian@sha256:" + "a" * 64
OTHER_PIN = "python@sha256:" + "b" * 64


@pytest.mark.parametrize(
    "dockerfile",
    [
        f"FROM {PIN}\n",
        f"from {PIN} as build\nRUN make\nFROM build\nCOPY --from=build /x /x\nCOPY --from=0 /y /y\n",
        f"ARG B={PIN}\nFROM $B\n",
        f'ARG B="{PIN}" C\nFROM ${{B}} AS one\nFROM ${{C:-{OTHER_PIN}}}\n',
        "ARG BASE_DIGEST\nFROM ${BASE_DIGEST}\n",  # the runner passes the manifest's pinned base
        "ARG BASE_DIGEST=debian:latest\nFROM $BASE_DIGEST\n",  # ... which overrides the default
        f"FROM --platform=$BUILDPLATFORM {PIN} AS b\nFROM --platform=linux/amd64 b\n",
        f"# syntax=docker/dockerfile@sha256:{'c' * 64}\nFROM {PIN}\n",
        f"FROM \\\n  # a comment inside the continuation\n  {PIN}\n",
        "FROM scratch\nCOPY hello /\n",
        f"\ufeffFROM\t{PIN}\n",
    ],
)
def test_digest_pinned_dockerfiles_pass(dockerfile: str) -> None:
    check_pinned(dockerfile, "env/Dockerfile", {"BASE_DIGEST": OTHER_PIN})


@pytest.mark.parametrize(
    ("dockerfile", "says"),
    [
        (
            "ARG B=debian:latest\nFROM $B\n",
            r"FROM \$B \(= 'debian:latest'\) is not an earlier stage nor pinned",
        ),
        ("ARG B=debian:latest\nFROM ${B}\n", r"FROM \$\{B\} \(= 'debian:latest'\)"),
        ("FROM ${B:-debian:latest}\n", r"= 'debian:latest'"),
        ("FROM $UNDECLARED\n", r"FROM \$UNDECLARED \(= ''\)"),
        (f"FROM {PIN}\nARG B=debian:latest\nFROM $B\n", r"FROM \$B \(= ''\)"),  # stage ARGs don't reach FROM
        ("ARG PIP_INDEX_URL=" + PIN + "\nFROM $PIP_INDEX_URL\n", r"from the host"),  # the host overrides it
        ("FROM debian:latest\n", "FROM debian:latest is not"),
        ("FROM debian@sha256:abc\n", "FROM debian@sha256:abc is not"),
        (f"FROM {PIN}@sha256:{'0' * 64}x\n", "is not an earlier stage"),
        (f"FROM --platform=linux/amd64 debian\nFROM {PIN}\n", "FROM debian is not"),
        (f"FROM --network=host {PIN}\n", "a flag other than --platform="),
        (f"FROM {PIN} AS a extra\n", "is not `FROM"),
        ("FROM build\n", "FROM build is not an earlier stage"),
        (f"FROM {PIN}\nCOPY --from=debian:latest /x /x\n", "COPY --from debian:latest is not"),
        (f"FROM {PIN}\nCOPY --from=1 /x /x\n", "COPY --from 1 is not"),
        (f"FROM {PIN}\nRUN --mount=type=bind,from=alpine,target=/a true\n", "RUN --from alpine is not"),
        (f"FROM {PIN}\nARG X=alpine\nCOPY --from=$X /x /x\n", "uses a variable"),
        ("# syntax=docker/dockerfile:1\nFROM scratch\n", "syntax=docker/dockerfile:1 frontend is not pinned"),
        ("FR\\\nOM debian\n", "FROM debian is not"),
        ("# escape=`\nFROM `\n  debian\n", "FROM debian is not"),
    ],
)
def test_unpinned_images_are_refused_naming_them(dockerfile: str, says: str) -> None:
    with pytest.raises(PackError) as refused:
        check_pinned(dockerfile, "env/Dockerfile", {"BASE_DIGEST": OTHER_PIN})
    assert re.search(says, str(refused.value)), str(refused.value)
    assert str(refused.value).startswith("env/Dockerfile: ") and "\n" not in str(refused.value)


class _NoEngine:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError("the check must refuse before anything reaches the engine")


@pytest.mark.parametrize(
    ("path", "text", "says"),
    [
        ("env/Dockerfile", b"ARG B=debian:latest\nFROM $B\n", r"FROM \$B \(= 'debian:latest'\)"),
        # The build reads env/Dockerfile whatever the manifest names: another file cannot stand in for it.
        ("env/Safe.Dockerfile", f"FROM {PIN}\n".encode(), "must be the pack's env/Dockerfile"),
    ],
)
def test_resolve_refuses_a_pack_dockerfile_before_building(
    tmp_path: Path, path: str, text: bytes, says: str
) -> None:
    pack = make_pack(
        tmp_path,
        files={"env/Dockerfile": b"FROM debian:latest\n", path: text},
        environment=mf.Environment(
            kind="dockerfile", dockerfile=mf.DockerfileRef(path=path, base_digest=PIN)
        ),
    )
    unpacked = unpack(pack, tmp_path / "out")
    with pytest.raises(PackError, match=says):
        resolve(cast(Any, _NoEngine()), unpacked, base_image="unused", trust=BuildTrust(None))


BASE_ID = "sha256:" + "1" * 64


def _env_pack(tmp_path: Path, name: str, freeze: bytes, **fields: Any) -> Path:
    return make_pack(tmp_path, name=name, files={"env/pip-freeze.txt": freeze}, **fields)


def test_a_snapshot_image_is_keyed_by_its_recipe_not_by_the_pack(tmp_path: Path) -> None:
    one = _env_pack(tmp_path, "one.tar.zst", b"requests==2.32.3\npytest==8.3.3\n")
    # Another session, other steps, the same pins in another order with a duplicate: the same image.
    two = _env_pack(
        tmp_path, "two.tar.zst", b"pytest==8.3.3\n# note\nrequests==2.32.3\npytest==8.3.3\n",
        session=mf.Session(id="0b7c9a52-0000-4000-8000-000000000000", created_at="2026-01-01T00:00:00Z"),
    )  # fmt: skip
    other = _env_pack(tmp_path, "other.tar.zst", b"pytest==8.3.4\nrequests==2.32.3\n")

    def tag(pack: Path, base_id: str = BASE_ID) -> str | None:
        return planned_tag(unpack(pack, Path(tempfile.mkdtemp(dir=tmp_path)) / "u"), base_id)

    assert tag(one) == tag(two)
    assert str(tag(one)).startswith("runner-env:")
    assert tag(other) != tag(one)
    assert tag(one, "sha256:" + "2" * 64) != tag(one)  # a rebuilt base is another recipe
    assert needed_tags([one, two, other], BASE_ID) == {tag(one), tag(other)}


def test_needed_tags_cover_dockerfile_packs_and_skip_named_images(tmp_path: Path) -> None:
    built = make_pack(
        tmp_path, name="df.tar.zst", files={"env/Dockerfile": f"FROM {PIN}\nRUN true\n".encode()},
        environment=mf.Environment(kind="dockerfile", dockerfile=mf.DockerfileRef("env/Dockerfile", PIN)),
    )  # fmt: skip
    named = make_pack(
        tmp_path, name="img.tar.zst",
        environment=mf.Environment(kind="image", image=mf.ImageRef(PIN, "sha256:" + "e" * 64)),
    )  # fmt: skip
    tags = needed_tags([built, named], BASE_ID)
    assert len(tags) == 1 and next(iter(tags)).startswith("runner-env:")
    bad = tmp_path / "bad.tar.zst"
    bad.write_bytes(b"not a pack")
    with pytest.raises(PackError, match=r"bad\.tar\.zst"):
        needed_tags([bad], BASE_ID)
