"""What the host machine offers to the engine and image builds: OS identity, apt mirror, TLS trust, pip index.

Inputs: /etc/os-release, /etc/apt/sources.list and /etc/apt/sources.list.d/*.list|*.sources (one-line and
deb822 formats), and the environment (SSL_CERT_FILE, PIP_CERT, PIP_INDEX_URL, PIP_EXTRA_INDEX_URL,
RUNNER_HOME). Outputs: frozen values (`OsRelease`, `AptEntry`, `BuildTrust`), the runner's own folder
(`runner_home`: build logs, spare sidecars, cached probes). Rules: everything is read from the machine at
run time, nothing about a particular mirror or host name is written down here; parsing never raises on odd
lines, it skips them, and only `debian_mirror` raises when no usable mirror is configured.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.errors import ImageError

__all__ = [
    "AptEntry",
    "BuildTrust",
    "OsRelease",
    "apt_entries",
    "debian_mirror",
    "os_release",
    "parse_deb822",
    "parse_one_line",
    "runner_home",
]

APT_DIR = Path("/etc/apt")


def runner_home() -> Path:
    """The runner's own folder on this machine: $RUNNER_HOME, default ~/.cache/runner."""
    return Path(os.environ.get("RUNNER_HOME") or Path.home() / ".cache" / "runner")


@dataclass(frozen=True)
class OsRelease:
    id: str
    id_like: tuple[str, ...]
    codename: str

    @property
    def is_debian_family(self) -> bool:
        return self.id == "debian" or "debian" in self.id_like


def os_release(path: Path = Path("/etc/os-release")) -> OsRelease:
    """The host's OS identity; empty fields when the file is missing (not Linux, or a minimal system)."""
    fields: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            parts = shlex.split(value, posix=True) if value.strip() else [""]
            fields[key.strip()] = parts[0] if parts else ""
    return OsRelease(
        id=fields.get("ID", ""),
        id_like=tuple(fields.get("ID_LIKE", "").split()),
        codename=fields.get("VERSION_CODENAME", ""),
    )


@dataclass(frozen=True)
class AptEntry:
    """One (URI, suite) pair of an apt source, flattened from either file format."""

    type: str
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None
    origin: Path


def parse_one_line(text: str, origin: Path) -> list[AptEntry]:
    """`deb [opt=val ...] URI SUITE [COMPONENT...]` lines; comments and deb-src lines give nothing."""
    entries: list[AptEntry] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options: dict[str, str] = {}
        if "[" in line and "]" in line:
            head, _, rest = line.partition("[")
            inside, _, tail = rest.partition("]")
            for opt in inside.split():
                key, _, value = opt.partition("=")
                options[key] = value
            line = f"{head} {tail}"
        words = line.split()
        if len(words) < 3:
            continue
        kind, uri, suite, *components = words
        entries.append(AptEntry(kind, uri, suite, tuple(components), options.get("signed-by"), origin))
    return entries


def parse_deb822(text: str, origin: Path) -> list[AptEntry]:
    """deb822 `.sources` stanzas (Types/URIs/Suites/Components/Signed-By/Enabled), continuation lines kept."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last_key: str | None = None
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, last_key = {}, None
            continue
        if raw[0] in " \t" and last_key is not None:
            current[last_key] += "\n" + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if sep:
            last_key = key.strip().lower()
            current[last_key] = value.strip()
    entries: list[AptEntry] = []
    for stanza in stanzas:
        if stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        signed_by = stanza.get("signed-by")
        components = tuple(stanza.get("components", "").split())
        for kind in stanza.get("types", "").split():
            for uri in stanza.get("uris", "").split():
                for suite in stanza.get("suites", "").split():
                    entries.append(AptEntry(kind, uri, suite, components, signed_by, origin))
    return entries


def apt_entries(apt_dir: Path = APT_DIR) -> list[AptEntry]:
    """Every apt source entry the machine has, in apt's reading order; disabled files are skipped by name."""
    files: list[Path] = []
    if (apt_dir / "sources.list").is_file():
        files.append(apt_dir / "sources.list")
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files.extend(sorted(p for p in parts.iterdir() if p.suffix in {".list", ".sources"} and p.is_file()))
    entries: list[AptEntry] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        parse = parse_deb822 if path.suffix == ".sources" else parse_one_line
        entries.extend(parse(text, path))
    return entries


def debian_mirror(release: OsRelease, entries: Iterable[AptEntry]) -> AptEntry:
    """The binary-package mirror for the host's own suite (not -updates or -security), with `main`."""
    candidates = [e for e in entries if e.type == "deb" and "main" in e.components]
    for entry in candidates:
        if release.codename and entry.suite == release.codename:
            return entry
    if not release.codename:
        # testing/sid machines may carry no codename; their main suite is the one without a dash.
        for entry in candidates:
            if "-" not in entry.suite and "/" not in entry.suite:
                return entry
    raise ImageError(
        f"no apt mirror for suite '{release.codename or '?'}' with component 'main' in "
        f"{APT_DIR}/sources.list or sources.list.d/; add one, or build the base from a registry image "
        "with `runner images build --base-from IMAGE@sha256:...`"
    )


@dataclass(frozen=True)
class BuildTrust:
    """How builds that download (pip) trust this machine's TLS and find its package index."""

    ca_bundle: Path | None
    pip_index_url: str | None = None
    pip_extra_index_url: str | None = None

    @classmethod
    def from_host(cls, ca_bundle: Path | None = None, env: Mapping[str, str] | None = None) -> BuildTrust:
        """Defaults: the bundle named by SSL_CERT_FILE, else PIP_CERT; index URLs from PIP_* (http(s) only).

        Index URLs pointing at local files (file://, paths) cannot be reached from inside a build: dropped.
        """
        env = os.environ if env is None else env
        if ca_bundle is None:
            for name in ("SSL_CERT_FILE", "PIP_CERT"):
                value = env.get(name)
                if value and Path(value).is_file():
                    ca_bundle = Path(value)
                    break
        elif not ca_bundle.is_file():
            raise ImageError(f"CA bundle {ca_bundle} is not a readable file; pass an existing PEM bundle")

        def remote(name: str) -> str | None:
            urls = [u for u in env.get(name, "").split() if u.startswith(("http://", "https://"))]
            return " ".join(urls) or None

        return cls(ca_bundle, remote("PIP_INDEX_URL"), remote("PIP_EXTRA_INDEX_URL"))
