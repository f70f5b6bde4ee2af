"""`runner drift`, `runner diff` and `runner contract`: model behaviour over time, two recordings side by
side, and the prompts and tool schemas advertised to the model as a CI gate.

Inputs: packs (local or oci://), provider options, a contract baseline file.
Outputs: one line per call / difference / change; `drift --json/--markdown` and `diff --json` reports.
Exit codes: 0 when within the threshold / the same / the contract holds; 1 when a call or pack drifted, the
packs differ, or the contract widened; 2 bad input; 3 the provider cannot be reached or keeps failing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runner.cli.common import err_console, handles_errors, local_pack, say
from runner.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from runner.privacy.crypto import Keyring

__all__ = ["app"]

app = typer.Typer()
_KEY = typer.Option("--key", help="Tenant keyring: needed for packs with encrypted payloads.")


def _keyring(key: Path | None) -> Keyring | None:
    from runner.privacy import crypto

    return crypto.load_keyring(key) if key else None


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None


@app.command(
    "drift",
    help="Re-send recorded model calls (exact messages, tools, parameters, seed) to the live provider and "
    "score each answer against the recording (text, tool calls, finish reason, token usage).\n\n"
    "Credentials come from OPENAI_API_KEY / ANTHROPIC_API_KEY or --api-key-env and are never written. "
    "Exit 0 within the threshold, 1 when a call or pack falls under it, 3 when the provider cannot be reached.\n\n"
    "Example: runner drift pack.tar.zst --sample 5 --threshold 0.9 --markdown drift.md",
)
@handles_errors
def drift_cmd(
    packs: Annotated[list[str], typer.Argument(metavar="PACK...", help="Packs (.tar.zst or oci://REF).")],
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="An OpenAI- or Anthropic-compatible API base, e.g. http://127.0.0.1:8000/v1."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Send to this model instead of the recorded one.")
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, max=1.0, help="Lowest passing score.")
    ] = 0.9,
    sample: Annotated[
        int | None, typer.Option("--sample", min=1, help="Re-send this many calls per pack.")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="The environment variable holding the credential.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="Write the report as Markdown here.")
    ] = None,
    key: Annotated[Path | None, _KEY] = None,
) -> None:
    from runner.drift.check import check_packs, markdown
    from runner.drift.resend import Provider

    provider = Provider(base_url=base_url, model=model, api_key_env=api_key_env)
    report = check_packs(
        [local_pack(p) for p in packs], provider, threshold, sample, keyring=_keyring(key),
        progress=lambda line: err_console.print(line, markup=False, highlight=False),
    )  # fmt: skip
    for p in report.packs:
        head = "no model calls" if p.score is None else f"score {p.score:.3f}"
        say(f"{p.pack}: {head} ({len(p.calls)} of {p.total_calls} calls)", soft_wrap=True)
        for c in p.calls:
            s = c.score
            flag = "DRIFT " if s.score < threshold else "ok    "
            extra = f"; retried after HTTP {', '.join(c.retries)}" if c.retries else ""
            extra += f"; revision changed: {s.revision}" if s.revision else ""
            say(f"  {flag}call #{c.number} {c.api} {c.model}: {s.score:.3f} (text {s.text:.3f}, tools "
                f"{s.tools:.3f}, finish {s.finish:.0f}, usage {s.usage:.3f}){extra}", soft_wrap=True)  # fmt: skip
    if json_out:
        _write(json_out, json.dumps(report.to_json(), indent=2) + "\n")
    if markdown_out:
        _write(markdown_out, markdown(report) + "\n")
    if report.failed:
        say(f"drift: a score fell under {threshold}")
        raise typer.Exit(ExitCode.DIVERGED)


@app.command(
    "diff",
    help="Lay two recordings side by side: model parameters per call, prompts and tool schemas, the "
    "environment, patches and step outputs. The first difference is shown first.\n\n"
    "Exit 0 when the same, 1 when different.\n\nExample: runner diff good.tar.zst bad.tar.zst --json",
)
@handles_errors
def diff_cmd(
    pack_a: Annotated[str, typer.Argument(metavar="PACK_A")],
    pack_b: Annotated[str, typer.Argument(metavar="PACK_B")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the differences as JSON.")] = False,
    key: Annotated[Path | None, _KEY] = None,
) -> None:
    from runner.drift.calls import unpacked
    from runner.drift.packdiff import diff_packs

    keyring = _keyring(key)
    with unpacked(local_pack(pack_a), keyring) as a, unpacked(local_pack(pack_b), keyring) as b:
        differences = diff_packs(a, b)
    if as_json:
        # Machine output: printed as is, never escaped for the terminal like the lines below.
        print(
            json.dumps({"same": not differences, "differences": [d.__dict__ for d in differences]}, indent=2)
        )
    elif not differences:
        say("the two recordings are the same")
    else:
        count = f"{len(differences)} difference{'' if len(differences) == 1 else 's'}"
        say(f"{count}; the first: {differences[0].line()}", soft_wrap=True)
        for d in differences:
            say(f"  [{d.area}] {d.line()}", soft_wrap=True)
    if differences:
        raise typer.Exit(ExitCode.DIVERGED)


@app.command(
    "contract",
    help="Check the prompts and tool schemas a pack advertised to the model against a baseline. Fails when "
    "they widen what the agent may do (a new tool, enum value, type or property; a removed constraint); "
    "narrowing passes with a note; prompt changes are reported.\n\n"
    "Example: runner contract pack.tar.zst --baseline contract.json",
)
@handles_errors
def contract_cmd(
    pack: Annotated[str, typer.Argument(metavar="PACK")],
    baseline: Annotated[Path, typer.Option("--baseline", help="The contract baseline file (JSON).")],
    write: Annotated[
        bool, typer.Option("--write-baseline", help="Write the pack's contract as the baseline.")
    ] = False,
    strict_prompts: Annotated[
        bool, typer.Option("--strict-prompts", help="Fail on prompt text changes too.")
    ] = False,
    key: Annotated[Path | None, _KEY] = None,
) -> None:
    from runner.drift.calls import model_calls, unpacked
    from runner.drift.contract import compare, contract_of, read_baseline, write_baseline

    with unpacked(local_pack(pack), _keyring(key)) as up:
        current = contract_of(model_calls(up))
    if write:
        try:
            write_baseline(current, baseline)
        except OSError as e:
            raise UsageError(f"cannot write {baseline}: {e.strerror}") from None
        say(f"wrote {baseline}: {len(current.tools)} tools, {len(current.prompts)} prompts")
        return
    changes = compare(read_baseline(baseline), current)
    labels = {"widens": "WIDENS ", "narrows": "narrows", "prompt": "prompt "}
    for c in changes:
        say(f"  {labels[c.kind]} {c.where}: {c.detail}", soft_wrap=True)
    failing = [c for c in changes if c.kind == "widens" or (strict_prompts and c.kind == "prompt")]
    if failing:
        say(f"contract: {len(failing)} changes widen what the agent may do" if not strict_prompts
            else f"contract: {len(failing)} failing changes")  # fmt: skip
        raise typer.Exit(ExitCode.DIVERGED)
    say("contract holds" + (f" ({len(changes)} narrowing or prompt changes noted)" if changes else ""))
