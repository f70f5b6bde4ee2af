"""The recording proxy of a session: its lifecycle, the environment it gives the agent, its exchanges.

Inputs: the session's working folder and key, the CA bundle verifying real servers, and whether loopback
traffic is recorded and os.environ is set. Outputs: `env` (proxy and CA trust variables for the agent's
processes) and, at `stop`, one `http` span per recorded exchange, the number of exchanges and of those to a
model API path (`model_exchanges`).
Rules: built on runner.cassettes.process (the proxy program on this host, writing `http.jsonl` in the working
folder, redacting request headers under the session key). `start` does not wait for the proxy: its port
is bound at once and the agent's first connections wait in that socket's backlog until the proxy takes
them, so the agent starts ~1 s sooner and no request is lost. Its CA is the spare the previous session
made (runner.recorder.spareca), else made now; `stop` makes the next one. `stop` waits for the proxy to
have started before stopping it; a proxy that never started is `failure` (a sentence for the summary's warnings), not
an error that would cost the session. With `set_environ`, os.environ holds `env` while the proxy runs and
is restored at `stop`; `stop` may be called again and then does nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ProxyError

if TYPE_CHECKING:
    from opentelemetry import trace as otel_trace
    from opentelemetry.context import Context

    from runner.cassettes.process import ProxyProcess

__all__ = ["RecordingProxy"]


class RecordingProxy:
    """A proxy recording every HTTP(S) exchange of the agent into `workdir/http.jsonl`."""

    def __init__(
        self, key: bytes, *, upstream_ca: Path | None, record_loopback: bool, set_environ: bool
    ) -> None:
        self.key = key
        self.upstream_ca = upstream_ca
        self.record_loopback = record_loopback
        self.set_environ = set_environ
        self.env: dict[str, str] = {}
        self.model_exchanges = 0  # of the exchanges counted by `stop`, those to a model API path
        self.failure: str | None = None  # set by `stop` when the proxy never started
        self._process: ProxyProcess | None = None
        self._saved_environ: dict[str, str | None] = {}

    def start(self, workdir: Path) -> None:
        # Imported here (~0.1 s: cryptography, for the CA) only by sessions that record HTTP, as
        # `import runner.recorder` is the SDK's.
        from runner.cassettes.process import ProxyProcess, ProxySettings, recording_key
        from runner.cassettes.tls import client_trust_env, write_trust_bundle
        from runner.recorder import spareca

        settings = ProxySettings(
            mode="record",
            cassette=workdir / "http.jsonl",
            workdir=workdir / "proxy",
            redact_key=recording_key(),  # the pack's redaction key: one value, one placeholder per pack
            upstream_ca=self.upstream_ca,
            ca=spareca.claim(workdir / "proxy" / "confdir"),  # None: the proxy makes its CA now
        )
        process = ProxyProcess(settings)
        try:
            process.start(wait=False)
        except BaseException:
            process.stop()
            raise
        self._process = process
        assert process.ca is not None
        bundle = write_trust_bundle(process.ca, workdir / "trust" / "ca-bundle.pem")
        self.env = client_trust_env(bundle, process.url)
        if self.record_loopback:
            self.env["NO_PROXY"] = self.env["no_proxy"] = ""
        if self.set_environ:
            for name, value in self.env.items():
                self._saved_environ[name] = os.environ.get(name)
                os.environ[name] = value

    @property
    def ready(self) -> bool:
        """The proxy runs and takes connections (False before, and without a proxy)."""
        return self._process is not None and self._process.ready

    def agent_env(self, given: Mapping[str, str] | None) -> dict[str, str]:
        """The environment the agent's processes see: `given` (or the current one), plus the proxy's."""
        base = given if given is not None else os.environ
        return {**base, **self.env}

    def command_env(
        self, given: Mapping[str, str] | None, extra: Mapping[str, str]
    ) -> Mapping[str, str] | None:
        """The environment of a command the session runs: the agent's plus `extra`."""
        # None: the child inherits os.environ (proxy variables included) without copying it on every call.
        if given is None and self.set_environ and not extra:
            return None
        return {**self.agent_env(given), **extra}

    def stop(self, tracer: otel_trace.Tracer | None = None, parent: otel_trace.Span | None = None) -> int:
        """Stop the proxy, restore os.environ; with a tracer, add an `http` span (under `parent`) per
        recorded exchange. Returns the number of exchanges (0 when it was not running)."""
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ = {}
        process, self._process = self._process, None
        if process is None:
            return 0
        try:
            process.wait_ready()
        except ProxyError as e:
            self.failure = f"the recording proxy never started, so no HTTP exchange was recorded: {e}"
        process.stop()
        from runner.recorder import spareca

        spareca.make_spare()  # the next session's CA, now that this one's agent is done
        cassette = process.settings.cassette
        count = 0
        if cassette.is_file():
            import json  # here, as OpenTelemetry: `runner record` starts the proxy before its agent

            from opentelemetry import trace as otel_trace

            from runner.recorder.traffic import is_model_path

            context = otel_trace.set_span_in_context(parent) if parent is not None else None
            for line in cassette.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                count += 1
                exchange = json.loads(line)
                self.model_exchanges += is_model_path(str(exchange["request"].get("path", "")))
                if tracer is not None:
                    _http_span(tracer, context, exchange, count)
        return count


def _http_span(tracer: otel_trace.Tracer, context: Context | None, ex: dict[str, Any], index: int) -> None:
    from opentelemetry import trace as otel_trace

    from runner.pack.traces import SPAN_TYPE

    req, resp = ex["request"], ex["response"]
    start = int(float(ex.get("started") or time.time()) * 1e9)
    span = tracer.start_span(
        f"{req['method']} {req['host']}",
        context=context,
        kind=otel_trace.SpanKind.CLIENT,
        start_time=start,
        attributes={
            SPAN_TYPE: "http",
            "http.request.method": req["method"],
            "url.full": f"{req['scheme']}://{req['host']}:{req['port']}{req['path']}",
            "server.address": req["host"],
            "http.response.status_code": resp["status"],
            "runner.cassette.index": index,
        },
    )
    span.end(end_time=start + int(float(ex.get("duration") or 0) * 1e9))
