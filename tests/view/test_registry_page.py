"""The served view's rollback POST: the page's token is required, and it runs `runner rollback`'s code path."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from runner.cli.view import registry_snapshot, rollback_action
from runner.view import serve, site
from tests.config.conftest import BROKEN, cli, gate, golden_pack, registry  # noqa: F401  (a fixture)
from tests.view.test_serve import running

TOKEN = "t" * 43


def _post(port: int, body: Any, token: str | None, origin: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
    if token is not None:
        headers[serve.TOKEN_HEADER] = token
    if origin is not None:
        headers["Origin"] = origin
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/api/rollback", body=json.dumps(body), headers=headers)
    resp = conn.getresponse()
    result = resp.status, json.loads(resp.read())
    conn.close()
    return result


def _server(root: Path) -> serve.ThreadingHTTPServer:
    data = {
        "version": 1,
        "revealed": False,
        "sources": [],
        "registry": {**registry_snapshot(root), "token": TOKEN},
    }
    return serve.make_server(site.page_files(data), 0, {"/api/rollback": rollback_action(root)}, TOKEN)


def _current(root: Path) -> int:
    out = cli("config", "current", "staging", "--json", "--registry", str(root))
    assert out.exit_code == 0, out.output
    version: int = json.loads(out.stdout)["version"]
    return version


def test_rollback_post_needs_the_token_and_records_the_reason(registry: Path) -> None:  # noqa: F811
    for n in (1, 2):
        assert cli("config", "promote", "staging", str(n), "--registry", str(registry)).exit_code == 0
    with running(_server(registry)) as port:
        ask = {"environment": "staging", "reason": "error rate up after v2"}
        assert _post(port, ask, None)[0] == 403
        assert _post(port, ask, "wrong" * 9)[0] == 403
        assert _post(port, ask, TOKEN, origin="http://attacker.example")[0] == 403
        assert _post(port, {"environment": "staging", "reason": "  "}, TOKEN)[0] == 400
        assert _current(registry) == 2  # nothing moved yet
        status, reply = _post(port, ask, TOKEN)
    assert status == 200 and reply["ok"], reply
    assert "staging: 2 -> version 1" in reply["message"]
    assert [e["version"] for e in reply["registry"]["environments"]] == [1]
    assert _current(registry) == 1
    log = cli("config", "history", "--registry", str(registry))
    assert "error rate up after v2" in log.output, log.output


def test_a_failed_gate_shows_its_report_and_changes_nothing(registry: Path) -> None:  # noqa: F811
    gate(registry)
    for n in (1, 2):
        golden_pack(registry, n)
        assert cli("config", "promote", "staging", str(n), "--registry", str(registry)).exit_code == 0
    (registry / "golden" / "v1" / "fix-add.tar.zst").unlink()
    golden_pack(registry, 1, diff=BROKEN)  # version 1 no longer holds its golden task
    with running(_server(registry)) as port:
        status, reply = _post(port, {"environment": "staging", "reason": "go back"}, TOKEN)
    assert status == 409 and not reply["ok"] and "golden gate failed" in reply["error"]
    assert any("FAILED" in line for line in reply["report"])
    assert _current(registry) == 2


def test_export_shows_environments_without_a_token(registry: Path, tmp_path: Path) -> None:  # noqa: F811
    assert cli("config", "promote", "staging", "1", "--registry", str(registry)).exit_code == 0
    out = tmp_path / "site"
    done = cli("view", "--registry", str(registry), "--out", str(out))
    assert done.exit_code == 0, done.output
    page = (out / "index.html").read_text()
    assert '"environments":[{"name":"staging"' in page and '"token"' not in page
