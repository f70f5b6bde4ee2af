"""The ready line is written and read by one module, so writer and readers cannot drift apart."""

from __future__ import annotations

from proxy.ready import MODES, Ready, find_ready, ready_line


def test_the_line_reads_back_as_written() -> None:
    for mode in MODES:
        line = ready_line(mode, [("127.0.0.1", 8080), ("::1", 8081)])
        assert line == f"cassette proxy ready ({mode}) at 127.0.0.1:8080, ::1:8081"
        assert find_ready(f"[12:00:00] {line}\nnext line") == Ready(mode, "127.0.0.1", 8080)


def test_an_ipv6_host_keeps_its_colons() -> None:
    assert find_ready(ready_line("record", [("::1", 43211)])) == Ready("record", "::1", 43211)


def test_an_ipv6_listener_shows_its_host_and_port() -> None:
    # mitmproxy listening on every address reports IPv6 socket names: (host, port, flowinfo, scope id).
    line = ready_line("replay", [("::", 8080, 0, 0)])  # type: ignore[list-item]
    assert find_ready(line) == Ready("replay", "::", 8080)


def test_no_listener_and_other_text_are_not_ready() -> None:
    assert find_ready(ready_line("replay", [])) is None
    assert find_ready("Loading script addon.py\nproxy listening") is None
