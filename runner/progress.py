"""Progress of long work (image builds, installs): a small protocol stages report to, and a rich view of it.

Stages call `step(title)` when a phase begins and `line(text)` for each line of tool output; they keep full
logs in files themselves. The CLI picks the implementation: `LiveLog` (spinner, elapsed time and the last
lines of output, on stderr) for people, `Silent` for machine output and tests. Titles and lines often quote
tools or packs: `LiveLog` shows them as `Text` through `runner.display.visible` (no markup, no raw control
characters: a tool's colour codes or a pack's escape sequence cannot redraw the screen under the live view).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from runner.display import visible, visible_text

__all__ = ["LiveLog", "Progress", "Silent", "run_logged", "tail"]


class Progress(Protocol):
    def step(self, title: str) -> None: ...

    def line(self, text: str) -> None: ...

    def done(self, message: str) -> None: ...


class Silent:
    def step(self, title: str) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def done(self, message: str) -> None:
        pass


class LiveLog:
    """A spinner with the current step and its elapsed time over the last `tail` lines of output."""

    def __init__(self, console: Console, tail: int = 6) -> None:
        self._console = console
        self._lines: deque[str] = deque(maxlen=tail)
        self._title = ""
        self._since = time.monotonic()
        self._spinner = Spinner("dots")
        self._live = Live(console=console, transient=True, refresh_per_second=8, get_renderable=self._render)

    def __enter__(self) -> LiveLog:
        self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()

    def _render(self) -> Group:
        self._spinner.text = Text(f"{self._title}  {time.monotonic() - self._since:.0f}s", style="bold")
        width = max(self._console.width - 4, 20)
        tail = [Text("  " + line[:width], style="dim", no_wrap=True) for line in self._lines]
        return Group(self._spinner, *tail)

    def step(self, title: str) -> None:
        if not self._console.is_terminal:
            # No live view without a terminal (CI): each step becomes one plain line instead.
            self._console.print(visible_text(f"{title} ..."), highlight=False)
        self._title = visible(title)
        self._since = time.monotonic()
        self._lines.clear()

    def line(self, text: str) -> None:
        text = text.rstrip()
        if text:
            self._lines.append(visible(text))

    def done(self, message: str) -> None:
        self._console.print(visible_text(message, newlines=True), highlight=False)


def run_logged(
    argv: Sequence[str],
    *,
    log: Path,
    progress: Progress,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `argv` with no stdin, appending its merged output to `log` and feeding each line to `progress`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as sink:
        sink.write(f"$ {shlex.join(argv)}\n")
        sink.flush()
        with subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            text=True,
            errors="replace",
        ) as proc:
            assert proc.stdout is not None
            for text in proc.stdout:
                sink.write(text)
                progress.line(text)
        sink.write(f"[exit {proc.returncode}]\n")
    return proc.returncode


def tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages; says so when there is none."""
    try:
        with log.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - 64 * 1024, 0))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {log})"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or f"({log} is empty)"
