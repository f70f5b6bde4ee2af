"""Share repro packs through an OCI registry: push one as an artifact, pull one back verified, cache it.

Inputs: a pack file (push); a reference `host/repo[:tag][@sha256:...]` (pull, `resolve_pack("oci://...")`).
Outputs: `Pushed` (the reference with its manifest digest), `Pulled`, a path to a verified pack.
Rules:
- The artifact is one OCI image manifest: artifactType `application/vnd.runner.pack.v1`, an empty config,
  the pack as the first layer (`...pack.v1.tar+zstd`), then, when the pack has them, its signature.json
  and its audit summary as small layers of their own. They travel in the manifest rather than as
  referrers: they are made with the pack, the manifest digest covers them, and every registry keeps
  them (the referrers API is missing from many, docker-registry 2.8 among them). They are copies for
  readers of the registry; the pack itself stays the authority.
- Annotations: session id, agent, root digest, and the verdict of the last replay when given.
- Only a pack that passes `runner.pack` verification is pushed. A pull checks the manifest against the
  digest asked for, the blob against its descriptor (size and sha256, while streaming), then the pack's
  own verification and its root digest against the annotation; the file appears (temp + rename) only
  when all of that held.
- The cache (`$XDG_CACHE_HOME/runner/oci`, else `~/.cache/runner/oci`) keeps packs by manifest digest:
  a reference with a digest needs no registry once cached. A tag needs the registry; when it cannot be
  reached and the tag was resolved before, the digest it had then is used, with a warning.
- The protocol (auth challenges, upload sessions, chunks) is oras-py's; requests are not retried, so a
  registry that is down fails at once with one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import oras.auth  # type: ignore[import-untyped]
import oras.container  # type: ignore[import-untyped]
import oras.provider  # type: ignore[import-untyped]
import requests

from runner.errors import PackError, UsageError
from runner.pack import layout, read, summary
from runner.pack.manifest import Manifest
from runner.store.ociregistry import (
    Credentials,
    Reference,
    RegistryError,
    RegistryUnavailable,
    find_credentials,
    parse_reference,
    scheme_for,
)

__all__ = [
    "ANNOTATIONS",
    "ARTIFACT_TYPE",
    "AUDIT_MEDIA_TYPE",
    "OCI_PREFIX",
    "PACK_MEDIA_TYPE",
    "SIGNATURE_MEDIA_TYPE",
    "Pulled",
    "Pushed",
    "Verdict",
    "default_cache_dir",
    "pull",
    "push",
    "resolve_pack",
]

OCI_PREFIX = "oci://"
ARTIFACT_TYPE = "application/vnd.runner.pack.v1"
PACK_MEDIA_TYPE = "application/vnd.runner.pack.v1.tar+zstd"
SIGNATURE_MEDIA_TYPE = "application/vnd.runner.pack.signature.v1+json"
AUDIT_MEDIA_TYPE = "application/vnd.runner.pack.audit.v1+json"
_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
_TITLE = "org.opencontainers.image.title"
_CREATED = "org.opencontainers.image.created"
ANNOTATIONS = {
    "session": "vnd.runner.pack.session-id",
    "agent": "vnd.runner.pack.agent",
    "root": "vnd.runner.pack.root-digest",
    "verdict": "vnd.runner.pack.verdict",
}
# The values of runner.replay.outcome.Verdict (store sits beside replay, so it does not import it).
Verdict = Literal["reproduced", "diverged", "error"]
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_MANIFEST = 4 << 20
_CHUNK = 16 << 20  # packs larger than this go up in chunks (PATCH), not in one PUT held in memory
_TIMEOUT = (10.0, 300.0)  # connect, read: a registry that stops answering must not hang a replay


@dataclass(frozen=True)
class Pushed:
    reference: Reference  # with the manifest digest
    root: str
    size: int


@dataclass(frozen=True)
class Pulled:
    reference: Reference  # with the manifest digest
    path: Path
    root: str


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "runner" / "oci"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, digest: str, size: int, **annotations: str) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    return d | ({"annotations": annotations} if annotations else {})


class _Auth(oras.auth.TokenAuth):  # type: ignore[misc]
    """oras' bearer-token flow, plus the Basic challenge htpasswd registries send.

    Credentials come from runner's own lookup only, so oras' docker-config reading is switched off."""

    def load_configs(self, container: object, configs: object = None) -> None:
        return None

    def authenticate_request(
        self, original: requests.Response, headers: dict[str, str] | None, refresh: bool = False
    ) -> tuple[dict[str, str], bool]:
        if original.headers.get("Www-Authenticate", "").lower().startswith("basic"):
            basic = getattr(self, "_basic_auth", None)
            if not basic:
                return dict(headers or {}), False
            return {**(headers or {}), "Authorization": f"Basic {basic}"}, True
        return super().authenticate_request(original, headers, refresh)  # type: ignore[no-any-return]


class _Client:
    """One repository on one registry, through oras-py; every failure becomes one RegistryError line."""

    def __init__(self, ref: Reference, insecure_http: bool, credentials: Credentials | None) -> None:
        self.ref, self.credentials = ref, credentials
        self.scheme = scheme_for(ref.host, insecure_http)
        registry = oras.provider.Registry(hostname=ref.host, insecure=self.scheme == "http")
        auth = _Auth()
        auth.session, auth.prefix, auth._tls_verify = registry.session, registry.prefix, True
        if credentials is not None:
            auth.set_basic_auth(credentials.username, credentials.password)
        registry.auth = auth
        # oras retries any failure five times with sleeps of up to 83 s: a down registry must fail now.
        registry.do_request = functools.partial(oras.provider.Registry.do_request.__wrapped__, registry)
        registry.session.request = functools.partial(registry.session.request, timeout=_TIMEOUT)
        self.registry = registry
        name, _, last = ref.repository.rpartition("/")
        self.container = oras.container.Container(last, registry=ref.host)
        self.container.namespace = name or None

    def _url(self, kind: Literal["manifests", "blobs"], target: str) -> str:
        return f"{self.scheme}://{self.ref.host}/v2/{self.ref.repository}/{kind}/{target}"

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        host = self.ref.host
        try:
            yield
        except requests.exceptions.SSLError:
            raise RegistryError(
                f"TLS with {host} failed while {doing}; a registry that speaks plain HTTP needs --insecure-http"
            ) from None
        except (requests.ConnectionError, requests.Timeout) as e:
            raise RegistryUnavailable(
                f"cannot reach the registry {host} while {doing} ({e.__class__.__name__}); is it running?"
            ) from None
        except ValueError as e:
            if "authentication" in str(e):
                raise self._auth_error(doing) from None
            raise RegistryError(f"{host} failed while {doing}: {e}") from None

    def _auth_error(self, doing: str) -> RegistryError:
        host = self.ref.host
        if self.credentials is None:
            return RegistryError(
                f"{host} wants credentials for {doing}: run `docker login {host}` "
                "or set RUNNER_REGISTRY_USERNAME and RUNNER_REGISTRY_PASSWORD"
            )
        return RegistryError(
            f"{host} refused the credentials of {self.credentials.username!r} "
            f"(from {self.credentials.source}) while {doing}"
        )

    def _check(self, response: requests.Response, doing: str, ok: tuple[int, ...] = (200, 201, 202)) -> None:
        if response.status_code in ok:
            return
        if response.status_code == 401:
            raise self._auth_error(doing)
        if response.status_code == 403:
            raise RegistryError(f"{self.ref.host} does not allow {doing} (403 Forbidden)")
        if response.status_code == 404:
            raise RegistryError(f"{self.ref.host} has no {self.ref.repository}@{self.ref.target} ({doing})")
        detail = ""
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            detail = ": " + str(response.json()["errors"][0]["message"])
        raise RegistryError(f"{self.ref.host} answered {response.status_code} while {doing}{detail}")

    def upload(self, path: Path, descriptor: dict[str, Any], chunk_size: int) -> None:
        doing = f"uploading {path.name}"
        with self._errors(doing):
            response = self.registry.upload_blob(
                str(path),
                self.container,
                descriptor,
                do_chunked=descriptor["size"] > chunk_size,
                chunk_size=chunk_size,
            )
        self._check(response, doing)

    def put_manifest(self, body: bytes, tag: str) -> None:
        doing = f"pushing the manifest of {self.ref}"
        with self._errors(doing):
            response = self.registry.do_request(
                self._url("manifests", tag), "PUT", data=body, headers={"Content-Type": _MANIFEST_MEDIA_TYPE}
            )
        self._check(response, doing)
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != _sha256(body):
            raise RegistryError(f"{self.ref.host} stored the manifest under {answered}, not {_sha256(body)}")

    def get_manifest(self) -> tuple[bytes, str]:
        doing = f"fetching the manifest of {self.ref}"
        with self._errors(doing):
            response = self.registry.do_request(
                self._url("manifests", self.ref.target), "GET", headers={"Accept": _MANIFEST_MEDIA_TYPE}
            )
        self._check(response, doing, ok=(200,))
        body = response.content
        if len(body) > _MAX_MANIFEST:
            raise RegistryError(f"the manifest of {self.ref} is larger than {_MAX_MANIFEST} bytes")
        digest = _sha256(body)
        if self.ref.digest and digest != self.ref.digest:
            raise PackError(f"the manifest {self.ref} fetched from the registry has digest {digest}: refused")
        return body, digest

    def download(self, descriptor: dict[str, Any], out: IO[bytes]) -> None:
        """Stream the blob into `out`, refusing it unless its size and sha256 match the descriptor."""
        digest, size = descriptor["digest"], descriptor["size"]
        doing = f"downloading {digest}"
        sha, got = hashlib.sha256(), 0
        with self._errors(doing), self.registry.get_blob(self.container, digest, stream=True) as response:
            self._check(response, doing, ok=(200,))
            for chunk in response.iter_content(1 << 20):
                got += len(chunk)
                if got > size:
                    break
                sha.update(chunk)
                out.write(chunk)
        if got != size or "sha256:" + sha.hexdigest() != digest:
            raise PackError(
                f"the pack blob of {self.ref} does not match its manifest ({digest}, {size} bytes): "
                "it was altered in the registry; refused"
            )


def _client(ref: Reference, insecure_http: bool, credentials: Credentials | None) -> _Client:
    return _Client(ref, insecure_http, credentials if credentials is not None else find_credentials(ref.host))


def _checked(pack: Path) -> tuple[Manifest, bytes | None]:
    report = read.verify(pack)
    if not report.ok:
        raise PackError(report.problem or f"{pack}: not a valid repro pack")
    manifest = summary.inspect(pack).manifest
    if manifest.integrity is None:  # verify refuses such a pack; this keeps the types honest
        raise PackError(f"{pack}: the manifest has no integrity section")
    return manifest, report.signature


def push(
    pack: Path,
    ref: str | Reference,
    *,
    verdict: Verdict | None = None,
    insecure_http: bool = False,
    credentials: Credentials | None = None,
    chunk_size: int = _CHUNK,
) -> Pushed:
    """Verify `pack` and push it to `ref` (a tag, `latest` when none); the result carries the digest."""
    pack = Path(pack)
    ref = parse_reference(ref) if isinstance(ref, str) else ref
    if ref.digest:
        raise UsageError(
            f"push to a tag, not a digest: the digest is computed ({ref.host}/{ref.repository}:TAG)"
        )
    ref = Reference(ref.host, ref.repository, ref.tag or "latest")
    manifest, signature = _checked(pack)
    assert manifest.integrity is not None
    client = _client(ref, insecure_http, credentials)
    size = pack.stat().st_size
    with tempfile.TemporaryDirectory(prefix="runner-oci-") as tmp:
        extras = [(_EMPTY_MEDIA_TYPE, b"{}", "")]
        if signature is not None:
            extras.append((SIGNATURE_MEDIA_TYPE, signature, layout.SIGNATURE))
        audit = manifest.privacy.extra.get("audit")
        if audit is not None:
            extras.append((AUDIT_MEDIA_TYPE, json.dumps(audit, sort_keys=True).encode(), "audit.json"))
        small = []
        for i, (media_type, data, title) in enumerate(extras):
            path = Path(tmp) / f"{i}.blob"
            path.write_bytes(data)
            extra = {_TITLE: title} if title else {}
            small.append((path, _descriptor(media_type, _sha256(data), len(data), **extra)))
        layer = _descriptor(PACK_MEDIA_TYPE, "sha256:" + _file_sha256(pack), size, **{_TITLE: pack.name})
        for path, descriptor in [*small, (pack, layer)]:
            client.upload(path, descriptor, chunk_size)
    annotations = {
        _CREATED: manifest.session.created_at,
        ANNOTATIONS["session"]: manifest.session.id,
        ANNOTATIONS["agent"]: manifest.agent.name,
        ANNOTATIONS["root"]: manifest.integrity.root,
    }
    if verdict is not None:
        annotations[ANNOTATIONS["verdict"]] = verdict
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": small[0][1],
            "layers": [layer, *(d for _, d in small[1:])],
            "annotations": annotations,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    client.put_manifest(body, ref.target)
    return Pushed(ref.with_digest(_sha256(body)), manifest.integrity.root, size)


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _pack_layer(ref: Reference, body: bytes) -> tuple[dict[str, Any], str | None]:
    """The pack's descriptor and the root digest annotation, from a manifest that must be a runner pack."""
    try:
        doc = json.loads(body)
        kind = doc.get("artifactType") or doc["config"]["mediaType"]
        layers = [d for d in doc["layers"] if d["mediaType"] == PACK_MEDIA_TYPE]
        annotations = doc.get("annotations") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RegistryError(f"{ref} is not an OCI image manifest") from None
    if kind != ARTIFACT_TYPE or len(layers) != 1:
        raise RegistryError(f"{ref} is not a runner pack (artifactType {kind!r}, expected {ARTIFACT_TYPE})")
    layer = layers[0]
    if not (
        isinstance(layer.get("digest"), str)
        and _DIGEST.fullmatch(layer["digest"])
        and type(layer.get("size")) is int
        and 0 < layer["size"] <= layout.Limits().max_total_bytes
    ):
        raise RegistryError(f"{ref}: the pack layer's digest or size is not usable")
    root = annotations.get(ANNOTATIONS["root"])
    return layer, root if isinstance(root, str) else None


