"""The replay pipeline and its stages, one module each; `pipeline` reads top to bottom."""
