"""The agent's environment at replay: secret shapes, placeholders made from them, `replay_env`, and the
manifest fields that carry them (agent.command files/stdin/argv, environment.variables, recording)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runner.errors import PackError
from runner.pack import manifest as mf
from runner.pack.agentenv import placeholder, replay_env, shape_of
from runner.pack.layout import layout_problem
from tests.packfactory import make_manifest

OPENAI = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_-Q"


@pytest.mark.parametrize(
    ("value", "prefix", "charset"),
    [
        (OPENAI, "sk-proj-", "base64url"),
        ("sk-ant-api03-" + "a1B2" * 10, "sk-ant-api03-", "alnum"),
        ("ghp_" + "Z9" * 18, "ghp_", "alnum"),
        ("9f86d081884c7d659a2feaa0c55ad015", "", "hex"),
        ("424242", "", "digits"),
        ("hunter2!pass word", "", "printable"),
        ("c2VjcmV0IHZhbHVl+/==", "", "base64"),
    ],
)
def test_a_shape_keeps_the_vendor_prefix_length_and_charset_and_its_placeholder_matches(
    value: str, prefix: str, charset: str
) -> None:
    shape = shape_of(value)
    assert (shape.prefix, shape.length, shape.charset) == (prefix, len(value), charset)
    stand_in = placeholder(shape)
    assert len(stand_in) == len(value) and stand_in.startswith(prefix) and stand_in != value
    assert shape_of(stand_in).charset in (charset, "alnum", "hex", "digits", "base64url")
    assert placeholder(shape) == stand_in  # deterministic
    if charset != "printable":
        assert set(stand_in[len(prefix) :]) <= set(value[len(prefix) :]) | set(
            "REPLAYplaceholder0123456789-_abcdef"
        )
    # No part of the secret but a vendor prefix: the stand-in shares no 6-character run with the body.
    body = value[len(prefix) :]
    assert not any(body[i : i + 6] in stand_in for i in range(len(body) - 5))


def _manifest() -> mf.Manifest:
    m = make_manifest()
    command = mf.AgentCommand(
        argv=("python", "/home/u/agents/agent.py", "--fast"),
        env={"AGENT_MODE": "fast", "LANG": "C.UTF-8"},
        stdin="closed",
        argv_recorded=("/usr/bin/python3.11", "../agents/agent.py", "--fast"),
        console_script=None,
        files=(
            mf.AgentFile("/home/u/agents/agent.py", "agent/files/0001-agent.py", "script"),
            mf.AgentFile("~/.config/agent/config.toml", "agent/files/0002-config.toml", "config"),
        ),
        exit_code=3,
    )
    variables = {
        "AGENT_MODE": mf.EnvDecision("verbatim", "not-secret"),
        "LANG": mf.EnvDecision("verbatim", "allowlisted"),
        "OPENAI_API_KEY": mf.EnvDecision("placeholder", "detector:openai-key", shape_of(OPENAI)),
        "PATH": mf.EnvDecision("dropped", "host-specific"),
        "HTTPS_PROXY": mf.EnvDecision("dropped", "runner-internal"),
    }
    return replace(
        m,
        agent=replace(m.agent, command=command),
        environment=replace(m.environment, variables=variables),
        recording=mf.Recording(exchanges=3, model_exchanges=2, loopback=True, warnings=("a warning",)),
    )


def test_replay_env_is_the_verbatim_values_plus_placeholders_and_never_a_dropped_variable() -> None:
    env = replay_env(_manifest())
    assert env["AGENT_MODE"] == "fast" and env["LANG"] == "C.UTF-8"
    key = env["OPENAI_API_KEY"]
    assert key.startswith("sk-proj-") and len(key) == len(OPENAI) and key != OPENAI
    assert "PATH" not in env and "HTTPS_PROXY" not in env
    assert replay_env(make_manifest()) == {}  # an SDK pack: no command, no variables


def test_the_new_fields_round_trip_and_old_manifests_stay_byte_identical() -> None:
    m = _manifest()
    text = mf.dump(m)
    assert mf.load(text) == m
    assert (
        "stdin: closed" in text
        and "exit_code: 3" in text
        and "agent/files/0001-agent.py" in text
        and "detector:openai-key" in text
    )
    assert OPENAI not in text
    assert {"agent/files/0001-agent.py", "agent/files/0002-config.toml"} <= m.referenced_members()
    # A pack written before these fields: none of them appears, so its root digest is unchanged.
    old = make_manifest()
    assert mf.load(mf.dump(old)) == old
    for word in ("stdin", "variables", "recording", "argv_recorded", "files", "exit_code"):
        assert word not in mf.dump(old)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda c: replace(c, files=(mf.AgentFile("relative/x.py", "agent/files/0001-x.py"),)), "path"),
        (lambda c: replace(c, files=(mf.AgentFile("/x.py", "agent/files/../x.py"),)), "member"),
        (lambda c: replace(c, stdin="open"), "stdin"),
        (lambda c: replace(c, exit_code=1000), "exit_code"),
    ],
)
def test_bad_agent_command_fields_are_refused_naming_the_field(change: object, where: str) -> None:
    m = _manifest()
    assert m.agent.command is not None
    bad = replace(m, agent=replace(m.agent, command=change(m.agent.command)))  # type: ignore[operator]
    with pytest.raises(PackError, match=f"agent.command.*{where}|{where}"):
        mf.validate(bad)


def test_a_bad_variable_decision_is_refused() -> None:
    m = _manifest()
    bad = replace(
        m, environment=replace(m.environment, variables={"X": mf.EnvDecision("kept", "not-secret")})
    )
    with pytest.raises(PackError, match=r"environment\.variables\.X\.action"):
        mf.validate(bad)


def test_agent_files_are_part_of_the_pack_layout() -> None:
    assert layout_problem("agent/files/0001-agent.py") is None
    assert layout_problem("agent/files", is_dir=True) is None
    assert layout_problem("agent/files/agent.py") is not None
    assert layout_problem("agent/other/0001-x") is not None
