"""Manifest assembly: sampling keeps blobs or hashes only; environment and llm defaults from what was seen."""

from __future__ import annotations

from pathlib import Path

from runner.pack import manifest as mf
from runner.pack import summary as pack_summary
from runner.pack.snapshot import REPLAYED_ENV
from runner.recorder import record
from runner.recorder.assembly import Sampling, llm_defaults, replayed_env, sampling
from tests.gitrepo import make_repo


def test_failing_only_keeps_hashes_but_no_blobs_for_a_passing_session_unless_slow(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"a.txt": "one\n"})

    def session_pack(name: str, **options: object) -> mf.Manifest:
        out = tmp_path / name
        with record(out=out, repo=repo, http=False, artifacts="failing-only", **options) as s:
            result = s.run_tool(["sh", "-c", "echo hello"])
        assert result.stdout == b"hello\n"
        return pack_summary.inspect(out).manifest

    lean = session_pack("lean.tar.zst")
    assert lean.artifacts == ()
    step = lean.steps[0]
    assert isinstance(step, mf.CommandStep) and step.expect == mf.Expectation(exit_code=0)
    kept = session_pack("slow.tar.zst", slow_threshold=0.0)
    kept_step = kept.steps[0]
    assert isinstance(kept_step, mf.CommandStep) and kept_step.expect.stdout is not None
    assert {a.sha256 for a in kept.artifacts} >= {kept_step.expect.stdout}


def test_sampling_keeps_blobs_for_all_or_a_failed_or_slow_session() -> None:
    assert sampling("all", failed=False, slow=False) == Sampling(True, "all")
    assert sampling("failing-only", failed=True, slow=True) == Sampling(True, "failed")
    assert sampling("failing-only", failed=False, slow=True) == Sampling(True, "slow")
    passed = sampling("failing-only", failed=False, slow=False)
    assert passed == Sampling(False, "passed") and passed.artifacts == "metadata-only"


def test_a_command_step_records_portable_variables_and_its_own_but_no_credential() -> None:
    given = {"LANG": "C.UTF-8", "HOME": "/home/me", "OPENAI_API_KEY": "sk-x"}
    env = replayed_env(given, {"MODE": "fast", "API_TOKEN": "t", "SESSION_ID": "s"})
    assert env == {**{k: v for k, v in given.items() if k in REPLAYED_ENV}, "MODE": "fast"}
    assert "HOME" not in env and "OPENAI_API_KEY" not in env


def test_llm_defaults_come_from_the_first_call_and_leave_out_what_is_out_of_range() -> None:
    assert llm_defaults(None) is None
    assert llm_defaults({"provider": "openai", "temperature": 0}) is None  # no model
    first = {"provider": "openai", "model": "m", "seed": 7, "temperature": 0.5, "top_p": 2, "max_tokens": 0}
    assert llm_defaults(first) == mf.LlmDefaults(provider="openai", model="m", seed=7, temperature=0.5)
    assert llm_defaults({"model": "m", "seed": 1.5}) == mf.LlmDefaults(provider="generic", model="m")
