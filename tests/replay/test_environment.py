from __future__ import annotations

import json
from pathlib import Path

from runner.replay.environment import _snapshot_warnings, requirements


def test_only_plain_pins_reach_pip() -> None:
    freeze = "\n".join(
        [
            "pytest==8.3.4",
            "Requests==2.32.3  # a comment",
            "--index-url https://evil.example.invalid/simple",
            "-e git+https://example.invalid/x.git#egg=x",
            "evil @ file:///etc/passwd",
            "pkg==1.0; rm -rf /",
            "zope.interface==7.1",
            "pytest==8.3.4",
            "",
        ]
    )
    keep, warnings = requirements(freeze)
    assert keep == ["pytest==8.3.4", "Requests==2.32.3", "zope.interface==7.1"]
    assert len(warnings) == 4
    assert all("not installed" in w for w in warnings)


def test_editable_and_url_installs_become_warnings(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "snapshot.json").write_text(
        json.dumps(
            {
                "packages": [
                    {"name": "pytest", "version": "8.3.4"},
                    {"name": "mytool", "version": "0.1", "editable": True, "direct_url": "file:///src"},
                    {"name": "fork", "version": "1.0", "direct_url": "git+https://example.invalid/f"},
                ]
            }
        )
    )
    warnings = _snapshot_warnings(tmp_path)
    assert warnings == [
        "mytool 0.1 was installed editable; not in the replay image",
        "fork 1.0 was installed from a URL; not in the replay image",
    ]
    (tmp_path / "env" / "snapshot.json").write_text("{not json")
    assert "not readable" in _snapshot_warnings(tmp_path)[0]
