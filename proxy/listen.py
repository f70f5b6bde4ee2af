"""Serves a listening socket handed over by the launcher, so no connection made before mitmproxy ran is lost.

Input: the number of an inherited file descriptor holding a bound, listening TCP socket (option
`cassette_listen_fd`), and mitmproxy's running proxy server. Output: an asyncio server accepting on that
socket, each connection handled by mitmproxy's own regular-mode handler, exactly as on its own port.
Rules: the launcher binds the socket and starts its clients at once: the kernel completes their
handshakes and keeps them in the socket's backlog, with their first bytes, until this server accepts them
(the backlog is the queue; nothing is read or dropped before). Without a regular-mode server to borrow a
handler from (mitmproxy's test harness) the socket is left alone and `serve` returns None. The server
lives as long as the process, not the addon: when mitmproxy reloads the addon (its file changed), the
new one gets the same server back.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, cast

from mitmproxy import ctx
from mitmproxy.connection import Address

__all__ = ["serve"]

_SERVING: dict[int, tuple[asyncio.Server, Address]] = {}


async def serve(fd: int) -> tuple[asyncio.Server, Address] | None:
    """Accept on the inherited listening socket `fd` with mitmproxy's regular-mode handler (None when
    `fd` is negative: no socket was handed over)."""
    if fd < 0 or fd in _SERVING:
        return _SERVING.get(fd)
    get = cast("Callable[[str], Any]", ctx.master.addons.get)
    server = get("proxyserver")
    instances = list(server.servers) if server is not None else []
    regular = next((i for i in instances if i.mode.type_name == "regular"), None)
    if regular is None:
        return None
    sock = socket.socket(fileno=fd)
    accepted = await asyncio.start_server(regular.handle_stream, sock=sock)
    _SERVING[fd] = accepted, sock.getsockname()[:2]
    return _SERVING[fd]
