"""A real OCI registry for tests: Debian's `docker-registry` on 127.0.0.1, open or behind htpasswd."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Registry:
    host: str
    storage: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(root: Path, htpasswd: Path | None = None) -> Iterator[Registry]:
    """`docker-registry` serving from `root`, with basic auth when `htpasswd` is given; stopped after."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed; `make engine` installs it")
    port = _free_port()
    auth = f"auth: {{htpasswd: {{realm: runner-test, path: {htpasswd}}}}}\n" if htpasswd else ""
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n{auth}"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    registry = Registry(f"127.0.0.1:{port}", root / "data", proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.1)
        yield registry
    finally:
        registry.stop()
