from __future__ import annotations

from pathlib import Path

import pytest

from runner.engine.host import (
    AptEntry,
    BuildTrust,
    OsRelease,
    apt_entries,
    debian_mirror,
    os_release,
    parse_deb822,
    parse_one_line,
)
from runner.errors import ImageError

ORIGIN = Path("/etc/apt/sources.list")
BOOKWORM = OsRelease(id="debian", id_like=(), codename="bookworm")

DEB822 = """\
Types: deb deb-src
# a comment line inside a stanza
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 abc
 -----END PGP PUBLIC KEY BLOCK-----

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
"""


def test_one_line_format_reads_options_and_skips_comments() -> None:
    text = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main non-free # tail\n"
        "deb-src http://mirror.example/debian bookworm main\n"
        "deb broken-line\n"
        "\n"
    )
    entries = parse_one_line(text, ORIGIN)
    assert entries == [
        AptEntry("deb", "http://mirror.example/debian", "bookworm", ("main", "non-free"), "/k.gpg", ORIGIN),
        AptEntry("deb-src", "http://mirror.example/debian", "bookworm", ("main",), None, ORIGIN),
    ]


def test_deb822_flattens_types_uris_suites_and_skips_disabled_stanzas() -> None:
    entries = parse_deb822(DEB822, ORIGIN)
    assert [(e.type, e.uri, e.suite) for e in entries] == [
        ("deb", "http://mirror.example/debian", "bookworm"),
        ("deb", "http://mirror.example/debian", "bookworm-updates"),
        ("deb-src", "http://mirror.example/debian", "bookworm"),
        ("deb-src", "http://mirror.example/debian", "bookworm-updates"),
        ("deb", "http://mirror.example/debian-security", "bookworm-security"),
    ]
    assert entries[0].components == ("main", "contrib")
    assert entries[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert entries[-1].signed_by is not None and "BEGIN PGP" in entries[-1].signed_by


def test_apt_entries_reads_both_formats_and_ignores_other_file_names(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://one.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text(
        "deb http://off.example/x bookworm main\n"
    )
    uris = {e.uri for e in apt_entries(tmp_path)}
    assert uris == {
        "http://one.example/debian",
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    }


def test_mirror_is_the_main_suite_not_updates_or_security() -> None:
    entries = list(reversed(parse_deb822(DEB822, ORIGIN)))
    mirror = debian_mirror(BOOKWORM, entries)
    assert (mirror.type, mirror.uri, mirror.suite) == ("deb", "http://mirror.example/debian", "bookworm")


def test_mirror_without_codename_takes_the_suite_without_a_dash() -> None:
    entries = parse_one_line(
        "deb http://m.example/debian sid-updates main\ndeb http://m.example/debian sid main\n", ORIGIN
    )
    assert debian_mirror(OsRelease("debian", (), ""), entries).suite == "sid"


def test_no_mirror_for_the_suite_says_what_to_do() -> None:
    entries = parse_one_line("deb http://m.example/debian bullseye main\n", ORIGIN)
    with pytest.raises(ImageError, match=r"suite 'bookworm'.*--base-from"):
        debian_mirror(BOOKWORM, entries)


def test_os_release_parses_quoted_values(tmp_path: Path) -> None:
    path = tmp_path / "os-release"
    path.write_text('NAME="Ubuntu"\nID=ubuntu\nID_LIKE="debian"\nVERSION_CODENAME=noble\n')
    release = os_release(path)
    assert release == OsRelease("ubuntu", ("debian",), "noble")
    assert release.is_debian_family
    assert not os_release(tmp_path / "missing").is_debian_family


def test_build_trust_defaults_to_ssl_cert_file_and_drops_local_indexes(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("pem")
    env = {
        "SSL_CERT_FILE": str(bundle),
        "PIP_INDEX_URL": "https://pypi.example/simple",
        "PIP_EXTRA_INDEX_URL": "file:///opt/local/simple https://extra.example/simple",
    }
    trust = BuildTrust.from_host(env=env)
    assert trust == BuildTrust(bundle, "https://pypi.example/simple", "https://extra.example/simple")
    assert (
        BuildTrust.from_host(env={"SSL_CERT_FILE": str(tmp_path / "nope"), "PIP_CERT": str(bundle)}).ca_bundle
        == bundle
    )
    assert BuildTrust.from_host(env={}) == BuildTrust(None)


def test_build_trust_refuses_a_missing_explicit_bundle(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a readable file"):
        BuildTrust.from_host(tmp_path / "missing.pem", env={})
