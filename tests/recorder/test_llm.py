"""LLM call wrappers: seeds on every call, the temperature policy, streams passed through, retrieval, scrubbing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runner.errors import RecordError
from runner.recorder.llm import LlmPolicy, LlmRecorder, instrument
from runner.recorder.spans import GivenIds, Starter


@dataclass
class _Create:
    """A fake `create`: remembers every call; answers like the real client (an object with model_dump)."""

    answer: Any
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, **params: Any) -> Any:
        self.calls.append(params)
        if params.get("stream"):
            return iter(self.answer)
        return self.answer


@dataclass
class _Dumpable:
    data: dict[str, Any]

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return self.data


class _Namespace:
    pass


def _recorder(policy: LlmPolicy | None = None) -> tuple[LlmRecorder, dict[str, bytes], InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=GivenIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store: dict[str, bytes] = {}
    return (
        LlmRecorder(Starter(provider.get_tracer("t")), store.__setitem__, policy or LlmPolicy()),
        store,
        exporter,
    )


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


CHAT = _Dumpable(
    {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
     "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
)  # fmt: skip


def test_every_call_gets_the_default_seed_retries_included_and_an_explicit_one_is_kept() -> None:
    rec, _, exporter = _recorder(LlmPolicy(default_seed=99))
    create = _Create(CHAT)
    for _ in range(2):  # a retry is a call too
        rec.call(create, "openai.chat", model="m", temperature=0, messages=[])
    rec.call(create, "openai.chat", model="m", temperature=0, seed=5, messages=[])
    assert [c["seed"] for c in create.calls] == [99, 99, 5]
    assert [s.attributes["gen_ai.request.seed"] for s in exporter.get_finished_spans()] == [99, 99, 5]


def test_apis_without_a_seed_get_none_and_the_span_says_so() -> None:
    rec, _, exporter = _recorder()
    create = _Create({"id": "msg_1", "role": "assistant", "content": [{"type": "text", "text": "ok"}]})
    rec.call(create, "anthropic.messages", model="claude", temperature=0, max_tokens=10, system="be brief",
             messages=[{"role": "user", "content": "hello"}])  # fmt: skip
    assert "seed" not in create.calls[0]
    span = _only(exporter)
    assert span.attributes["runner.llm.seed_supported"] is False
    assert json.loads(str(span.attributes["gen_ai.input.messages"]))[0] == {
        "role": "system",
        "content": "be brief",
    }


def test_a_call_without_temperature_is_refused_before_it_goes_out_or_warned_about() -> None:
    rec, _, _ = _recorder()
    create = _Create(CHAT)
    with pytest.raises(RecordError, match="no explicit temperature"):
        rec.call(create, "openai.chat", model="m", messages=[])
    assert create.calls == []
    warn, _, exporter = _recorder(LlmPolicy(temperature="warn"))
    with pytest.warns(UserWarning, match="no explicit temperature"):
        warn.call(create, "openai.chat", model="m", messages=[])
    assert len(create.calls) == 1 and "runner.llm.warning" in _only(exporter).attributes


def test_the_request_messages_response_and_usage_are_recorded_exactly() -> None:
    rec, store, exporter = _recorder()
    messages = [{"role": "system", "content": "sys  text\n"}, {"role": "user", "content": "question"}]
    tools = [{"type": "function", "function": {"name": "run_tests", "parameters": {"type": "object"}}}]
    rec.call(_Create(CHAT), "openai.chat", model="m", temperature=0.2, top_p=0.9, max_tokens=64,
             messages=messages, tools=tools, extra_headers={"Authorization": "Bearer sk-xyz"})  # fmt: skip
    request = json.loads(store["0001-request.json"])
    assert request["messages"] == messages and request["tools"] == tools
    assert request["extra_headers"] == {"Authorization": "<redacted>"}
    assert store["0001-system.txt"] == b"sys  text\n" and store["0001-user.txt"] == b"question"
    assert json.loads(store["0001-response.json"]) == CHAT.data and store["0001-assistant.txt"] == b"hi"
    a = _only(exporter).attributes
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.top_p"], a["gen_ai.request.max_tokens"]) == (
        0.2,
        0.9,
        64,
    )
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (5, 2)
    assert a["gen_ai.response.id"] == "chatcmpl-1" and a["runner.span.type"] == "llm"
    assert json.loads(str(a["gen_ai.tool.definitions"])) == tools
    assert b"sk-xyz" not in b"".join(store.values()) and "sk-xyz" not in json.dumps(dict(a))


def test_retrieval_snippets_are_recorded_in_order_with_digests_and_not_passed_on() -> None:
    rec, store, exporter = _recorder()
    create = _Create(CHAT)
    rec.call(create, "generic", model="m", temperature=0, retrieval=["second doc", "first doc"])
    assert "retrieval" not in create.calls[0]
    snippets = json.loads(store["0001-request.json"])["retrieval"]
    assert [s["content"] for s in snippets] == ["second doc", "first doc"]
    assert list(_only(exporter).attributes["runner.llm.retrieval.sha256"]) == [s["sha256"] for s in snippets]


def test_a_stream_is_passed_through_chunk_by_chunk_and_recorded_when_it_ends() -> None:
    rec, store, exporter = _recorder()
    chunks = [_Dumpable({"id": "c1", "choices": [{"delta": {"content": w}}]}) for w in ("Hel", "lo")]
    stream = rec.call(_Create(chunks), "openai.chat", model="m", temperature=0, stream=True, messages=[])
    seen: Iterator[Any] = iter(stream)
    assert next(seen) is chunks[0]
    assert exporter.get_finished_spans() == ()  # still open while the caller reads
    assert list(seen) == [chunks[1]]
    assert json.loads(store["0001-response.json"])["text"] == "Hello"
    assert store["0001-assistant.txt"] == b"Hello"
    assert _only(exporter).attributes["gen_ai.response.id"] == "c1"


def test_instrument_wraps_openai_and_anthropic_shaped_clients_and_refuses_others() -> None:
    rec, _, exporter = _recorder()
    client = _Namespace()
    client.chat = _Namespace()  # type: ignore[attr-defined]
    client.chat.completions = _Namespace()  # type: ignore[attr-defined]
    create = _Create(CHAT)
    client.chat.completions.create = create  # type: ignore[attr-defined]
    assert instrument(instrument(client, rec), rec) is client  # twice: wrapped once
    client.chat.completions.create(model="m", temperature=0, messages=[])  # type: ignore[attr-defined]
    assert create.calls[0]["seed"] == 424242 and len(exporter.get_finished_spans()) == 1
    with pytest.raises(RecordError, match="keyword arguments only"):
        client.chat.completions.create("positional")  # type: ignore[attr-defined]
    with pytest.raises(RecordError, match=r"use session\.llm_call"):
        instrument(object(), rec)
