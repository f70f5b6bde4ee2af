"""Serve the page on loopback: 127.0.0.1 only, the page's own files only, until Ctrl-C.

Input: the page's files (`site.page_files`) and a port (0: any free one). Output: an HTTP server whose URL
goes to `on_ready`. Rules: it binds 127.0.0.1 and answers only requests whose Host is that address or
`localhost` (a web page elsewhere cannot reach a revealed view through DNS rebinding); it serves GET and
HEAD of the named files with a strict Content-Security-Policy; it opens no browser and sends nothing
anywhere. The caller runs `serve_forever` and closes the socket on Ctrl-C.
POST goes only to the named `actions` (e.g. `/api/rollback`), and only from the page itself: the request
must carry the per-server `token` (embedded in the served page, never in an export) in `X-Runner-Token`,
be `application/json` (so another origin cannot send it without a CORS preflight, which is never granted),
and any Origin must be this server. The action gets the JSON object and returns (status, JSON reply).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HOST", "MAX_POST_BYTES", "TOKEN_HEADER", "Action", "make_server"]

HOST = "127.0.0.1"
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}  # fmt: skip
_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
TOKEN_HEADER = "X-Runner-Token"
MAX_POST_BYTES = 64 * 1024
Action = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def make_server(
    files: Mapping[str, bytes], port: int = 0, actions: Mapping[str, Action] | None = None, token: str = ""
) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:`port` that serves `files` (and POSTs to `actions` carrying `token`)."""
    pages = dict(files)
    posts = dict(actions or {})
    if posts and len(token) < 16:
        raise ValueError("actions need a random token of at least 16 characters")

    class Handler(BaseHTTPRequestHandler):
        def _host_ok(self) -> bool:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            if host not in (HOST, "localhost"):
                self.send_error(421, "unknown host")
                return False
            return True

        def _reply(self, status: int, reply: dict[str, Any]) -> None:
            content = json.dumps(reply, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(content)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(content)

        def do_POST(self) -> None:
            if not self._host_ok():
                return
            action = posts.get(self.path.split("?", 1)[0])
            if action is None:
                self._reply(404, {"ok": False, "error": f"no action at {self.path}"})
                return
            given = self.headers.get(TOKEN_HEADER) or ""
            origin = self.headers.get("Origin")
            same = f"http://{self.headers.get('Host')}"  # Host is already known to be loopback
            if not hmac.compare_digest(given.encode(), token.encode()) or (origin and origin != same):
                self._reply(403, {"ok": False, "error": "forbidden: only the served page itself may do this"})
                return
            kind = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip()
            try:
                length = int(self.headers.get("Content-Length") or "-1")
            except ValueError:
                length = -1
            if kind != "application/json" or not 0 <= length <= MAX_POST_BYTES:
                self._reply(
                    400, {"ok": False, "error": f"send a JSON object of at most {MAX_POST_BYTES} bytes"}
                )
                return
            try:
                body = json.loads(self.rfile.read(length))
            except (ValueError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                self._reply(400, {"ok": False, "error": "the request body is not a JSON object"})
                return
            self._reply(*action(body))

        def _send(self, body: bool) -> None:
            if not self._host_ok():
                return
            name = self.path.split("?", 1)[0].lstrip("/") or "index.html"
            content = pages.get(name)
            if content is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", _TYPES.get(name[name.rfind(".") :], "application/octet-stream"))
            self.send_header("Content-Length", str(len(content)))
            self.send_header("Content-Security-Policy", _CSP)
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if body:
                self.wfile.write(content)

        def do_GET(self) -> None:
            self._send(True)

        def do_HEAD(self) -> None:
            self._send(False)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the CLI prints the URL; a line per request would drown it

    server = ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True
    return server
