"""Re-send a recorded model request to a live provider and bring back its answer.

Inputs: a `ModelCall`, a `Provider` (where to send and which environment variable holds the credential).
Output: a `Fresh` answer with the retries it took, or an error.
Rules:
- The request goes out exactly as recorded (messages, tools, parameters, seed); `--model` may replace the
  model. A recorded stream is re-sent with stream=True and its events joined the same way.
- 429 and 5xx answers are retried with exponential backoff (Retry-After honoured, capped), and reported;
  they are never drift. When the retries run out, or the provider cannot be reached, or it refuses the
  credential, that is an EnvironmentProblem (exit 3).
- The credential is read from the environment at send time and only ever put in a request header: never
  in a report or an error (error text is scrubbed of it in case a server echoes it back).
- httpx, not provider SDKs: any OpenAI-compatible server works through `--base-url`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from runner.drift.answers import Answer, ModelApi, answer_of, sse_events, stream_answer
from runner.drift.calls import ModelCall
from runner.errors import EnvironmentProblem

__all__ = ["Fresh", "Provider", "resend"]

_DEFAULT_BASE = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com/v1"}
_SUFFIX: dict[ModelApi, str] = {
    "openai.chat": "/chat/completions",
    "openai.responses": "/responses",
    "anthropic.messages": "/messages",
}
_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
MAX_RETRY_AFTER = 30.0  # seconds: a longer Retry-After is cut to this


@dataclass(frozen=True)
class Provider:
    base_url: str | None = None  # None: the recorded URL (black-box), else the provider's public API
    model: str | None = None  # replaces the recorded model
    api_key_env: str | None = None  # None: OPENAI_API_KEY or ANTHROPIC_API_KEY by the call's API
    attempts: int = 5  # tries per call, retries included
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    timeout: float = 120.0


@dataclass(frozen=True)
class Fresh:
    answer: Answer
    retries: tuple[str, ...] = field(default_factory=tuple)  # "429", "503", ... one per retried answer


def _url(call: ModelCall, provider: Provider) -> str:
    family = call.api.split(".")[0]
    if provider.base_url:
        return provider.base_url.rstrip("/") + _SUFFIX[call.api]
    return call.url or _DEFAULT_BASE[family] + _SUFFIX[call.api]


def _headers(call: ModelCall, provider: Provider) -> tuple[dict[str, str], str | None]:
    family = call.api.split(".")[0]
    key = os.environ.get(provider.api_key_env or _KEY_ENV[family]) or None
    headers = {"content-type": "application/json", "accept": "application/json"}
    if family == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    return headers, key


def _wait(response: httpx.Response, backoff: float) -> float:
    given = response.headers.get("retry-after", "")
    try:
        return min(max(float(given), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return min(backoff, MAX_RETRY_AFTER)


def resend(
    call: ModelCall,
    provider: Provider,
    client: httpx.Client,
    sleep: Callable[[float], None] = time.sleep,
) -> Fresh:
    """Send `call` again and return the provider's answer (see the module rules for retries and errors)."""
    body: dict[str, Any] = dict(call.request)
    if provider.model:
        body["model"] = provider.model
    if call.streamed:
        body["stream"] = True
    url = _url(call, provider)
    headers, key = _headers(call, provider)
    where = f"model call #{call.number} to {url}"

    def scrub(text: str) -> str:
        return text.replace(key, "<credential>") if key else text

    retries: list[str] = []
    backoff = provider.backoff
    for attempt in range(1, provider.attempts + 1):
        try:
            with client.stream("POST", url, headers=headers, content=json.dumps(body).encode(),
                               timeout=provider.timeout) as response:  # fmt: skip
                raw = response.read()
        except httpx.HTTPError as e:
            raise EnvironmentProblem(
                f"{where}: the provider cannot be reached ({scrub(type(e).__name__ + ': ' + str(e))}); "
                "check --base-url and the network"
            ) from None
        status = response.status_code
        if status == 429 or status >= 500:
            retries.append(str(status))
            if attempt == provider.attempts:
                break
            sleep(_wait(response, backoff))
            backoff *= 2
            continue
        if status in (401, 403):
            env = provider.api_key_env or _KEY_ENV[call.api.split(".")[0]]
            raise EnvironmentProblem(
                f"{where}: the provider refused the credential (HTTP {status}); set {env}"
            )
        if not 200 <= status < 300:
            snippet = scrub(raw[:200].decode("utf-8", "replace")).replace("\n", " ")
            raise EnvironmentProblem(f"{where}: HTTP {status} ({snippet})")
        if call.streamed:
            return Fresh(stream_answer(call.api, sse_events(raw)), tuple(retries))
        try:
            return Fresh(answer_of(call.api, json.loads(raw)), tuple(retries))
        except (ValueError, RecursionError):
            raise EnvironmentProblem(f"{where}: the answer is not JSON; is this a model API?") from None
    raise EnvironmentProblem(
        f"{where}: still rate-limited or failing after {provider.attempts} tries "
        f"(HTTP {', '.join(retries)}); try again later"
    )
