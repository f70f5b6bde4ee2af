"""A small OpenAI-compatible model server on 127.0.0.1 (plain HTTP) that can be told how to answer.

`/v1/chat/completions`, JSON or server-sent events (`"stream": true`); a request carrying `tools` is
answered with `tool_calls`. Set `text`, `tool_arguments`, `model`, `fingerprint` to change the answer,
and `fail_first` to a list of statuses (429, 503) answered, with `Retry-After: retry_after`, before a good
one. `/v1/messages` answers Anthropic-style (not streamed).
Every request is kept in `requests` (path, headers, JSON body)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ModelServer:
    def __init__(self) -> None:
        self.text = "The greeting is fixed in greet.py."
        self.tool_arguments: dict[str, Any] = {"path": "greet.py", "mode": "write"}
        self.model: str | None = None  # None: echo the requested model
        self.fingerprint = "fp_one"
        self.fail_first: list[int] = []
        self.retry_after = "0"
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.port = 0
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _handler(state: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
            with state.lock:
                state.requests.append((self.path, dict(self.headers.items()), req))
                failing = state.fail_first.pop(0) if state.fail_first else None
            if failing:
                self._send(
                    failing, b'{"error": {"message": "slow down"}}', {"retry-after": state.retry_after}
                )
                return
            if self.path.endswith("/messages"):  # Anthropic-style, plain answers only
                answer = {"type": "message", "role": "assistant", "model": state.model or req["model"],
                          "content": [{"type": "text", "text": state.text}], "stop_reason": "end_turn",
                          "usage": {"input_tokens": 9, "output_tokens": len(state.text.split(" "))}}  # fmt: skip
                self._send(200, json.dumps(answer).encode())
                return
            if not self.path.endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "not here"}}')
                return
            model = state.model or req["model"]
            words = state.text.split(" ")
            usage = {"prompt_tokens": 9, "completion_tokens": len(words), "total_tokens": 9 + len(words)}
            calls = (
                [{"id": "call_1", "type": "function",
                  "function": {"name": "edit_file", "arguments": json.dumps(state.tool_arguments)}}]
                if req.get("tools") else None
            )  # fmt: skip
            finish = "tool_calls" if calls else "stop"
            if not req.get("stream"):
                message: dict[str, Any] = {"role": "assistant", "content": None if calls else state.text}
                if calls:
                    message["tool_calls"] = calls
                answer = {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                    "system_fingerprint": state.fingerprint, "usage": usage,
                    "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                }  # fmt: skip
                self._send(200, json.dumps(answer).encode())
                return
            events: list[dict[str, Any]] = []
            base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "system_fingerprint": state.fingerprint}  # fmt: skip
            if calls:
                args = calls[0]["function"]["arguments"]
                half = len(args) // 2
                for i, part in enumerate((args[:half], args[half:])):
                    fn = {"name": "edit_file", "arguments": part} if i == 0 else {"arguments": part}
                    delta = {
                        "tool_calls": [
                            {
                                "index": 0,
                                "function": fn,
                                **({"id": "call_1", "type": "function"} if i == 0 else {}),
                            }
                        ]
                    }
                    events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            else:
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    events.append(
                        {
                            **base,
                            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                        }
                    )
            events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            data = body.encode()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def model_server() -> Iterator[ModelServer]:
    state = ModelServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
