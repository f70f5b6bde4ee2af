"""LLM calls under recording: exact messages, parameters, seed and full response of every call.

Inputs: a callable that calls a model (a generic function, or the `create` method of an OpenAI-style
`chat.completions` / `responses` or Anthropic-style `messages` client) and its keyword parameters.
Outputs: the model's answer, passed through unchanged (streams are passed through chunk by chunk), one
`llm` span per call with the OpenTelemetry GenAI attributes, and prompt files (`NNNN-request.json`,
`NNNN-<role>.txt`, `NNNN-response.json`) handed to the session's store.
Rules:
- The seed is set on every call (retries are calls too): the caller's, else the session's default. APIs
  that take no seed (Anthropic messages, OpenAI responses) get none, and the span says so.
- A call without an explicit temperature is refused before it goes out (policy "refuse", the default),
  or goes out with a warning on the span (policy "warn").
- Retrieval snippets (`retrieval=[...]`, taken out before the call) are recorded in order with sha256s.
- Credentials in parameters (`extra_headers`, `api_key`, ...) are replaced before anything is written.
- On the agent's thread a call only begins its span (runner.recorder.spans.Starter) and copies what was
  sent; the span is made, filled and ended by the deferred work, with the call's own start and end times.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from runner import typedjson
from runner.errors import RecordError
from runner.pack.traces import SPAN_INPUT, SPAN_OUTPUT, SPAN_TYPE
from runner.recorder.spans import SpanStart, Starter

__all__ = ["LlmApi", "LlmPolicy", "LlmRecorder", "TemperaturePolicy", "instrument", "plain"]

TemperaturePolicy = Literal["refuse", "warn"]
# The model APIs a call is recorded as: `llm_call`'s plain function, and the clients `instrument` knows.
LlmApi = Literal["generic", "openai.chat", "openai.responses", "anthropic.messages"]
# Credential-like parameter names (`max_tokens` is not one: a name ending in "token", not "tokens").
_SECRET_NAME = re.compile(
    r"(?i)^(.*authorization|.*cookie|.*api[-_]?key|(.*[-_])?token|.*secret.*|.*passw(or)?d.*|.*credential.*)$"
)
_NO_SEED: frozenset[LlmApi] = frozenset({"anthropic.messages", "openai.responses"})


@dataclass(frozen=True)
class LlmPolicy:
    default_seed: int = 424242
    temperature: TemperaturePolicy = "refuse"


def plain(value: Any) -> Any:
    """JSON data for a client's request or response object (pydantic models, dicts, lists, scalars)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return plain(dump(mode="json"))
        except TypeError:
            return plain(dump())
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def _scrub(value: Any, key: str = "") -> Any:
    if key and _SECRET_NAME.match(key) and value is not None:
        return "<redacted>"
    if isinstance(value, dict):
        return {k: _scrub(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _text(content: Any) -> str:
    """Readable text of a message's content (a string, or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            _text(p.get("text", p.get("content", ""))) if isinstance(p, dict) else str(p) for p in content
        )
    return "" if content is None else json.dumps(content, sort_keys=True)


def _input_messages(provider: LlmApi, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = list(params.get("messages") or [])
    if provider == "anthropic.messages" and params.get("system") is not None:
        messages.insert(0, {"role": "system", "content": params["system"]})
    if provider == "openai.responses":
        if params.get("instructions") is not None:
            messages.insert(0, {"role": "system", "content": params["instructions"]})
        given = params.get("input")
        messages += [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
    return [m if isinstance(m, dict) else {"role": "user", "content": m} for m in messages]


def _output_messages(response: Any) -> list[dict[str, Any]]:
    if not isinstance(response, dict):
        return [{"role": "assistant", "content": response}]
    if "choices" in response:
        return [
            c.get("message") or {"role": "assistant", "content": c.get("text")} for c in response["choices"]
        ]
    if "content" in response:
        return [{"role": response.get("role", "assistant"), "content": response["content"]}]
    if "output" in response:
        return [{"role": "assistant", "content": response.get("output_text") or response["output"]}]
    if "text" in response:
        return [{"role": "assistant", "content": response["text"]}]
    return [{"role": "assistant", "content": response}]


def _stream_text(chunks: list[Any]) -> str:
    parts: list[str] = []
    for c in chunks:
        if not isinstance(c, dict):
            continue
        for choice in c.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
        delta = c.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("text"), str):
            parts.append(delta["text"])  # Anthropic content_block_delta
        elif c.get("type") == "response.output_text.delta" and isinstance(delta, str):
            parts.append(delta)
    return "".join(parts)


class LlmRecorder:
    """Wraps model calls for one session. `store(name, data)` receives prompt files (prompts/<name>);
    `defer(work)` runs the serialising part later (the session runs it on a background thread)."""

    def __init__(
        self,
        spans: Starter,
        store: Callable[[str, bytes], None],
        policy: LlmPolicy,
        defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.spans = spans
        self.store = store
        self.policy = policy
        self.defer = defer or (lambda work: work())
        self.count = 0
        self.client_calls = 0  # calls through an instrumented HTTP client (not `llm_call` of any function)
        self.first: dict[str, Any] | None = None  # the first call's parameters: the session's llm defaults
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., Any], provider: LlmApi, /, **params: Any) -> Any:
        retrieval = params.pop("retrieval", None)
        seeded = provider not in _NO_SEED
        if seeded and params.get("seed") is None:
            params["seed"] = self.policy.default_seed
        warning = None
        if params.get("temperature") is None:
            message = (
                f"{provider} call to {params.get('model', '?')} has no explicit temperature; "
                "pass temperature=... so the call can be reproduced"
            )
            if self.policy.temperature == "refuse":
                raise RecordError(message + " (or record with temperature_policy='warn')")
            warnings.warn(message, stacklevel=3)
            warning = message
        with self._lock:
            self.count += 1
            self.client_calls += provider != "generic"
            number = self.count
        # Agents append to their message list after a call: keep the lists as they were sent.
        sent = {k: list(v) if isinstance(v, list) else v for k, v in params.items()}
        snippets = list(retrieval) if retrieval is not None else None
        span = self.spans.begin(f"chat {params.get('model', '')}".strip(), otel_trace.SpanKind.CLIENT)
        self.defer(lambda: self._request(span, number, provider, sent, snippets, warning))
        token = otel_context.attach(span.context())  # what the call opens nests under its span
        try:
            result = fn(**params)
        except BaseException as e:
            error, end = e, time.time_ns()  # `e` is unbound after the except block; the lambda runs later
            self.defer(lambda: self._failed(span, error, end))
            raise
        finally:
            otel_context.detach(token)
        if (
            params.get("stream")
            and hasattr(result, "__iter__")
            and not isinstance(result, dict | str | bytes)
        ):

            def streamed(chunks: list[Any]) -> None:
                end = time.time_ns()
                self.defer(lambda: self._finish(span, number, chunks, end, streamed=True))

            return _RecordedStream(result, streamed)
        end = time.time_ns()
        self.defer(lambda: self._finish(span, number, result, end))
        return result

    def _request(
        self,
        start: SpanStart,
        number: int,
        provider: LlmApi,
        sent: dict[str, Any],
        retrieval: list[Any] | None,
        warning: str | None,
    ) -> None:
        recorded = _scrub(plain(sent))
        if self.first is None:
            self.first = {"provider": provider.split(".")[0], **recorded}
        inputs = _input_messages(provider, recorded)
        attrs: dict[str, Any] = {
            SPAN_TYPE: "llm",
            SPAN_INPUT: typedjson.dumps({"args": [], "kwargs": recorded}, lenient=True),
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider.split(".")[0],
            "gen_ai.provider.name": provider.split(".")[0],
            "gen_ai.input.messages": json.dumps(inputs, ensure_ascii=False),
            "runner.llm.api": provider,
            "runner.llm.call": number,
            "runner.llm.seed_supported": provider not in _NO_SEED,
        }
        for name in ("model", "seed", "temperature", "top_p", "max_tokens", "max_output_tokens", "stop"):
            value = recorded.get(name)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                key = "max_tokens" if name == "max_output_tokens" else name
                attrs[f"gen_ai.request.{key}"] = value
        if recorded.get("tools") is not None:
            attrs["gen_ai.tool.definitions"] = json.dumps(recorded["tools"], ensure_ascii=False)
        if retrieval is not None:
            snippets = [plain(s) for s in retrieval]
            digests = [hashlib.sha256(_text(s).encode()).hexdigest() for s in snippets]
            attrs["runner.llm.retrieval.sha256"] = digests
            recorded = {
                **recorded,
                "retrieval": [
                    {"order": i, "sha256": d, "content": s}
                    for i, (s, d) in enumerate(zip(snippets, digests, strict=True))
                ],
            }
        if warning:
            attrs["runner.llm.warning"] = warning
        start.span.set_attributes(attrs)
        self._store_request(number, recorded, inputs)

    def _failed(self, start: SpanStart, error: BaseException, end: int) -> None:
        span = start.span
        if isinstance(error, Exception):  # what `use_span` records on a span the call ran under
            span.record_exception(error, timestamp=end)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.record_exception(error)
        span.end(end_time=end)

    def _store_request(self, number: int, recorded: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
        self.store(f"{number:04d}-request.json", json.dumps(recorded, indent=2, ensure_ascii=False).encode())
        by_role: dict[str, list[str]] = {}
        for m in inputs:
            role = re.sub(r"[^A-Za-z0-9_.-]", "_", str(m.get("role", "user"))) or "user"
            by_role.setdefault(role, []).append(_text(m.get("content")))
        for role, texts in by_role.items():
            self.store(f"{number:04d}-{role}.txt", "\n\n".join(texts).encode())

    def _finish(self, start: SpanStart, number: int, result: Any, end: int, streamed: bool = False) -> None:
        output = plain(result)
        response = {"stream": output, "text": _stream_text(output)} if streamed else output
        outputs = _output_messages(response)
        attrs: dict[str, Any] = {
            SPAN_OUTPUT: typedjson.dumps(output, lenient=True),
            "gen_ai.output.messages": json.dumps(outputs, ensure_ascii=False),
        }
        if isinstance(response, dict):
            chunks = response.get("stream") or [response]
            for c in chunks:
                if isinstance(c, dict) and isinstance(c.get("id"), str):
                    attrs["gen_ai.response.id"] = c["id"]
                if isinstance(c, dict) and isinstance(c.get("model"), str):
                    attrs["gen_ai.response.model"] = c["model"]
                usage = c.get("usage") if isinstance(c, dict) else None
                if isinstance(usage, dict):
                    for ours, theirs in (
                        ("input_tokens", "prompt_tokens"),
                        ("output_tokens", "completion_tokens"),
                    ):
                        value = usage.get(ours, usage.get(theirs))
                        if isinstance(value, int):
                            attrs[f"gen_ai.usage.{ours}"] = value
        span = start.span
        span.set_attributes(attrs)
        self.store(f"{number:04d}-response.json", json.dumps(response, indent=2, ensure_ascii=False).encode())
        texts = [_text(m.get("content")) if isinstance(m, dict) else str(m) for m in outputs]
        self.store(f"{number:04d}-assistant.txt", "\n\n".join(texts).encode())
        span.set_status(Status(StatusCode.OK))
        span.end(end_time=end)


class _RecordedStream:
    """Passes a streamed response through chunk by chunk and records the chunks when it ends."""

    def __init__(self, inner: Any, done: Callable[[list[Any]], None]) -> None:
        self._inner = inner
        self._iter: Iterator[Any] | None = None
        self._chunks: list[Any] = []
        self._done: Callable[[list[Any]], None] | None = done
        self._started = time.monotonic()

    def __iter__(self) -> _RecordedStream:
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            self._iter = iter(self._inner)
        try:
            chunk = next(self._iter)
        except StopIteration:
            self._finish()
            raise
        self._chunks.append(chunk)
        return chunk

    def _finish(self) -> None:
        if self._done is not None:
            done, self._done = self._done, None
            done(self._chunks)

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if callable(close):
                close()
        finally:
            self._finish()

    def __enter__(self) -> _RecordedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __del__(self) -> None:
        self._finish()


def instrument(client: Any, recorder: LlmRecorder) -> Any:
    """Route an OpenAI-style or Anthropic-style client's `create` methods through `recorder`; return it."""
    found = False
    apis: tuple[tuple[tuple[str, ...], LlmApi], ...] = (
        (("chat", "completions"), "openai.chat"),
        (("responses",), "openai.responses"),
        (("messages",), "anthropic.messages"),
    )
    for path, provider in apis:
        target: Any = client
        try:
            for name in path:
                target = getattr(target, name)
            create = target.create
        except AttributeError:
            continue
        if getattr(create, "__runner_recorded__", False):
            found = True
            continue

        def wrapped(*args: Any, _create: Any = create, _provider: LlmApi = provider, **params: Any) -> Any:
            if args:
                raise RecordError(f"{_provider}.create takes keyword arguments only")
            return recorder.call(_create, _provider, **params)

        wrapped.__runner_recorded__ = True  # type: ignore[attr-defined]
        target.create = wrapped
        found = True
    if not found:
        raise RecordError(
            f"{type(client).__name__} has no chat.completions, responses or messages `create` method; "
            "use session.llm_call(fn, ...) for other clients"
        )
    return client
