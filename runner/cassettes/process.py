"""Runs the cassette proxy (proxy/main.py) as a local process on 127.0.0.1, in record or replay mode.

Input: ProxySettings (mode, cassette, a work folder for the CA, logs and report). Output: a running
proxy (URL, port, CA) inside a `with` block, and its Report once stopped. The same program runs here and
in the sidecar container (`mitmdump_args` gives both its arguments); the addon also runs in mitmproxy's
test harness and in a plain `mitmdump -s proxy/addon.py`.
Rules: listens on loopback only, on a free port chosen by the OS. The port is bound here, before the proxy
starts, and the listening socket is handed to it (proxy.listen): the URL is known at once and a client
may connect right away, its connection waiting in the socket's backlog until the proxy accepts it.
`start()` waits until the proxy listens; `start(wait=False)` returns at once and `wait_ready()` waits
later. Stops with SIGTERM so the addon writes its report, kills it after a timeout; cleans up even when
start fails, and a start failure carries the tail of the proxy's log.
Secrets: the redaction key goes to the proxy in a 0600 file of the work folder (`redact.key`, a fresh
random key when none is given), never on its command line; recording, the proxy writes the original of
every placeholder it makes to `originals.jsonl` (0600) there. `recording_key` picks the key a recording
proxy must use (the pack's: the tenant keyring's redaction key), and `sealing_options` hands that key
and those originals to the pack builder, so the proxy's placeholders are the pack's and get sealed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from types import TracebackType
from typing import TYPE_CHECKING

import proxy
from proxy.ready import Mode, find_ready
from runner.cassettes.tls import CertificateAuthority, default_bundle, make_ca
from runner.errors import ProxyError

if TYPE_CHECKING:  # imported where used: a recording starts its proxy before it needs these
    from proxy.report import Report
    from runner.privacy.mask import PrivacyOptions

__all__ = [
    "KEY_FILE",
    "ORIGINALS_FILE",
    "PROGRAM_PATH",
    "ProxyProcess",
    "ProxySettings",
    "mitmdump_args",
    "recording_key",
    "sealing_options",
]

PROGRAM_PATH = Path(proxy.__file__).resolve().parent / "main.py"  # run by path: the proxy package beside it
KEY_FILE = "redact.key"  # in the work folder
ORIGINALS_FILE = "originals.jsonl"  # in the work folder; never in the cassette's folder


@dataclass(frozen=True)
class ProxySettings:
    mode: Mode
    cassette: Path
    workdir: Path  # holds confdir/, proxy.log, report.json, redact.key and (record) originals.jsonl
    redact_key: str = ""  # the pack's key (see recording_key); empty: a fresh random one
    ignore_fields: tuple[str, ...] | None = None  # None: the addon's defaults
    pace: float = 0.0
    upstream_ca: Path | None = None  # record: the CA bundle verifying real servers (default: the system's)
    ca: CertificateAuthority | None = None  # None: a fresh CA in workdir/confdir
    start_timeout: float = 30.0
    stop_timeout: float = 15.0


def mitmdump_args(
    settings: ProxySettings,
    *,
    confdir: PurePath,
    cassette: PurePath,
    report: PurePath,
    upstream_ca: PurePath | None = None,
    listen_host: str = "127.0.0.1",
    listen_port: int = 0,
    key_file: PurePath | None = None,
    originals: PurePath | None = None,
    listen_fd: int | None = None,
) -> list[str]:
    """The arguments of proxy/main.py (mitmdump's) running the addon with `settings`, with every path as
    the proxy process sees it: the local process passes host paths, the sidecar container its own.
    The key itself is never an argument (any user sees argv in `ps`): only the file holding it."""
    sets = {
        "confdir": str(confdir),
        "cassette_mode": settings.mode,
        "cassette_path": str(cassette),
        "cassette_report": str(report),
        "cassette_pace": str(settings.pace),
        "termlog_verbosity": "info",
    }
    if key_file is not None:
        sets["cassette_redact_key_file"] = str(key_file)
    if originals is not None:
        sets["cassette_secrets"] = str(originals)
    if upstream_ca is not None:
        sets["ssl_verify_upstream_trusted_ca"] = str(upstream_ca)
    if listen_fd is not None:
        sets["cassette_listen_fd"] = str(listen_fd)
    argv = ["--listen-host", listen_host, "--listen-port", str(listen_port)]
    for name, value in sets.items():
        argv += ["--set", f"{name}={value}"]
    for field in settings.ignore_fields or ():
        argv += ["--set", f"cassette_ignore_fields={field}"]
    return argv


class ProxyProcess:
    """`with ProxyProcess(settings) as p:` point clients at `p.url`, trusting `p.ca.cert_path`.

    A subclass that runs the proxy in another network namespace sets `hand_over_socket = False`: a socket
    bound here would be in this process's namespace, so the proxy binds its own and `port` is known once
    it is ready."""

    hand_over_socket = True

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.log_path = settings.workdir / "proxy.log"
        self.report_path = settings.workdir / "report.json"
        self.ca = settings.ca
        self.port = 0
        self.report: Report | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._listening = threading.Event()
        self._ready = False  # the proxy said it accepts on `port`
        self._socket: socket.socket | None = None

    @property
    def ready(self) -> bool:
        """The proxy said it accepts on `port` (until then, connections wait in the socket's backlog)."""
        return self._listening.is_set() and self._ready

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        assert self.ca is not None
        s = self.settings
        # Recording verifies real servers against this machine's bundle (corporate TLS proxies included).
        upstream_ca = s.upstream_ca or (default_bundle() if s.mode == "record" else None)
        args = mitmdump_args(
            s,
            confdir=self.ca.confdir,
            cassette=s.cassette,
            report=self.report_path,
            upstream_ca=upstream_ca,
            key_file=s.workdir / KEY_FILE,
            originals=s.workdir / ORIGINALS_FILE if s.mode == "record" else None,
            listen_fd=self._socket.fileno() if self._socket is not None else None,
        )
        return [sys.executable, str(PROGRAM_PATH), *args]

    def start(self, wait: bool = True) -> None:
        """Start the proxy on a port bound here; with `wait`, return once it listens (see wait_ready)."""
        s = self.settings
        s.workdir.mkdir(parents=True, exist_ok=True)
        if self.ca is None:
            self.ca = make_ca(s.workdir / "confdir")
        self.report_path.unlink(missing_ok=True)
        _write_private(s.workdir / KEY_FILE, s.redact_key or os.urandom(32).hex())  # as secrets.token_hex
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            env.pop(name, None)  # the proxy itself must never chain to another proxy
        if self.hand_over_socket:
            self._socket = socket.create_server(("127.0.0.1", 0), backlog=socket.SOMAXCONN)
            self.port = self._socket.getsockname()[1]
        try:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                pass_fds=(self._socket.fileno(),) if self._socket is not None else (),
            )
        except OSError as e:
            raise ProxyError(
                f"cannot start the cassette proxy ({e.strerror}); is mitmproxy installed?"
            ) from e
        finally:
            # The proxy holds the socket now: if it dies, waiting clients are refused rather than left hanging.
            if self._socket is not None:
                self._socket.close()
            self._socket = None
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the proxy accepts on its port; a ProxyError with its log's tail when it never does."""
        s = self.settings
        assert self._proc is not None, "wait_ready needs a started proxy"
        if not self._listening.wait(s.start_timeout) or not self._ready:
            try:  # its output ended: give the process a moment to exit, so its code can be reported
                code: int | None = self._proc.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            why = (
                f"exited with code {code}"
                if code is not None
                else f"did not listen within {s.start_timeout:.0f}s"
            )
            error = ProxyError(f"the cassette proxy {why}; see {self.log_path}")
            error.add_note(self._log_tail())
            raise error

    def stop(self) -> Report | None:
        """Stop the proxy (SIGTERM, then kill after the timeout) and return its report."""
        proc = self._proc
        if proc is None:
            return None
        self._proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.settings.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if self.report_path.is_file():
            from proxy.report import read_report

            try:
                self.report = read_report(self.report_path)
            except (OSError, ValueError) as e:
                raise ProxyError(
                    f"the cassette proxy wrote an unreadable report {self.report_path}: {e}"
                ) from e
        return self.report

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self.log_path.open("ab") as log:
            for line in self._proc.stdout:
                log.write(line)
                log.flush()
                if not self._listening.is_set():
                    ready = find_ready(line.decode("utf-8", "replace"))
                    if ready is not None:
                        if not self.hand_over_socket:
                            self.port = ready.port
                        self._ready = ready.port == self.port
                        self._listening.set()
        self._listening.set()  # the process ended: stop waiting

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no proxy log)"

    def __enter__(self) -> ProxyProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _write_private(path: Path, text: str) -> None:
    """`text` into a file only its owner reads (0600 from its creation; a planted link is not followed)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def recording_key(options: PrivacyOptions | None = None) -> str:
    """The `redact_key` of a recording proxy: the redaction key of the pack it records for (the tenant
    keyring's, from $RUNNER_KEYRING by default), so its placeholders are the ones the pack builder makes
    for the same value; without a keyring "" (the proxy makes a fresh key, `sealing_options` passes it on).
    Without `options`, only the keyring is read (runner.privacy.crypto), not the rest of the settings
    (runner.privacy.mask, ~0.15 s): a recording starts its proxy before its agent."""
    if options is not None:
        keyring = options.keyring
    elif ring := os.environ.get("RUNNER_KEYRING"):  # as PrivacyOptions.from_env reads it
        from runner.privacy.crypto import load_keyring

        keyring = load_keyring(Path(ring))
    else:
        keyring = None
    return keyring.redaction_key.hex() if keyring is not None else ""


def sealing_options(workdir: Path, options: PrivacyOptions | None = None) -> PrivacyOptions:
    """The privacy options to build the pack of a recording whose proxy worked in `workdir`: `options`
    ($RUNNER_* by default) plus the proxy's key (the pack's key when no keyring gives one) and the
    originals of the proxy's placeholders, sealed with the pack's other secrets under the tenant key."""
    from proxy.originals import read_originals
    from proxy.redact import key_from_text
    from runner.privacy.mask import PrivacyOptions, Secret

    options = PrivacyOptions.from_env() if options is None else options
    key_path = workdir / KEY_FILE
    if not key_path.is_file():
        return options  # no proxy ran
    key = key_from_text(key_path.read_text(encoding="utf-8").strip())
    known = tuple(
        Secret(token, kind, value) for token, kind, value in read_originals(workdir / ORIGINALS_FILE)
    )
    return replace(options, redaction_key=options.redaction_key or key, known=options.known + known)
