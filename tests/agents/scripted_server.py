"""An OpenAI-compatible chat-completions server on loopback that answers from a script, for real agents.

Input: a list of answers, each an assistant message (`{"content": ...}` or `{"tool_calls": [...]}`).
Output: a running server (`scripted_server(answers)` yields it with its `base` URL, `/v1`); each POST to
`/v1/chat/completions` gets the next answer, as one JSON body or, when the request asks for
`"stream": true`, as server-sent events (one delta chunk, a finish chunk, `[DONE]`). The requests it got
are kept in `requests`. Rules: loopback only; running out of answers is a 500 naming the request count.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Scripted", "scripted_server"]


@dataclass
class Scripted:
    base: str
    answers: list[dict[str, Any]]
    requests: list[dict[str, Any]] = field(default_factory=list)


def _completion(answer: dict[str, Any], model: str, index: int) -> dict[str, Any]:
    finish = "tool_calls" if answer.get("tool_calls") else "stop"
    return {
        "id": f"chatcmpl-scripted-{index}", "object": "chat.completion", "created": 1_700_000_000 + index,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, **answer},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }  # fmt: skip


def _chunks(answer: dict[str, Any], model: str, index: int) -> Iterator[dict[str, Any]]:
    head = {"id": f"chatcmpl-scripted-{index}", "object": "chat.completion.chunk",
            "created": 1_700_000_000 + index, "model": model}  # fmt: skip
    delta: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
    if answer.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(answer["tool_calls"])]
    yield {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    finish = "tool_calls" if answer.get("tool_calls") else "stop"
    yield {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    yield {**head, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


@contextmanager
def scripted_server(answers: Sequence[dict[str, Any]]) -> Iterator[Scripted]:
    state = Scripted("", list(answers))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            with lock:
                index = len(state.requests)
                state.requests.append(body)
            if not self.path.endswith("/chat/completions") or index >= len(state.answers):
                self.send_response(500)
                self.end_headers()
                self.wfile.write(f"no scripted answer for request {index + 1} {self.path}".encode())
                return
            answer, model = state.answers[index], str(body.get("model", "scripted"))
            self.send_response(200)
            if body.get("stream"):
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in _chunks(answer, model, index):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                return
            data = json.dumps(_completion(answer, model, index)).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
