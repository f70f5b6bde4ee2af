"""A real HTTPS server on 127.0.0.1 for proxy tests: a test CA, a certificate for 127.0.0.1, and a small
OpenAI-compatible `/v1/chat/completions` (JSON, or server-sent events when `"stream": true`)."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from runner.cassettes.tls import CertificateAuthority, make_ca

STREAM_WORDS = ["Hello", " from", " the", " recorded", " stream", "!"]
BINARY = bytes(range(256)) * 4


@dataclass(frozen=True)
class TestServer:
    port: int
    ca: CertificateAuthority

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def issue_server_cert(ca: CertificateAuthority, out: Path) -> tuple[Path, Path]:
    pem = (ca.confdir / "mitmproxy-ca.pem").read_bytes()
    ca_key = serialization.load_pem_private_key(pem, None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = out / "server-cert.pem", out / "server-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/hello"):
            self._send(
                200, f"hello {self.path}\n".encode(), "text/plain; charset=utf-8", {"set-cookie": "s=abc123"}
            )
        elif self.path == "/binary":
            self._send(200, BINARY, "application/octet-stream")
        elif self.path == "/gzip":
            self._send(
                200, gzip.compress(b'{"compressed": true}'), "application/json", {"content-encoding": "gzip"}
            )
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        while "chunked" in self.headers.get("transfer-encoding", ""):  # a body sent in chunks
            size = int(self.rfile.readline().split(b";")[0], 16)
            body += self.rfile.read(size)
            self.rfile.readline()
            if not size:
                break
        if self.path != "/v1/chat/completions":
            self._send(404, b"not found", "text/plain")
            return
        req = json.loads(body)
        ident = "chatcmpl-" + hashlib.sha256(body + str(time.time()).encode()).hexdigest()[:12]
        created = int(time.time())
        if not req.get("stream"):
            answer = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": req["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": f"echo: {req['messages'][-1]['content']}",
                        },
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }
            self._send(200, json.dumps(answer).encode(), "application/json")
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        if isinstance(req.get("split"), str):  # echo it in one event cut in two chunks, mid-value
            event = f"data: {json.dumps({'echo': req['split']})}\n\n".encode()
            cut = event.index(req["split"].encode()) + len(req["split"]) // 2
            self._chunk(event[:cut])
            time.sleep(0.03)
            self._chunk(event[cut:])
        for i, word in enumerate(STREAM_WORDS):
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": req["model"],
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": word},
                        "finish_reason": "stop" if i == len(STREAM_WORDS) - 1 else None,
                    }
                ],
            }
            self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            time.sleep(0.03)
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


@contextmanager
def https_server(workdir: Path) -> Iterator[TestServer]:
    """Serve on a free port of 127.0.0.1 until the block ends; the server's CA is in `.ca`."""
    ca = make_ca(workdir / "server-ca", common_name="test upstream CA")
    cert, key = issue_server_cert(ca, workdir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TestServer(server.server_address[1], ca)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
