"""TLS trust for the cassette proxy: a per-run CA, and the environment that makes clients trust it.

Inputs: a folder for the CA (mitmproxy's confdir), the proxy URL. Outputs: `CertificateAuthority` (the
files mitmproxy reads: `mitmproxy-ca.pem` holding key and certificate, `mitmproxy-ca-cert.pem` and
`.cer` holding the certificate), the environment variables that point common HTTP clients (OpenSSL,
requests, curl, Node, pip, git) at a bundle and route them through the proxy, and a bundle of the
system CAs plus ours for recording on the host, where clients must keep trusting real servers.
Rules: the CA key never leaves the confdir (mode 0600); a CA is valid for a short time only. Its key is
ECDSA P-256 (mitmproxy signs every host's certificate with it and serves that key): made in ~1 ms, where
RSA-2048 took ~0.1 s of `runner record`'s start, before its agent may run. `cryptography` is imported by
`make_ca` alone: a recording that starts on a CA made ahead (runner.recorder.spareca) never imports it.
"""

from __future__ import annotations

import datetime
import os
import ssl
from dataclasses import dataclass
from pathlib import Path, PurePath

from runner.errors import ProxyError

__all__ = ["CertificateAuthority", "client_trust_env", "default_bundle", "make_ca", "write_trust_bundle"]

LOOPBACK = "localhost,127.0.0.1,::1"


@dataclass(frozen=True)
class CertificateAuthority:
    confdir: Path  # give this to mitmproxy as `--set confdir=...`
    cert_path: Path  # the certificate alone: what clients trust

    @property
    def cert_pem(self) -> bytes:
        return self.cert_path.read_bytes()


def make_ca(
    confdir: Path, *, common_name: str = "runner cassette proxy CA", days: int = 30
) -> CertificateAuthority:
    """Generate a fresh CA in `confdir` laid out the way mitmproxy expects, and return its paths."""
    # Imported here: a replay that claims a spare sidecar, or a recording a spare CA (both made ahead),
    # never needs them.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "runner"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    try:
        confdir.mkdir(parents=True, exist_ok=True)
        _write(confdir / "mitmproxy-ca.pem", key_pem + cert_pem, 0o600)
        for name_ in ("mitmproxy-ca-cert.pem", "mitmproxy-ca-cert.cer"):
            _write(confdir / name_, cert_pem, 0o644)
    except OSError as e:
        raise ProxyError(
            f"cannot write the proxy CA to {confdir}: {e.strerror}; check the folder is writable"
        ) from e
    return CertificateAuthority(confdir=confdir, cert_path=confdir / "mitmproxy-ca-cert.pem")


def write_trust_bundle(ca: CertificateAuthority, out: Path, system_bundle: Path | None = None) -> Path:
    """Write the system CAs (or `system_bundle`) followed by our CA to `out`, for recording on the host."""
    source = system_bundle or default_bundle()
    system = source.read_bytes() if source is not None and source.is_file() else b""
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, system.rstrip(b"\n") + b"\n" + ca.cert_pem if system else ca.cert_pem, 0o644)
    return out


def client_trust_env(ca_bundle_path: PurePath, proxy_url: str | None = None) -> dict[str, str]:
    """Environment making common clients trust `ca_bundle_path` and, when given, use the proxy."""
    bundle = str(ca_bundle_path)
    env = {
        "SSL_CERT_FILE": bundle,
        "REQUESTS_CA_BUNDLE": bundle,
        "CURL_CA_BUNDLE": bundle,
        "NODE_EXTRA_CA_CERTS": bundle,
        "PIP_CERT": bundle,
        "GIT_SSL_CAINFO": bundle,
        "AWS_CA_BUNDLE": bundle,
        "DENO_CERT": bundle,
    }
    if proxy_url:
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
            env[name] = env[name.lower()] = proxy_url
        env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
    return env


def default_bundle() -> Path | None:
    """The CA bundle this machine trusts: $SSL_CERT_FILE when set, else OpenSSL's default file."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
