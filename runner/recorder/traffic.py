"""What the recorded HTTP traffic says about the agent's model calls, and the warnings a user must see.

Inputs: the cassette's request paths, the agent's environment (before the proxy's variables), its captured
configuration files (`--capture-file`), whether the proxy ran and recorded loopback traffic, and the number
of calls made through instrumented model clients. Outputs: `is_model_path(path)`, `model_server_urls(environ,
files)` and `warnings(...)`: sentences that name what was not recorded and the flag that records it.
Rules: a model call is a request to a known model API path (OpenAI chat/completions/responses/embeddings,
Anthropic messages, Ollama /api/chat|generate, Gemini :generateContent). A variable names a model server
when its value is an http(s) URL and its name ends like a base URL or host setting (OPENAI_BASE_URL,
OLLAMA_HOST, MSWEA_MODEL_API_BASE, ...); a line of a captured file names one when such a key is set to such
a URL there (`api_base: http://127.0.0.1:8000/v1`). A warning is given when the cassette holds no model
call although the session made some (instrumented client calls) or the environment or a captured file
named a model server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from urllib.parse import urlsplit

__all__ = ["MODEL_PATH", "is_model_path", "model_server_urls", "warnings"]

MODEL_PATH = re.compile(
    r"(?:/v[0-9]+[a-z0-9]*)?/(?:chat/completions|completions|responses|messages|embeddings)/?$"
    r"|/api/(?:chat|generate|embed|embeddings)/?$"
    r"|:(?:stream)?[gG]enerateContent$"
)
_URL_NAME = re.compile(r"(?:^|_)(?:BASE_URL|API_BASE|API_URL|BASE|ENDPOINT|HOST|URL|SERVER)$")
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
# `key: URL`, `key = "URL"` or `"key": "URL"` on one line of a configuration file (YAML, TOML, JSON, .env).
_CONFIG_LINE = re.compile(r"""(?i)["']?([A-Za-z0-9_.-]+)["']?\s*[:=]\s*["']?(https?://[^\s"',]+)""")


def is_model_path(path: str) -> bool:
    return MODEL_PATH.search(path.split("?", 1)[0]) is not None


def _settings(files: Sequence[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(`file: key`, url) of each URL setting in the captured files (pack members `agent/files/NNNN-NAME`)."""
    found = []
    for member, data in files:
        name = PurePosixPath(member).name.split("-", 1)[-1]
        for line in data.decode("utf-8", "replace").splitlines():
            if hit := _CONFIG_LINE.search(line):
                found.append((f"{name}: {hit[1]}", hit[2]))
    return found


def model_server_urls(
    environ: Mapping[str, str], files: Sequence[tuple[str, bytes]] = ()
) -> list[tuple[str, str]]:
    """(name, url) of the variables and captured settings that name a model server, loopback ones first."""
    found = []
    for name, value in [*sorted(environ.items()), *_settings(files)]:
        key = name.rsplit(": ", 1)[-1]
        if not _URL_NAME.search(key.upper()) or key.upper().startswith(("RUNNER_", "OTEL_")):
            continue
        try:
            parts = urlsplit(value.strip())
            port = parts.port  # a port out of range is a ValueError
        except ValueError:
            continue
        if parts.scheme in ("http", "https") and parts.hostname:
            found.append((name, f"{parts.scheme}://{parts.hostname}{f':{port}' if port else ''}"))
    return sorted(found, key=lambda item: not _is_loopback(item[1]))


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _LOOPBACK


def warnings(
    *, http: bool, loopback: bool, exchanges: int, model_exchanges: int, client_calls: int,
    environ: Mapping[str, str], files: Sequence[tuple[str, bytes]] = (),
) -> tuple[str, ...]:  # fmt: skip
    """The warnings of the recording summary (see the module docstring); empty when all looks recorded."""
    if model_exchanges:
        return ()
    servers = model_server_urls(environ, files)
    if not servers and not client_calls:
        return ()
    if client_calls:
        made = f"the session made {client_calls} model call(s) but the cassette holds none"
    else:
        name, url = servers[0]
        made = f"{name} names a model server ({url}) but the cassette holds no model call"
        if exchanges == 0:
            made = f"no HTTP exchange was recorded although {made.split(' but ')[0]}"
    if not http:
        return (f"{made}: --no-http turned the recording proxy off; record without it to replay offline",)
    if servers and _is_loopback(servers[0][1]) and not loopback:
        return (
            f"{made}: requests to this machine were not recorded; record again without "
            "--no-record-loopback (SDK: record(..., record_loopback=True)) so replay can answer them offline",
        )
    return (
        f"{made}: if the agent called it, its HTTP client ignored the HTTPS_PROXY/HTTP_PROXY variables "
        "(set its proxy to the one in HTTPS_PROXY); replay will not be able to answer those calls",
    )
