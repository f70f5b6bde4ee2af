"""The redaction pass at pack build: planted secrets never readable, all recovered with the key, replays
still compare equal, cassette requests still match."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import zstandard

from proxy.cassette import Exchange, RecordedRequest, RecordedResponse
from proxy.match import Normaliser
from proxy.redact import PLACEHOLDER_RE, Redactor
from runner.errors import PrivacyError
from runner.pack import read as pack_read
from runner.pack import summary as pack_summary
from runner.pack import traces
from runner.privacy import access, crypto
from runner.privacy.mask import PrivacyOptions
from runner.replay import compare
from tests.helpers.secret_corpus import Planted, corpus
from tests.packfactory import ROOT_SPAN, TRACE_ID, command, make_pack, patch, raw_members

SECRETS = corpus()


def decompressed(path: Path) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(path.read_bytes()), read_across_frames=True
    )
    return reader.read()


def forms(value: str) -> list[str]:
    """Every way a secret could be spelled in a member: as is, JSON-escaped, line by line."""
    found = [value, json.dumps(value)[1:-1]]
    found += [line for line in value.splitlines() if len(line) >= 12 and "-----" not in line]
    return found


def exchange(body: dict[str, object], headers: list[tuple[str, str]], answer: str) -> Exchange:
    return Exchange(
        RecordedRequest(
            "POST", "https", "api.openai.com", 443, "/v1/chat/completions", (), tuple(headers),
            json.dumps(body).encode(),
        ),
        RecordedResponse(200, "OK", (("content-type", "application/json"),), json.dumps({"answer": answer}).encode()),
    )  # fmt: skip


def binary_exchange(lines: list[str]) -> Exchange:
    body = b"\x89PNG\r\n\x1a\n\x00\xff" + "\n".join(lines).encode() + b"\x00\xfe"
    return Exchange(
        RecordedRequest("POST", "https", "files.example.com", 443, "/blob", (), (), body),
        RecordedResponse(200, "OK", (("content-type", "application/octet-stream"),), body),
    )


def planted_members(secrets: list[Planted]) -> tuple[dict[str, bytes], dict[str, str], list[str]]:
    """Spread the corpus over env, prompts, traces, cassettes, step env and tool output; then plant all of
    it again in a latin-1 file and a binary member (bytes that are not UTF-8 around the secrets)."""
    slots: dict[str, list[str]] = {
        k: [] for k in ("env", "prompt", "json", "trace", "cassette", "stdout", "file")
    }
    for i, p in enumerate(secrets):
        # A base64 secret is a whole value: a JSON string of its own.
        slots["json" if p.kind == "base64" else list(slots)[i % len(slots)]].append(p.context)
    lines = [p.context for p in secrets if p.kind != "base64"]
    span = {
        "trace_id": TRACE_ID, "span_id": ROOT_SPAN, "parent_span_id": None, "name": "tool.call",
        "kind": "INTERNAL", "start_time_unix_nano": 1_764_000_000_000_000_000,
        "end_time_unix_nano": 1_764_000_001_000_000_000,
        "attributes": {"tool.output": "\n".join(slots["trace"]), "tool.name": "shell"},
        "events": [], "status": {"code": "OK", "description": None},
    }  # fmt: skip
    bearer = [p.value for p in secrets if p.kind == "bearer"]
    cassette = [
        exchange(
            {"messages": [{"role": "user", "content": c}]},
            [("Authorization", f"Bearer {bearer[0]}"), ("X-Custom-Auth", bearer[1])],
            c,
        )
        for c in slots["cassette"]
    ]
    files = {
        "env/environment.txt": "".join(f"VAR_{i}={c}\n" for i, c in enumerate(slots["env"])).encode(),
        "prompts/0001-user.txt": "\n".join(slots["prompt"]).encode(),
        # Each JSON secret also as an object key: keys are text too.
        "prompts/0002-assistant.json": json.dumps(
            {"role": "assistant", "content": slots["json"], "seen": {c: 1 for c in slots["json"]}}
        ).encode(),
        "prompts/0003-notes-latin1.txt": ("Notes de réunion, café\n" + "\n".join(lines) + "\n").encode(
            "latin-1"
        ),
        "env/blob.bin": b"\x00\x01\xff\xfe" + "\n".join(lines).encode() + b"\x00\x80\n",
        # A binary response body: not UTF-8, stored as base64 in the cassette, secrets in its ASCII parts.
        "traces.jsonl": (json.dumps(span) + "\n").encode(),
        "cassettes/http.jsonl": b"".join(
            json.dumps(x.to_json()).encode() + b"\n" for x in [*cassette, binary_exchange(lines)]
        ),
    }
    env = {"OPENAI_API_KEY": secrets[0].value, "GITHUB_TOKEN": secrets[8].value, "LANG": "C.UTF-8"}
    return files, env, ["\n".join(slots["stdout"]) + "\n", "\n".join(slots["file"]) + "\n"]


@pytest.fixture()
def keyring() -> crypto.Keyring:
    return crypto.new_keyring("acme")


@pytest.fixture()
def corpus_pack(tmp_path: Path, keyring: crypto.Keyring) -> Path:
    files, env, (stdout, written) = planted_members(SECRETS)
    from runner.pack import manifest as mf

    flag = next(p.value for p in SECRETS if p.kind == "flag")
    agent = mf.Agent(
        "repo-debugger",
        command=mf.AgentCommand(
            argv=(
                "agent",
                "--api-key",
                SECRETS[3].value,
                "--password",
                flag,
                f"https://ci:{SECRETS[5].value}@git.example.com/x",
            ),
            env={
                "NOTHING_TO_SEE": next(p.value for p in SECRETS if p.context.startswith("SECRET_KEY=")),
                "LANG": "C.UTF-8",
            },
        ),
    )
    return make_pack(
        tmp_path,
        agent=agent,
        files=files,
        steps=[
            patch("p1", f"--- a/config.py\n+++ b/config.py\n@@ -1 +1 @@\n-KEY = None\n+KEY = '{SECRETS[1].value}'\n"),
            command("c1", ["./tool", f"--token={SECRETS[2].value}"], stdout=stdout.encode(),
                    outputs={"out/report.txt": written.encode()}, env=env,
                    compare=mf.Comparison(outputs={"out/report.txt": "exact"})),
        ],
        cassettes=(mf.CassetteIndex("cassettes/http.jsonl", 1, len(files["cassettes/http.jsonl"].splitlines())),),
        privacy=PrivacyOptions(keyring=keyring),
    )  # fmt: skip


def test_corpus_has_every_kind_and_enough_values() -> None:
    assert len(SECRETS) >= 50
    assert {p.kind for p in SECRETS} >= {
        "openai-key", "anthropic-key", "aws-access-key", "aws-secret-key", "gcp-api-key", "github-token",
        "gitlab-token", "slack-token", "jwt", "private-key", "bearer", "basic-auth", "url-credentials",
        "assignment", "email", "phone",
    }  # fmt: skip


def test_no_planted_secret_is_readable_anywhere_in_the_pack(corpus_pack: Path) -> None:
    raw = decompressed(corpus_pack).decode("utf-8", "replace")
    leaked = [(p.kind, form) for p in SECRETS for form in forms(p.value) if form in raw]
    assert leaked == []
    assert pack_read.verify(corpus_pack).ok


def test_every_secret_comes_back_exactly_with_the_key(corpus_pack: Path, keyring: crypto.Keyring) -> None:
    revealed = {s.value: s for s in access.reveal(corpus_pack, keyring)}
    missing = [p for p in SECRETS if p.value not in revealed]
    assert missing == []
    assert all(PLACEHOLDER_RE.fullmatch(s.token) for s in revealed.values())


def test_reveal_out_restores_the_original_members(
    corpus_pack: Path, keyring: crypto.Keyring, tmp_path: Path
) -> None:
    files, _, _ = planted_members(SECRETS)
    out = tmp_path / "revealed"
    access.reveal(corpus_pack, keyring, out)
    assert (out / "prompts/0001-user.txt").read_bytes() == files["prompts/0001-user.txt"]
    assert (out / "env/environment.txt").read_bytes() == files["env/environment.txt"]
    for name in ("prompts/0003-notes-latin1.txt", "env/blob.bin"):  # not UTF-8: back byte for byte
        assert (out / name).read_bytes() == files[name]
    assert json.loads((out / "prompts/0002-assistant.json").read_bytes()) == json.loads(
        files["prompts/0002-assistant.json"]
    )
    manifest = (out / "manifest.yaml").read_text()
    assert SECRETS[0].value in manifest and SECRETS[2].value in manifest


def test_the_manifest_records_policy_key_and_audit(corpus_pack: Path, keyring: crypto.Keyring) -> None:
    m = pack_summary.inspect(corpus_pack).manifest
    assert m.privacy.redaction_policy == "default-v1"
    assert m.privacy.key_ids == (keyring.newest.id,)
    counts = m.privacy.extra["audit"]["redactions"]
    assert counts["email"] >= 3 and counts["private-key"] >= 2
    codes = {f["code"] for f in m.privacy.extra["audit"]["findings"]}
    assert {"secret-in-file", "network-host"} <= codes


def test_json_members_stay_valid_and_traces_readable(
    corpus_pack: Path, tmp_path: Path, keyring: crypto.Keyring
) -> None:
    u = pack_read.unpack(corpus_pack, tmp_path / "u", keyring=keyring)
    spans = traces.read_spans(u.path / "traces.jsonl")
    assert "REDACTED_" in str(spans[0].attributes["tool.output"])
    json.loads((u.path / "prompts/0002-assistant.json").read_bytes())


def test_redacted_outputs_compare_equal_to_the_live_run(
    corpus_pack: Path, tmp_path: Path, keyring: crypto.Keyring
) -> None:
    _, _, (stdout, written) = planted_members(SECRETS)
    u = pack_read.unpack(corpus_pack, tmp_path / "u")
    (step,) = [s for s in u.manifest.steps if s.kind == "command"]
    assert "secrets" in step.compare.stdout and step.compare.outputs["out/report.txt"] == "text"
    recorded = u.artifact(step.expect.stdout).read_bytes()
    assert recorded != stdout.encode()
    assert compare.compare_text("stdout", recorded, stdout.encode(), step.compare.stdout) is None
    out_hash = step.expect.outputs["out/report.txt"]
    assert (
        compare.compare_file("out/report.txt", "text", u.artifact(out_hash).read_bytes(), written.encode())
        is None
    )
    # Another secret of the same kind still matches; a different kind or a changed line does not.
    victim = next(p.value for p in SECRETS if p.kind == "anthropic-key" and p.value in stdout)
    other = stdout.replace(victim, "sk-ant-api03-" + "Q" * 40)
    assert compare.compare_text("stdout", recorded, other.encode(), step.compare.stdout) is None
    worse = stdout.replace(victim, "not a secret at all")
    assert compare.compare_text("stdout", recorded, worse.encode(), step.compare.stdout) is not None


def test_cassette_requests_still_match_live_ones_redacted_by_the_proxy(
    corpus_pack: Path, tmp_path: Path
) -> None:
    from proxy.cassette import read_exchanges

    u = pack_read.unpack(corpus_pack, tmp_path / "u")
    recorded = read_exchanges(u.path / "cassettes/http.jsonl")
    files, _, _ = planted_members(SECRETS)
    originals = [Exchange.from_json(json.loads(line)) for line in files["cassettes/http.jsonl"].splitlines()]
    proxy = Redactor(b"the proxy's own key")  # replay redacts live requests under its own key
    norm = Normaliser()
    for live, rec in zip(originals, recorded, strict=True):
        assert live.request.body != rec.request.body
        assert norm(live.request.redacted(proxy)) == norm(rec.request)


def test_redaction_can_be_turned_off_explicitly(tmp_path: Path) -> None:
    p = make_pack(
        tmp_path,
        files={"prompts/0001-user.txt": SECRETS[0].value.encode()},
        privacy=PrivacyOptions(policy=None),
    )
    assert SECRETS[0].value in decompressed(p).decode()
    assert pack_summary.inspect(p).manifest.privacy.redaction_policy is None


def test_without_a_keyring_secrets_are_masked_and_originals_dropped(
    tmp_path: Path, keyring: crypto.Keyring
) -> None:
    p = make_pack(tmp_path, files={"prompts/0001-user.txt": SECRETS[0].value.encode()})
    assert SECRETS[0].value not in decompressed(p).decode()
    m = pack_summary.inspect(p).manifest
    assert m.privacy.redaction_policy == "default-v1" and m.privacy.key_ids == ()
    with pytest.raises(PrivacyError, match="no sealed originals"):
        access.reveal(p, keyring)


def test_unknown_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="unknown redaction policy"):
        make_pack(tmp_path, privacy=PrivacyOptions(policy="default-v9"))


def test_strict_policy_also_masks_ip_addresses(tmp_path: Path) -> None:
    text = b"connected to 203.0.113.42 as deploy\n"
    default = make_pack(tmp_path, name="d.tar.zst", files={"prompts/0001-user.txt": text})
    strict = make_pack(
        tmp_path,
        name="s.tar.zst",
        files={"prompts/0001-user.txt": text},
        privacy=PrivacyOptions(policy="strict-v1"),
    )
    assert b"203.0.113.42" in decompressed(default)
    assert b"203.0.113.42" not in decompressed(strict)
    assert pack_summary.inspect(strict).manifest.privacy.redaction_policy == "strict-v1"


def test_members_that_are_not_utf8_are_redacted_and_every_other_byte_kept(
    tmp_path: Path, keyring: crypto.Keyring
) -> None:
    secret = SECRETS[0].value
    blob = b"\x00\x01binary " + secret.encode() + b" \xff\xfe\x00"
    latin1 = f"caf\u00e9 cr\u00e8me\nDB_PASS=hunter2hunter2\nkey {secret}\n".encode("latin-1")
    files = {"env/blob.bin": blob, "prompts/0001-notes.txt": latin1}
    p = make_pack(tmp_path, files=files, privacy=PrivacyOptions(keyring=keyring))
    u = pack_read.unpack(p, tmp_path / "u")
    masked = (u.path / "env/blob.bin").read_bytes()
    assert secret.encode() not in masked
    assert masked.startswith(b"\x00\x01binary REDACTED_openai-key_") and masked.endswith(b" \xff\xfe\x00")
    notes = (u.path / "prompts/0001-notes.txt").read_bytes()
    assert b"hunter2hunter2" not in notes and secret.encode() not in notes
    assert notes.startswith("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    out = tmp_path / "revealed"
    access.reveal(p, keyring, out)
    assert (out / "env/blob.bin").read_bytes() == blob
    assert (out / "prompts/0001-notes.txt").read_bytes() == latin1


def test_a_base64_value_holding_a_secret_is_replaced_whole(tmp_path: Path, keyring: crypto.Keyring) -> None:
    import base64

    inner = base64.b64encode(b'{"user": "ci", "password": "opensesame42"}').decode()
    harmless = base64.b64encode(b"just some text, nothing to hide here").decode()
    doc = json.dumps({"data": inner, "other": harmless}).encode()
    p = make_pack(tmp_path, files={"prompts/0001-data.json": doc}, privacy=PrivacyOptions(keyring=keyring))
    u = pack_read.unpack(p, tmp_path / "u")
    data = json.loads((u.path / "prompts/0001-data.json").read_bytes())
    assert data["data"].startswith("REDACTED_base64_") and data["other"] == harmless
    assert u.manifest.privacy.extra["audit"]["redactions"]["base64"] == 1
    assert inner in {s.value for s in access.reveal(p, keyring)}


def test_allowed_keys_are_kept_and_denied_keys_masked_whatever_their_value(tmp_path: Path) -> None:
    p = make_pack(
        tmp_path,
        steps=[
            command("c1", ["true"], env={"LANG": "C.UTF-8", "MY_SERVICE_TOKEN": "plainword", "PWD": "/w"})
        ],
    )
    env = dict(pack_summary.inspect(p).manifest.steps[0].env)  # type: ignore[union-attr]
    assert env["LANG"] == "C.UTF-8" and env["PWD"] == "/w"
    assert env["MY_SERVICE_TOKEN"].startswith("REDACTED_")


def test_cassette_headers_and_query_parameters_are_masked_by_name(tmp_path: Path) -> None:
    from runner.pack import manifest as mf

    x = Exchange(
        RecordedRequest("GET", "https", "maps.example.com", 443, "/v1/geo", (("key", "plainvalue1"), ("q", "paris")),
                        (("x-api-key", "opaquevalue2"), ("accept", "*/*")), b""),
        RecordedResponse(200, "OK", (("set-cookie", "sid=opaquevalue3"),), b"{}"),
    )  # fmt: skip
    p = make_pack(
        tmp_path,
        files={"cassettes/http.jsonl": json.dumps(x.to_json()).encode() + b"\n"},
        cassettes=(mf.CassetteIndex("cassettes/http.jsonl", 1, 1),),
    )
    raw = decompressed(p)
    assert not any(v in raw for v in (b"plainvalue1", b"opaquevalue2", b"opaquevalue3"))
    assert b"paris" in raw and b"*/*" in raw


def test_with_the_key_unpack_restores_the_patches_so_they_apply_to_the_base(
    tmp_path: Path, keyring: crypto.Keyring
) -> None:
    key = SECRETS[0].value
    diff = f"--- a/settings.py\n+++ b/settings.py\n@@ -1,2 +1,2 @@\n API_KEY = '{key}'\n-DEBUG = True\n+DEBUG = False\n"
    p = make_pack(tmp_path, steps=[patch("p1", diff)], privacy=PrivacyOptions(keyring=keyring))
    masked = pack_read.unpack(p, tmp_path / "masked")
    assert key not in (masked.path / "patches/0001.diff").read_text()
    keyed = pack_read.unpack(p, tmp_path / "keyed", keyring=keyring)
    assert (keyed.path / "patches/0001.diff").read_text() == diff
    codes = {f["code"] for f in keyed.manifest.privacy.extra["audit"]["findings"]}
    assert "secret-in-file" in codes


def test_a_json_line_with_an_escaped_lone_surrogate_is_redacted_not_a_crash(tmp_path: Path) -> None:
    line = json.dumps({"note": "\ud800 broken", "token": SECRETS[0].value}) + "\n"
    p = make_pack(tmp_path, files={"prompts/0001-odd.json": line.encode()})
    u = pack_read.unpack(p, tmp_path / "u")
    out = (u.path / "prompts/0001-odd.json").read_text()
    assert SECRETS[0].value not in out and json.loads(out)["note"] == "\ud800 broken"


def test_record_through_the_cli_keeps_argv_and_latin1_files_free_of_secrets(tmp_path: Path) -> None:
    """`runner record -- agent --api-key sk-... https://user:pw@host` with a latin-1 file in the dirty tree:
    neither the command line in the manifest nor the baseline diff and patch may carry a secret."""
    import os
    import subprocess
    import sys

    from tests.gitrepo import make_repo

    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})
    db_pass, flag, url_pw = "hunter2hunter2", "pl41nfl4gv4lue", "urlpw9urlpw9"
    (repo / "notes-latin1.txt").write_bytes(f"caf\u00e9\nDB_PASS={db_pass}\n".encode("latin-1"))
    agent = f"open('b.txt', 'wb').write('cr\\u00e8me SECRET_KEY={db_pass}x\\n'.encode('latin-1'))"
    out = tmp_path / "p.tar.zst"
    argv = [
        "python",
        "-c",
        agent,
        "--api-key",
        SECRETS[0].value,
        "--password",
        flag,
        f"https://u:{url_pw}@h/x",
    ]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(Path.cwd()),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "record", "--out", str(out), "--no-http", "--check", "true", "--", *argv],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    raw = decompressed(out)
    for secret in (SECRETS[0].value, flag, url_pw, db_pass):
        assert secret.encode() not in raw, secret
    assert "caf\u00e9".encode("latin-1") in raw  # the rest of the latin-1 file is still there


def test_a_short_json_value_holding_a_secret_is_replaced_and_counted_on_every_line(tmp_path: Path) -> None:
    """Short texts found clean are remembered; those that change never are: each occurrence is replaced
    and counted, and a denied key's value goes on every line, not only the first."""
    secret = "sk-" + "Q1w2E3r4" * 3  # a short value, as JSON keys and ids are
    lines = [{"name": "llm", "key": secret, "password": "pw1", "n": i} for i in range(3)]
    traces_text = "".join(json.dumps(line) + "\n" for line in lines).encode()
    p = make_pack(tmp_path, files={"traces.jsonl": traces_text})
    data = dict(raw_members(p))["traces.jsonl"]
    assert secret.encode() not in data and b"pw1" not in data and data.count(b'"name":"llm"') == 3
    counts = pack_summary.inspect(p).manifest.privacy.extra["audit"]["redactions"]
    assert counts["openai-key"] == 3 and counts["credential"] == 3
