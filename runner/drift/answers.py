"""A model's answer reduced to what drift compares: text, tool calls, finish reason, usage, revision.

Inputs: a response body as JSON data (OpenAI chat completions, OpenAI responses, Anthropic messages), or
the events of a streamed one (SDK chunk dicts, or server-sent events as bytes).
Output: a frozen `Answer`. Streams are joined: text deltas concatenated, tool-call fragments joined by
their index and their arguments parsed once whole.
Rules: tool arguments are parsed as JSON (text that is not JSON stays a string); anything of an unknown
shape gives an empty answer rather than an error, so one odd call never stops a drift run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Answer", "ModelApi", "ToolCall", "answer_of", "sse_events", "stream_answer"]

# The model APIs drift can re-send (the recorder's "generic" calls have no wire format to re-send).
ModelApi = Literal["openai.chat", "openai.responses", "anthropic.messages"]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Any  # parsed JSON when the arguments were JSON text


@dataclass(frozen=True)
class Answer:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None  # the revision the provider reported
    fingerprint: str | None = None  # OpenAI system_fingerprint


def _parsed(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def answer_of(api: ModelApi, body: Any) -> Answer:
    """The answer of a non-streamed response body."""
    if not isinstance(body, dict):
        return Answer()
    usage = _dict(body.get("usage"))
    if api == "openai.chat":
        choice = next(iter(_dicts(body.get("choices"))), {})
        message = _dict(choice.get("message"))
        calls = tuple(
            ToolCall(str(f.get("name", "")), _parsed(f.get("arguments")))
            for c in _dicts(message.get("tool_calls"))
            for f in [_dict(c.get("function"))]
        )
        return Answer(
            _str(message.get("content")) or "",
            calls,
            _str(choice.get("finish_reason")),
            _int(usage.get("prompt_tokens")),
            _int(usage.get("completion_tokens")),
            _str(body.get("model")),
            _str(body.get("system_fingerprint")),
        )
    if api == "openai.responses":
        texts: list[str] = []
        calls_r: list[ToolCall] = []
        for item in _dicts(body.get("output")):
            if item.get("type") == "message":
                texts += [str(p.get("text", "")) for p in _dicts(item.get("content"))]
            elif item.get("type") == "function_call":
                calls_r.append(ToolCall(str(item.get("name", "")), _parsed(item.get("arguments"))))
        return Answer(
            "".join(texts),
            tuple(calls_r),
            _str(body.get("status")),
            _int(usage.get("input_tokens")),
            _int(usage.get("output_tokens")),
            _str(body.get("model")),
        )
    blocks = _dicts(body.get("content"))
    return Answer(
        "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text"),
        tuple(
            ToolCall(str(b.get("name", "")), b.get("input")) for b in blocks if b.get("type") == "tool_use"
        ),
        _str(body.get("stop_reason")),
        _int(usage.get("input_tokens")),
        _int(usage.get("output_tokens")),
        _str(body.get("model")),
    )


def sse_events(body: bytes) -> list[Any]:
    """The JSON `data:` payloads of a server-sent event stream, in order (`[DONE]` and non-JSON skipped)."""
    events: list[Any] = []
    for event in body.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:"))
        if data and data.strip() != "[DONE]":
            try:
                events.append(json.loads(data))
            except ValueError:
                continue
    return events


def stream_answer(api: ModelApi, events: list[Any]) -> Answer:
    """The answer of a streamed response: its events joined."""
    chunks = [e for e in events if isinstance(e, dict)]
    if api == "openai.responses":
        done = next((e["response"] for e in chunks if isinstance(e.get("response"), dict)
                     and e.get("type") == "response.completed"), None)  # fmt: skip
        if done is not None:
            return answer_of(api, done)
        deltas = [str(e.get("delta", "")) for e in chunks if e.get("type") == "response.output_text.delta"]
        return Answer("".join(deltas))
    if api == "anthropic.messages":
        return _anthropic_stream(chunks)
    text: list[str] = []
    calls: dict[int, list[str]] = {}  # index -> [name, arguments so far]
    finish = model = fingerprint = None
    usage: dict[str, Any] = {}
    for c in chunks:
        model = _str(c.get("model")) or model
        fingerprint = _str(c.get("system_fingerprint")) or fingerprint
        if isinstance(c.get("usage"), dict):
            usage = c["usage"]
        for choice in _dicts(c.get("choices")):
            finish = _str(choice.get("finish_reason")) or finish
            delta = _dict(choice.get("delta"))
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for tc in _dicts(delta.get("tool_calls")):
                slot = calls.setdefault(_int(tc.get("index")) or 0, ["", ""])
                fn = _dict(tc.get("function"))
                slot[0] += _str(fn.get("name")) or ""
                slot[1] += _str(fn.get("arguments")) or ""
    return Answer(
        "".join(text),
        tuple(ToolCall(name, _parsed(args)) for _, (name, args) in sorted(calls.items())),
        finish,
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        model,
        fingerprint,
    )


def _anthropic_stream(chunks: list[dict[str, Any]]) -> Answer:
    text: list[str] = []
    blocks: dict[int, list[str]] = {}  # index of a tool_use block -> [name, input JSON so far]
    finish = model = None
    input_tokens = output_tokens = None
    for c in chunks:
        kind = c.get("type")
        if kind == "message_start" and isinstance(c.get("message"), dict):
            model = _str(c["message"].get("model"))
            usage = c["message"].get("usage")
            input_tokens = _int(usage.get("input_tokens")) if isinstance(usage, dict) else None
        elif kind == "content_block_start" and isinstance(c.get("content_block"), dict):
            block = c["content_block"]
            if block.get("type") == "tool_use":
                blocks[_int(c.get("index")) or 0] = [str(block.get("name", "")), ""]
        elif kind == "content_block_delta" and isinstance(c.get("delta"), dict):
            delta = c["delta"]
            if isinstance(delta.get("text"), str):
                text.append(delta["text"])
            elif isinstance(delta.get("partial_json"), str):
                blocks.setdefault(_int(c.get("index")) or 0, ["", ""])[1] += delta["partial_json"]
        elif kind == "message_delta":
            delta = _dict(c.get("delta"))
            finish = _str(delta.get("stop_reason")) or finish
            usage = c.get("usage")
            output_tokens = _int(usage.get("output_tokens")) if isinstance(usage, dict) else output_tokens
    return Answer(
        "".join(text),
        tuple(ToolCall(name, _parsed(args or "{}")) for _, (name, args) in sorted(blocks.items())),
        finish,
        input_tokens,
        output_tokens,
        model,
    )
