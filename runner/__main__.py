"""`python -m runner`: the same command line as the `runner` console script."""

from __future__ import annotations

from runner.cli import main

main()
