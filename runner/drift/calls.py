"""The model calls of a repro pack: what was sent to a model and what it answered, in call order.

Inputs: a pack, read only through `runner.pack.read.unpack` (verified before anything is written).
Outputs: `ModelCall`s, from either kind of recording:
- SDK recordings: the `llm` spans of traces.jsonl (their `runner.llm.api` and `runner.llm.call`) and the
  prompts/NNNN-request.json / NNNN-response.json members the recorder wrote for them;
- black-box recordings (`runner record -- CMD`): the cassette exchanges whose path ends in
  /chat/completions, /responses or /messages on any host, with a JSON request body and a 2xx answer.
Rules: a pack holding both (an SDK session with its proxy on) gives the SDK calls only, so no call counts
twice. Client-side parameters (extra_headers, timeout, ...) are not part of the request; `extra_body` is
merged in, as the client would. Calls of the recorder's plain `llm_call` (no wire format) are skipped.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from proxy.cassette import CassetteError, read_exchanges
from runner.drift.answers import Answer, ModelApi, answer_of, sse_events, stream_answer
from runner.errors import PackError
from runner.pack import read as pack_read
from runner.pack.read import UnpackedPack
from runner.pack.traces import SPAN_TYPE, read_spans
from runner.privacy.crypto import Keyring

__all__ = ["ModelCall", "api_of_path", "model_calls", "unpacked"]

CallSource = Literal["sdk", "cassette"]
_APIS: tuple[ModelApi, ...] = ("openai.chat", "openai.responses", "anthropic.messages")
_PATHS: tuple[tuple[str, ModelApi], ...] = (
    ("/chat/completions", "openai.chat"),
    ("/responses", "openai.responses"),
    ("/messages", "anthropic.messages"),
)
# Parameters of the Python clients that configure the client call, not the request body.
_CLIENT_ONLY = frozenset({"extra_headers", "extra_query", "extra_body", "timeout", "retrieval", "api_key"})


@dataclass(frozen=True)
class ModelCall:
    number: int  # 1-based, in call order within its pack
    api: ModelApi
    source: CallSource
    request: dict[str, Any]  # the JSON body as sent
    answer: Answer  # the recorded answer (a stream joined)
    streamed: bool
    url: str | None = None  # the recorded URL (black-box recordings)


@contextlib.contextmanager
def unpacked(pack: Path, keyring: Keyring | None = None) -> Iterator[UnpackedPack]:
    """The pack verified and unpacked into a temporary folder, removed afterwards (`keyring` opens a pack
    with encrypted payloads)."""
    with tempfile.TemporaryDirectory(prefix="runner-drift-") as tmp:
        yield pack_read.unpack(Path(pack), Path(tmp) / "pack", keyring=keyring, verify_first=True)


def api_of_path(path: str) -> ModelApi | None:
    """The model API a request path speaks, by its ending (any host, any prefix)."""
    return next((api for suffix, api in _PATHS if path.rstrip("/").endswith(suffix)), None)


def _request_body(params: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in params.items() if k not in _CLIENT_ONLY}
    extra = params.get("extra_body")
    return {**body, **extra} if isinstance(extra, dict) else body


def _json_member(folder: Path, name: str) -> Any:
    try:
        return json.loads((folder / name).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as e:
        raise PackError(f"{name} in the pack is not readable JSON ({e}); re-record the session") from e


def _sdk_calls(folder: Path) -> list[ModelCall]:
    if not (folder / "traces.jsonl").is_file():
        return []
    found: list[tuple[int, ModelApi]] = []
    for span in read_spans(folder / "traces.jsonl"):
        api, number = span.attributes.get("runner.llm.api"), span.attributes.get("runner.llm.call")
        if span.attributes.get(SPAN_TYPE) == "llm" and api in _APIS and isinstance(number, int):
            found.append((number, api))
    calls: list[ModelCall] = []
    for number, api in sorted(found):
        request = _json_member(folder, f"prompts/{number:04d}-request.json")
        response = _json_member(folder, f"prompts/{number:04d}-response.json")
        if not isinstance(request, dict) or response is None:
            continue  # the call failed, or its prompt files were not kept
        streamed = isinstance(response, dict) and isinstance(response.get("stream"), list)
        answer = stream_answer(api, response["stream"]) if streamed else answer_of(api, response)
        calls.append(ModelCall(len(calls) + 1, api, "sdk", _request_body(request), answer, streamed))
    return calls


def _cassette_calls(unpacked_pack: UnpackedPack) -> list[ModelCall]:
    calls: list[ModelCall] = []
    for index in unpacked_pack.manifest.cassettes:
        try:
            exchanges = read_exchanges(unpacked_pack.path / index.path)
        except CassetteError as e:
            raise PackError(f"{e}; the pack's cassette is damaged") from e
        for ex in exchanges:
            api = api_of_path(ex.request.path)
            if api is None or ex.request.method != "POST" or not 200 <= ex.response.status < 300:
                continue
            try:
                request = json.loads(ex.request.body)
            except (ValueError, RecursionError):
                continue
            if not isinstance(request, dict):
                continue
            streamed = bool(request.get("stream"))
            if streamed:
                answer = stream_answer(api, sse_events(ex.response.body))
            else:
                try:
                    answer = answer_of(api, json.loads(ex.response.body))
                except (ValueError, RecursionError):
                    answer = Answer()
            calls.append(
                ModelCall(len(calls) + 1, api, "cassette", request, answer, streamed, ex.request.url)
            )
    return calls


def model_calls(unpacked_pack: UnpackedPack) -> tuple[ModelCall, ...]:
    """Every model call recorded in an unpacked pack, in order (SDK calls when there are any)."""
    return tuple(_sdk_calls(unpacked_pack.path) or _cassette_calls(unpacked_pack))
