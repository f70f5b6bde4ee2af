"""Replay one pack for a golden check, as `runner replay` does with its defaults.

Input: the pack, the folder for its run, where progress goes, and a keyring for packs whose payloads are
encrypted. Output: the pack's `PackOutcome`; its test steps decide `tests_pass`. Rules: Docker, with the
runner's own images (built when missing) and this machine's build trust; the engine connection is closed
afterwards. `runner golden check --replay` and the configuration gate (`replay: true`) both use it.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.privacy.crypto import Keyring
    from runner.progress import Progress
    from runner.replay.outcome import PackOutcome

__all__ = ["replay_pack"]


def replay_pack(
    pack: Path, runs_dir: Path, progress: Progress, keyring: Keyring | None = None
) -> PackOutcome:
    from runner.engine import daemon, images
    from runner.engine.host import BuildTrust
    from runner.replay import pipeline

    trust = BuildTrust.from_host(None)
    with closing(daemon.connect()) as client:
        own = images.ensure(client, trust=trust, progress=progress)
        options = pipeline.ReplayOptions(
            base_image=own.base.tag,
            proxy_image=own.proxy.tag,
            runs_dir=runs_dir,
            trust=trust,
            keyring=keyring,
        )
        return pipeline.replay(client, pack, options, progress=progress)
