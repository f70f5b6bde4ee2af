"""The per-run CA and the client trust environment."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from mitmproxy import certs

from runner.cassettes.tls import client_trust_env, make_ca, write_trust_bundle


def test_ca_is_laid_out_for_mitmproxy_and_loads_there(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "confdir")
    assert (ca.confdir / "mitmproxy-ca.pem").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    store = certs.CertStore.from_store(ca.confdir, "mitmproxy", 2048)
    assert store.default_ca.fingerprint() == certs.Cert(cert).fingerprint()
    leaf = store.get_cert("api.example.com", [])
    assert leaf.cert.issuer == certs.Cert(cert).subject


def test_bundle_holds_system_cas_then_ours(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "confdir")
    system = tmp_path / "system.pem"
    system.write_bytes(
        ca.cert_pem.replace(b"CERTIFICATE", b"CERTIFICATE")
    )  # any PEM stands for the system set
    out = write_trust_bundle(ca, tmp_path / "bundle.pem", system_bundle=system)
    assert out.read_bytes().count(b"BEGIN CERTIFICATE") == 2
    assert out.read_bytes().endswith(ca.cert_pem)


def test_trust_env_points_every_client_at_the_bundle_and_proxy() -> None:
    env = client_trust_env(Path("/b.pem"), "http://127.0.0.1:8080")
    for name in (
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "PIP_CERT",
        "GIT_SSL_CAINFO",
    ):
        assert env[name] == "/b.pem"
    assert env["HTTPS_PROXY"] == env["https_proxy"] == env["HTTP_PROXY"] == "http://127.0.0.1:8080"
    assert "127.0.0.1" in env["NO_PROXY"] and env["NO_PROXY"] == env["no_proxy"]
    assert "HTTPS_PROXY" not in client_trust_env(Path("/b.pem"))
