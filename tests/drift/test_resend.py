"""Re-sending one call: Anthropic-style headers and answers, Retry-After followed but capped, a provider
that keeps failing is an environment problem naming the statuses, and never the credential."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runner.drift.answers import Answer
from runner.drift.calls import ModelCall
from runner.drift.resend import MAX_RETRY_AFTER, Provider, resend
from runner.drift.score import score
from runner.errors import EnvironmentProblem
from tests.helpers.model_server import ModelServer, model_server

KEY = "sk-ant-planted-credential-0123456789"


@pytest.fixture
def server() -> Any:
    with model_server() as s:
        yield s


def _call(api: Any = "anthropic.messages") -> ModelCall:
    request = {"model": "claude-x", "max_tokens": 64, "temperature": 0, "system": "s",
               "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    recorded = Answer("The greeting is fixed in greet.py.", (), "end_turn", 9, 6, "claude-x")
    return ModelCall(1, api, "sdk", request, recorded, streamed=False)


def test_anthropic_calls_carry_the_key_as_x_api_key_and_score_1_when_unchanged(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with httpx.Client() as client:
        fresh = resend(_call(), Provider(base_url=server.base), client)
    headers = {k.lower(): v for k, v in server.requests[0][1].items()}
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert server.requests[0][0] == "/v1/messages" and server.requests[0][2] == _call().request
    assert score(_call().answer, fresh.answer).score == 1.0


def test_retry_after_is_followed_up_to_a_cap_and_persistent_failure_is_exit_3(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.fail_first, server.retry_after = [429, 502], "3600"
    waits: list[float] = []
    with httpx.Client() as client:
        fresh = resend(_call(), Provider(base_url=server.base), client, sleep=waits.append)
        assert fresh.retries == ("429", "502") and waits == [MAX_RETRY_AFTER, MAX_RETRY_AFTER]

        server.fail_first, server.retry_after = [503] * 3, "soon"  # not a number: exponential backoff
        waits.clear()
        with pytest.raises(EnvironmentProblem) as failed:
            resend(
                _call(), Provider(base_url=server.base, attempts=3, backoff=0.5), client, sleep=waits.append
            )
    assert waits == [0.5, 1.0]
    assert "after 3 tries (HTTP 503, 503, 503)" in str(failed.value) and KEY not in str(failed.value)
    assert failed.value.exit_code == 3
