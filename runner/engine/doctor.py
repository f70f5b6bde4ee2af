"""Check that this machine can record and replay: the Docker engine, the runner's images, Python and libraries.

Input: whether to fix what is missing, and the base-image choice. Output: a `Checkup` listing what was found
and, for each missing thing, the command that fixes it. Rules: without `fix` nothing is changed; with `fix`
the engine is installed/started (runner.engine.ensure) and missing images are built (runner.images.ensure).
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from runner.display import visible, visible_text
from runner.engine import daemon as engine
from runner.engine import images, inventory
from runner.engine.host import BuildTrust
from runner.errors import EnvironmentProblem, RunnerError
from runner.progress import Progress, Silent

__all__ = ["LIBRARIES", "Checkup", "ImageCheck", "Problem", "check", "render_checkup"]

LIBRARIES = (
    "docker", "mitmproxy", "zstandard", "typer", "rich", "gitpython", "cryptography", "pyyaml",
    "jsonschema", "opentelemetry-sdk",
)  # fmt: skip


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str


@dataclass(frozen=True)
class ImageCheck:
    name: images.ImageRole
    tag: str
    present: bool
    id: str | None
    digests: tuple[str, ...] = ()


@dataclass(frozen=True)
class Checkup:
    engine: engine.EngineStatus | None
    images: tuple[ImageCheck, ...]
    python: str
    libraries: dict[str, str | None] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.engine is not None and self.engine.log_path is not None:
            data["engine"]["log_path"] = str(self.engine.log_path)
        data["ok"] = self.ok
        return data


def _libraries() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def check(
    fix: bool = False,
    *,
    base_from: str | None = None,
    ca_bundle: Path | None = None,
    progress: Progress | None = None,
) -> Checkup:
    """Look at (and with `fix`, repair) the engine and the images; report what is missing and how to fix it."""
    progress = progress or Silent()
    problems: list[Problem] = []
    build_cmd = "runner images build" + (f" --base-from {base_from}" if base_from else "")

    libraries = _libraries()
    for name, version in libraries.items():
        if version is None:
            problems.append(Problem(f"Python library {name} is not installed", "make install"))

    status: engine.EngineStatus | None = None
    try:
        status = engine.ensure(fix, progress=progress)
    except EnvironmentProblem as e:
        problems.append(Problem(str(e), "runner doctor --fix"))

    checks: list[ImageCheck] = []
    planned: tuple[images.Planned, ...] = ()
    try:
        planned = images.plan(base_from)
    except RunnerError as e:
        problems.append(Problem(str(e), f"{build_cmd} --base-from IMAGE@sha256:..."))
    if status is not None and planned:
        client = engine.connect()
        with closing(client):
            if fix:
                try:
                    images.ensure(
                        client, base_from=base_from, trust=BuildTrust.from_host(ca_bundle), progress=progress
                    )
                except EnvironmentProblem as e:
                    problems.append(Problem(str(e), build_cmd))
            present = {tag: info for info in inventory.list_images(client) for tag in info.tags}
            for item in planned:
                info = present.get(item.tag)
                checks.append(
                    ImageCheck(item.name, item.tag, info is not None, info.id if info else None,
                               info.digests if info else ())
                )  # fmt: skip
                if info is None and not fix:
                    problems.append(Problem(f"image {item.tag} ({item.name}) is missing", build_cmd))

    return Checkup(
        engine=status,
        images=tuple(checks),
        python=f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        libraries=libraries,
        problems=tuple(problems),
    )


def render_checkup(found: Checkup) -> Group:
    """The findings as a rich renderable: one line per check, then each problem with its fix.

    What the engine and the image labels report is shown through `visible_text`: never markup, no raw
    control characters."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    if found.engine is not None:
        started = f", started now, log {found.engine.log_path}" if found.engine.started_by_us else ""
        engine_line = (
            f"Docker {found.engine.version} (API {found.engine.api_version}) via "
            f"{found.engine.reached_via}{started}"
        )
        table.add_row("engine", visible_text(engine_line))
    else:
        table.add_row("engine", Text("none answers", style="red"))
    for image in found.images:
        state = Text(visible(image.id[:19]) if image.id else "missing", style="" if image.present else "red")
        table.add_row(
            visible_text(f"{image.name} image"),
            Text.assemble(visible(f"{image.tag}  "), state, *(visible(f"  {d}") for d in image.digests)),
        )
    table.add_row("python", visible_text(found.python))
    for name, version in found.libraries.items():
        table.add_row(visible_text(name), visible_text(version) if version else Text("missing", style="red"))
    lines: list[Table | Text] = [table]
    for problem in found.problems:
        lines.append(
            Text.assemble(
                ("✗ ", "red"),
                visible(problem.what, newlines=True),
                "\n  fix: ",
                (visible(problem.fix), "bold"),
            )
        )
    lines.append(
        Text("all good", style="green")
        if found.ok
        else Text(f"{len(found.problems)} problem(s)", style="red")
    )
    return Group(*lines)
