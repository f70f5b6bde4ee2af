"""The viewer: a session (spans, prompts, patches, artifacts, cassette) and its replay, seen in a browser.

`model` builds the page's data from packs and run folders, `site` renders it into a self-contained page
(static export or in memory) and `serve` hands that page out on loopback. The page's own HTML, CSS and
JavaScript ship as package data under `assets/`; they load nothing from anywhere else.
"""
