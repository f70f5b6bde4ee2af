"""The cassette proxy: a mitmproxy addon recording HTTP(S) exchanges to a cassette and replaying them.

Modules: `main` (the program: mitmproxy with the addon and only the addons it needs), `addon` (the
mitmproxy addon, also loadable with `mitmdump -s proxy/addon.py` from any directory),
`cassette` (the versioned JSONL format and its one writer), `match` (normalisation, matchers, the
replay index), `redact` (keyed placeholders for secrets), `report` (the JSON report), `stream`
(serving recorded streams chunk by chunk), `listen` (accepting on a socket the launcher bound), `ready`
(the line launchers wait for), `claim` (the sidecar's entry: the program imported ahead, run once a
replay hands it its arguments). Imports only the standard library and mitmproxy.
"""
