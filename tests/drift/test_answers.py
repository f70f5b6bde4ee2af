"""Answers of the three model APIs, plain and streamed, reduced to what drift compares."""

from __future__ import annotations

from runner.drift.answers import Answer, ToolCall, answer_of, sse_events, stream_answer
from runner.drift.score import score


def test_anthropic_streams_join_text_and_tool_input_fragments_like_the_plain_answer() -> None:
    plain = {
        "model": "claude-x", "stop_reason": "tool_use", "usage": {"input_tokens": 7, "output_tokens": 5},
        "content": [{"type": "text", "text": "Let me edit."},
                    {"type": "tool_use", "name": "edit", "input": {"path": "a.py"}}],
    }  # fmt: skip
    events = [
        {"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 7}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "edit."}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "name": "edit"}},
        {"type": "content_block_delta", "index": 1, "delta": {"partial_json": '{"path": '}},
        {"type": "content_block_delta", "index": 1, "delta": {"partial_json": '"a.py"}'}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
    ]
    expected = Answer("Let me edit.", (ToolCall("edit", {"path": "a.py"}),), "tool_use", 7, 5, "claude-x")
    assert answer_of("anthropic.messages", plain) == expected
    assert stream_answer("anthropic.messages", events) == expected


def test_responses_api_answers_and_their_completed_event() -> None:
    body = {
        "model": "gpt-x", "status": "completed", "usage": {"input_tokens": 3, "output_tokens": 2},
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]},
                   {"type": "function_call", "name": "run", "arguments": '{"cmd": "ls"}'}],
    }  # fmt: skip
    expected = Answer("hi", (ToolCall("run", {"cmd": "ls"}),), "completed", 3, 2, "gpt-x")
    assert answer_of("openai.responses", body) == expected
    sse = (
        b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": "hi"}\n\n'
    )
    sse += (
        b'data: {"type": "response.completed", "response": '
        + __import__("json").dumps(body).encode()
        + b"}\n\n"
    )
    assert stream_answer("openai.responses", sse_events(sse)) == expected


def test_scores_tool_arguments_as_data_and_usage_as_a_bounded_relative_difference() -> None:
    a = Answer("x", (ToolCall("t", {"a": 1, "b": 2}),), "stop", 1, 10)
    reordered = Answer("x", (ToolCall("t", {"b": 2, "a": 1}),), "stop", 1, 10)
    assert score(a, reordered).score == 1.0
    longer = Answer("x", a.tool_calls, "stop", 1, 40)
    assert score(a, longer).usage == 0.25 and score(a, longer).score == 0.925
