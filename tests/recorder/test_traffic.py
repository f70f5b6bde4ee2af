"""Model calls in the cassette, model servers named by the environment, and the warnings that name the
flag to pass."""

from __future__ import annotations

import pytest

from runner.recorder.traffic import is_model_path, model_server_urls, warnings


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat/completions", True),
        ("/v1/responses", True),
        ("/v1/messages?beta=true", True),
        ("/api/chat", True),
        ("/openai/v1/chat/completions", True),
        ("/v1beta/models/gemini-pro:generateContent", True),
        ("/v1/models", False),
        ("/hello/agent", False),
        ("/simple/requests/", False),
    ],
)
def test_known_model_api_paths(path: str, model: bool) -> None:
    assert is_model_path(path) is model


def test_model_server_urls_lists_url_settings_loopback_first() -> None:
    env = {"OPENAI_BASE_URL": "https://api.example.com/v1", "OLLAMA_HOST": "http://127.0.0.1:11434",
           "AGENT_MODE": "fast", "HTTPS_PROXY": "http://127.0.0.1:9", "RUNNER_BASE_URL": "http://x"}  # fmt: skip
    assert model_server_urls(env) == [
        ("OLLAMA_HOST", "http://127.0.0.1:11434"),
        ("OPENAI_BASE_URL", "https://api.example.com"),
    ]


LOCAL = {"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}


def _warn(**kw: object) -> tuple[str, ...]:
    args: dict[str, object] = {"http": True, "loopback": True, "exchanges": 0, "model_exchanges": 0,
                               "client_calls": 0, "environ": LOCAL}  # fmt: skip
    args.update(kw)
    return warnings(**args)  # type: ignore[arg-type]


def test_no_warning_when_model_calls_were_recorded_or_nothing_points_at_a_model() -> None:
    assert _warn(exchanges=3, model_exchanges=1) == ()
    assert _warn(environ={"AGENT_MODE": "fast"}) == ()


def test_loopback_not_recorded_names_the_flag_to_drop() -> None:
    (warning,) = _warn(loopback=False)
    assert "no HTTP exchange was recorded" in warning and "OPENAI_BASE_URL" in warning
    assert "--no-record-loopback" in warning and "127.0.0.1:8000" in warning


def test_no_http_and_a_client_that_ignores_the_proxy_are_named() -> None:
    (off,) = _warn(http=False)
    assert "--no-http" in off
    (ignored,) = _warn(exchanges=2)
    assert "holds no model call" in ignored and "HTTPS_PROXY" in ignored
    (sdk,) = _warn(environ={}, client_calls=3)
    assert "made 3 model call(s) but the cassette holds none" in sdk


def test_a_captured_configuration_file_that_names_a_model_server_counts() -> None:
    """llm keeps its server in extra-openai-models.yaml, not in the environment (--capture-file keeps it)."""
    files = [
        ("agent/files/0001-extra-openai-models.yaml", b"- model_id: m\n  api_base: http://127.0.0.1:8080/v1\n"),
        ("agent/files/0002-config.json", b'{"base_url": "https://api.example.com:99999/v1", "name": "x"}'),
    ]  # fmt: skip
    assert model_server_urls({}, files) == [("extra-openai-models.yaml: api_base", "http://127.0.0.1:8080")]
    (warning,) = _warn(environ={}, files=files, loopback=False)
    assert warning.startswith(
        "no HTTP exchange was recorded although extra-openai-models.yaml: api_base names"
    )
    assert "--no-record-loopback" in warning
