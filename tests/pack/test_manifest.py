"""The manifest model: round trips, schema errors that name the field, refusals before validation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import PackError
from runner.pack import manifest as mf
from runner.pack import strictyaml
from tests.packfactory import make_manifest

SHA = "b" * 64


def _command(**kw: object) -> mf.CommandStep:
    fields: dict[str, object] = {
        "id": "c1",
        "argv": ("pytest", "-q"),
        "timeout": 60,
        "expect": mf.Expectation(exit_code=1, stdout=SHA, stderr=SHA, outputs={"junit.xml": SHA}),
        "compare": mf.Comparison(stdout=("durations", "tmp_paths"), outputs={"junit.xml": "junit"}),
        "span_id": "051581bf3cb55c13",
    }
    fields.update(kw)
    return mf.CommandStep(**fields)  # type: ignore[arg-type]


def _full() -> mf.Manifest:
    return make_manifest(
        steps=(mf.PatchStep("p1", "patches/0001.diff", reason="fix the off-by-one"), _command()),
        artifacts=(mf.Artifact(f"artifacts/sha256/{SHA}", SHA, 3, "text/plain", name="pytest.log"),),
        cassettes=(mf.CassetteIndex("cassettes/http.jsonl", 1, 12),),
        privacy=mf.Privacy("default-v3", True, ("k1",), extra={"signature": {"alg": "ed25519"}}),
        integrity=mf.Integrity(root="c" * 64, members={"traces.jsonl": mf.MemberDigest("d" * 64, 10)}),
    )


def test_round_trip_keeps_every_field() -> None:
    m = _full()
    assert mf.load(mf.dump(m)) == m


@pytest.mark.parametrize(
    "environment",
    [
        mf.Environment(
            kind="image", image=mf.ImageRef("ghcr.io/org/base@sha256:" + "a" * 64, "sha256:" + "e" * 64)
        ),
        mf.Environment(
            kind="dockerfile", dockerfile=mf.DockerfileRef("env/Dockerfile", "debian@sha256:" + "a" * 64)
        ),
        mf.Environment(
            kind="snapshot",
            snapshot=mf.EnvSnapshot("3.12.1", "env/pip-freeze.txt", "Debian 12", arch="x86_64"),
            lockfiles=("env/requirements.lock", "env/frontend/package-lock.json"),
            runtimes={"node": "20.11.0"},
        ),
    ],
)
def test_each_environment_kind_round_trips(environment: mf.Environment) -> None:
    m = replace(_full(), environment=environment)
    assert mf.load(mf.dump(m)) == m


def test_schema_lists_the_same_normalisers_and_rules_as_the_module() -> None:
    defs = mf.schema()["$defs"]
    assert set(defs["normalisers"]["items"]["enum"]) == mf.NORMALISERS
    rules = defs["command_step"]["properties"]["compare"]["properties"]["outputs"]["additionalProperties"][
        "enum"
    ]
    assert set(rules) == mf.OUTPUT_RULES


def _broken(old: str, new: str) -> str:
    text = mf.dump(_full())
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("timeout: 60", "timeout: -1", "steps[1].timeout: -1 is less than the minimum of 1"),
        ("  - durations", "  - jitter", "steps[1].compare.stdout[0]: 'jitter' is not one of"),
        ("kind: snapshot", "kind: vm", "environment.kind: 'vm' is not one of"),
        ("kind: snapshot", "kind: image", "environment: 'image' is a required property"),
        ("dirty: false", "dirty: true", "inputs.git: 'baseline_patch' is a required property"),
        (
            "patch: patches/0001.diff",
            "patch: ../../etc/passwd",
            "steps[0].patch: '../../etc/passwd' does not match",
        ),
        ("  argv:\n  - pytest\n  - -q\n", "  argv: []\n", "steps[1].argv: [] should be non-empty"),
        (
            "bundle: workspace/base.bundle",
            "bundle: /tmp/x",
            "inputs.git.bundle: 'workspace/base.bundle' was expected",
        ),
        ("seed: 424242", "seed: lots", "llm.seed: 'lots' is not of type 'integer', 'null'"),
        (
            "size: 3",
            "size: 3\n  colour: red",
            "artifacts[0]: Additional properties are not allowed ('colour'",
        ),
    ],
)
def test_schema_errors_name_the_field(old: str, new: str, message: str) -> None:
    with pytest.raises(PackError) as e:
        mf.load(_broken(old, new))
    assert message in str(e.value)
    assert str(e.value).startswith("manifest.yaml: ")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("id: p1", "id: c1", "steps[1].id: 'c1' is already used by steps[0]"),
        (f"path: artifacts/sha256/{SHA}", f"path: artifacts/sha256/{'a' * 64}", "artifacts[0].path"),
        (
            f"    stdout: {SHA}",
            f"    stdout: {'f' * 64}",
            f"steps[1].expect.stdout: no artifact with sha256 {'f' * 64}",
        ),
        (
            "      junit.xml: junit",
            "      other.xml: junit",
            "steps[1].compare.outputs.other.xml: not a declared output",
        ),
    ],
)
def test_cross_field_checks_name_the_field(old: str, new: str, message: str) -> None:
    with pytest.raises(PackError, match=None) as e:
        mf.load(_broken(old, new))
    assert message in str(e.value)


def test_unknown_format_version_is_refused_before_schema_validation() -> None:
    with pytest.raises(PackError, match=r"format_version 2 is not supported .* reads 1"):
        mf.load("format_version: 2\nsomething_new: [1, 2]\n")


@pytest.mark.parametrize(
    "text", ["format_version: '1'\n", "format_version: true\n", "session: {}\n", "[]\n", "42\n"]
)
def test_missing_or_odd_format_version_is_refused(text: str) -> None:
    with pytest.raises(PackError, match=r"manifest\.yaml: "):
        mf.load(text)


def test_yaml_aliases_are_refused() -> None:
    bomb = "format_version: 1\na: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"
    with pytest.raises(PackError, match="aliases are not allowed"):
        mf.load(bomb)


def test_python_tags_are_refused_by_safe_load() -> None:
    with pytest.raises(PackError, match="not valid YAML"):
        mf.load("format_version: 1\nx: !!python/object/apply:os.system ['true']\n")


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(PackError, match=r"llm\.temperature: nan is not a finite number"):
        mf.load(_broken("temperature: 0.0", "temperature: .nan"))


def test_unquoted_timestamp_is_read_as_text() -> None:
    text = _broken("created_at: '2025-11-24T13:42:17Z'", "created_at: 2025-11-24T13:42:17Z")
    assert mf.load(text).session.created_at == "2025-11-24T13:42:17Z"


def test_root_digest_covers_manifest_body_and_members() -> None:
    m = _full()
    members = {"traces.jsonl": mf.MemberDigest("d" * 64, 10)}
    root = mf.root_digest(m, members)
    assert root == mf.root_digest(replace(m, integrity=None), members)  # integrity itself is not covered
    image = mf.Environment(kind="image", image=mf.ImageRef("x@sha256:" + "1" * 64))
    assert mf.root_digest(replace(m, environment=image), members) != root
    assert mf.root_digest(m, {"traces.jsonl": mf.MemberDigest("d" * 64, 11)}) != root
    assert mf.root_digest(replace(m, privacy=replace(m.privacy, extra={})), members) != root


def test_referenced_members_lists_what_replay_needs() -> None:
    refs = _full().referenced_members()
    assert {
        "patches/0001.diff",
        "workspace/base.bundle",
        "env/pip-freeze.txt",
        f"artifacts/sha256/{SHA}",
    } <= refs
    assert "cassettes/http.jsonl" in refs


def _with_agent_command(patch: str | None = "p1") -> mf.Manifest:
    command = mf.AgentCommand(argv=("python", "agent.py"), cwd="src", env={"LANG": "C.UTF-8"}, timeout=900)
    return replace(_full(), agent=mf.Agent("my-agent", command=command, patch=patch))


def test_agent_command_and_patch_round_trip() -> None:
    m = _with_agent_command()
    loaded = mf.load(mf.dump(m))
    assert loaded == m
    assert loaded.agent.command is not None and loaded.agent.command.argv == ("python", "agent.py")
    assert mf.to_dict(m)["agent"]["command"] == {
        "argv": ["python", "agent.py"],
        "cwd": "src",
        "env": {"LANG": "C.UTF-8"},
        "timeout": 900,
    }


def test_agent_patch_must_name_a_patch_step() -> None:
    with pytest.raises(PackError, match=r"agent\.patch: 'c1' is not the id of a patch step"):
        mf.validate(_with_agent_command(patch="c1"))
    with pytest.raises(PackError, match=r"agent\.patch: 'nope'"):
        mf.validate(_with_agent_command(patch="nope"))


def test_agent_command_needs_a_relative_cwd_and_an_argv() -> None:
    text = mf.dump(_with_agent_command()).replace("cwd: src", "cwd: /etc")
    with pytest.raises(PackError, match=r"agent\.command\.cwd"):
        mf.load(text)
    bad = replace(_with_agent_command(), agent=mf.Agent("a", command=mf.AgentCommand(argv=())))
    with pytest.raises(PackError, match=r"agent\.command\.argv"):
        mf.validate(bad)


# --- the strict reader: refusals that name the line ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "format_version: 1\nagent: {name: a}\nagent: {name: b}\n",
            r"line 3, column 1: duplicate key 'agent', first given at line 2",
        ),
        ("format_version: 1\nagent: {name: a, name: b}\n", r"line 2, column 18: duplicate key 'name'"),
        (
            "format_version: 1\nx: " + "9" * 5000 + "\n",
            r"line 2, column 4: an integer of 5000 characters is too long",
        ),
        (
            "format_version: 1\nx: 18446744073709551616\n",
            r"integer 18446744073709551616 is outside the 64-bit range",
        ),
        ("format_version: 1\nx: 1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16\n", r"outside the 64-bit range"),
        (
            "format_version: 1\nx: " + ":".join(["59"] * 5000) + "\n",
            r"an integer of 14999 characters is too long",
        ),
        (
            "format_version: 1\nx: 0000-01-01T00:00:00Z\n",
            r"line 2, column 4: '0000-01-01T00:00:00Z' is not a valid timestamp \(year 0",
        ),
        ("format_version: 1\nx: 2025-02-30\n", r"is not a valid timestamp \(day is out of range"),
        ("format_version: 1\nx: 2025-01-01T00:00:00+99:00\n", r"is not a valid timestamp"),
        (
            "format_version: 1\na: {k: 1}\nb: {<<: {k: 2}}\n",
            r"line 3, column 5: merge keys \(<<\) are not allowed",
        ),
        ("format_version: 1\nx: " + "[" * 200 + "]" * 200 + "\n", r"nested deeper than"),
        ("format_version: 1\nx: " + "[" * 100_000 + "\n", r"nested deeper than"),
        ("format_version: 1\nx: !!python/name:os.system\n", r"could not determine a constructor"),
    ],
)
def test_the_strict_reader_refuses_with_the_line(text: str, message: str) -> None:
    with pytest.raises(PackError, match=r"^manifest\.yaml: not valid YAML: .*" + message) as caught:
        mf.load(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text", ["format_version: 1\nx: !!binary aGk=\n", "format_version: 1\nx: !!set {a}\n"]
)
def test_safe_tags_that_are_not_json_are_refused(text: str) -> None:
    with pytest.raises(PackError, match=r"x: values of type (bytes|set) are not allowed"):
        mf.load(text)


def test_64_bit_integers_and_real_timestamps_still_read() -> None:
    text = _broken("seed: 424242", "seed: 18446744073709551615").replace(
        "created_at: '2025-11-24T13:42:17Z'", "created_at: 2025-11-24T13:42:17+00:00"
    )
    m = mf.load(text)
    assert m.llm is not None and m.llm.seed == 2**64 - 1 and m.session.created_at == "2025-11-24T13:42:17Z"


# --- the fast validator never passes what jsonschema refuses ---------------------------------------

_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(["", "a" * 64, "b" * 64 + "\n", "../x", "env//x", "patches/0001.diff\n", "x" * 300]),
    st.text(max_size=12),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.sampled_from(["id", "x", "path"]), st.text(max_size=3), max_size=2),
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [at, *(p for k, v in value.items() for p in _paths(v, (*at, k)))]
    if isinstance(value, list):
        return [at, *(p for i, v in enumerate(value) for p in _paths(v, (*at, i)))]
    return [at]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_fast_validator_passes_nothing_jsonschema_refuses(data: st.DataObject) -> None:
    doc = mf.to_dict(_full())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(_ODD)
    refused = jsonschema.exceptions.best_match(mf._validator().iter_errors(doc)) is not None
    try:
        passed = mf.fast_validator().is_valid(doc)
    except (ValueError, TypeError, OverflowError):
        passed = False
    assert not (passed and refused)


def test_a_value_only_python_regexes_accept_still_loads() -> None:
    # Python's `$` matches before a final newline: jsonschema_rs refuses it, jsonschema decides.
    text = mf.dump(_full()).replace("span_id: 051581bf3cb55c13\n", 'span_id: "051581bf3cb55c13\\n"\n', 1)
    assert '"051581bf3cb55c13\\n"' in text
    assert not mf.fast_validator().is_valid(strictyaml.load(text))
    assert mf.load(text).steps[1].span_id == "051581bf3cb55c13\n"
