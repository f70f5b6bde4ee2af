"""The cassette side on the host: the proxy process, TLS trust, importers (vcrpy, HAR)."""
