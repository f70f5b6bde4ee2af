"""Build the page from packs and run folders, and write it out as a static site.

Inputs: paths (repro packs, replay run folders) and, for the served view only, a keyring that reveals the
originals of masked values. Outputs: the view data (`build`), the page's files in memory (`page_files`),
a static site folder (`write_site`). Rules:
- Packs are verified and unpacked into a private temporary folder (`runner.pack.read.unpack`, masked), or
  revealed there by `runner.privacy.access.reveal` when a keyring is given; nothing is left behind.
- The data is embedded in index.html as a `<script type="application/json">` block with `<`, U+2028 and
  U+2029 escaped, so no text from a pack can end the block; the page reads it with `textContent` and puts
  every value into the DOM as text. It works from `file://` and loads nothing from anywhere else.
- `write_site` never writes revealed values (a `build` made with a keyring is refused) and writes into a
  temporary folder beside `out`, renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from runner.errors import RunnerError, UsageError
from runner.pack import read as pack_read
from runner.privacy import access
from runner.privacy.crypto import Keyring
from runner.replay.outcome import PackOutcome
from runner.view.pack import pack_view
from runner.view.runs import is_run_dir, run_view

__all__ = ["ASSETS", "build", "embed_json", "page_files", "write_run_views", "write_site"]

ASSETS = ("view.css", "view.js")


def _pack_source(path: Path, scratch: Path, keyring: Keyring | None) -> dict[str, Any]:
    dest = scratch / f"pack-{len(list(scratch.iterdir()))}"
    if keyring is not None:
        access.reveal(path, keyring, out=dest)  # verifies the whole pack first
        return pack_view(path.name, dest, pack_read.read_manifest(path)[0], revealed=True)
    # No keyring here: unpacking with one also puts originals back into the patches (what replay needs).
    unpacked = pack_read.unpack(path, dest)
    return pack_view(path.name, unpacked.path, unpacked.manifest)


def build(paths: list[Path], keyring: Keyring | None = None) -> dict[str, Any]:
    """The view data of every pack and run folder in `paths`, in order; UsageError for anything else.
    With `keyring` the packs are revealed (original values put back, encrypted payloads opened); without
    one they are shown masked, and a pack with encrypted payloads is refused (PrivacyError: --key)."""
    if not paths:
        raise UsageError(
            "nothing to view: name a repro pack (.tar.zst) or a replay run folder (runs/<pack>/<run>)"
        )
    sources: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="runner-view-") as tmp:
        scratch = Path(tmp)
        for path in paths:
            if is_run_dir(path):
                sources.append(run_view(path))
            elif path.is_file():
                sources.append(_pack_source(path, scratch, keyring))
            else:
                raise UsageError(
                    f"{path}: neither a repro pack nor a replay run folder (one holding report.json); "
                    "name a .tar.zst or runs/<pack>/<run>"
                )
    return {"version": 1, "revealed": keyring is not None, "sources": sources}


def embed_json(data: Any) -> str:
    """JSON safe inside a `<script>` block: no `<` (so no `</script>` or `<!--`), no U+2028/U+2029."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _asset(name: str) -> str:
    return resources.files("runner.view.assets").joinpath(name).read_text(encoding="utf-8")


def page_files(data: dict[str, Any]) -> dict[str, bytes]:
    """The page's files by relative name: index.html (with the data embedded), its CSS and script."""
    html = _asset("index.html").replace("{{DATA}}", embed_json(data))
    return {"index.html": html.encode(), **{name: _asset(name).encode() for name in ASSETS}}


def write_site(data: dict[str, Any], out: Path) -> Path:
    """Write the static site into `out` (absent or empty); return the path of its index.html."""
    if data.get("revealed"):
        raise UsageError("a static export never holds revealed values: drop --key, or serve the view instead")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out}: exists and is not an empty folder; name a new folder for --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        for name, content in page_files(data).items():
            (staging / name).write_bytes(content)
        os.chmod(staging, 0o755)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / "index.html"


def write_run_views(
    runs: Iterable[tuple[Path, PackOutcome]],
    keyring: Keyring | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write `RUN_DIR/view/` (masked: the pack and its run folder) for each replayed pack; a view that
    cannot be built is skipped with a warning, never failing the replay it describes."""
    written: list[Path] = []
    for pack, outcome in runs:
        if not outcome.run_dir or not (Path(outcome.run_dir) / "report.json").is_file():
            continue
        run = Path(outcome.run_dir)
        try:
            written.append(write_site(build([run, pack]), run / "view"))  # the replay first
        except RunnerError as e:
            if warn is not None:
                warn(f"no view for {run}: {e}")
    return written