def pull(
    ref: str | Reference,
    out: Path,
    *,
    insecure_http: bool = False,
    credentials: Credentials | None = None,
) -> Pulled:
    """Fetch the pack `ref` names, check it (see the module rules) and only then write `out`."""
    ref = parse_reference(ref) if isinstance(ref, str) else ref
    client = _client(ref, insecure_http, credentials)
    body, digest = client.get_manifest()
    ref = ref.with_digest(digest)
    layer, root = _pack_layer(ref, body)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            client.download(layer, f)
            f.flush()
            os.fsync(f.fileno())
        manifest, _ = _checked(tmp)
        assert manifest.integrity is not None
        if root is not None and manifest.integrity.root != root:
            raise PackError(f"{ref}: the pack's root digest is not the one its manifest announces; refused")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Pulled(ref, out, manifest.integrity.root)


def resolve_pack(
    arg: str,
    cache_dir: Path | None = None,
    *,
    insecure_http: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """A plain path is returned unchanged; `oci://REF` is pulled once into the cache and its path returned."""
    if not arg.startswith(OCI_PREFIX):
        return Path(arg)
    ref = parse_reference(arg.removeprefix(OCI_PREFIX))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = ref.digest
    if digest is None:
        digest = _resolve_tag(ref, cache, insecure_http, warn or _warn)
    cached = cache / "packs" / "sha256" / f"{digest.removeprefix('sha256:')}.tar.zst"
    if cached.is_file():
        return cached
    pull(ref.with_digest(digest), cached, insecure_http=insecure_http)
    return cached


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _tag_file(cache: Path, ref: Reference) -> Path:
    key = hashlib.sha256(f"{ref.host}/{ref.repository}:{ref.tag or 'latest'}".encode()).hexdigest()
    return cache / "tags" / f"{key}.json"


def _resolve_tag(ref: Reference, cache: Path, insecure_http: bool, warn: Callable[[str], None]) -> str:
    record = _tag_file(cache, ref)
    try:
        _, digest = _client(ref, insecure_http, None).get_manifest()
    except RegistryUnavailable as e:
        try:
            known = json.loads(record.read_text())
            digest, when = str(known["digest"]), str(known["resolved_at"])
        except (OSError, ValueError, KeyError, TypeError):
            digest = when = ""
        if not _DIGEST.fullmatch(digest):
            raise RegistryUnavailable(
                f"{e}; the tag {ref} was never resolved here, so no cached pack applies"
            ) from None
        warn(f"{e}; using {ref.with_digest(digest)}, what the tag named on {when}")
        return digest
    record.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=record.parent, prefix=f".{record.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump({"reference": str(ref), "digest": digest, "resolved_at": _now()}, f)
    os.replace(tmp, record)
    return digest


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
