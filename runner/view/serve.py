"""Serve the page on loopback: 127.0.0.1 only, the page's own files only, until Ctrl-C.

Input: the page's files (`site.page_files`) and a port (0: any free one). Output: an HTTP server whose URL
goes to `on_ready`. Rules: it binds 127.0.0.1 and answers only requests whose Host is that address or
`localhost` (a web page elsewhere cannot reach a revealed view through DNS rebinding); it serves GET and
HEAD of the named files with a strict Content-Security-Policy and nothing else; it opens no browser and
sends nothing anywhere. The caller runs `serve_forever` and closes the socket on Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["HOST", "make_server"]

HOST = "127.0.0.1"
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}  # fmt: skip
_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"


def make_server(files: Mapping[str, bytes], port: int = 0) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:`port` that serves `files`; call `serve_forever` on it."""
    pages = dict(files)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: bool) -> None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            if host not in (HOST, "localhost"):
                self.send_error(421, "unknown host")
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
