# Targets do their own set-up and are idempotent: a second run only checks and exits quickly.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNNER := $(BIN)/runner
PYTEST_ARGS ?=
# Tests spread over every core; those using Docker run in turn on one worker (tests/conftest.py). PYTEST_ARGS=-n0: one process.
PYTEST_PARALLEL := -n auto --dist loadgroup
export TESTCONTAINERS_RYUK_DISABLED := true

.DEFAULT_GOAL := help
.PHONY: help install engine browser images packs demo test unit lint bench clean test-agents

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create the virtualenv and install the runner (editable) with test and dev tools

# A fresh Debian has python3 without the venv module: as root, install python3-venv and try again.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/pip || $(PY) -m venv $(VENV) 2>/dev/null || { \
	  test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
	    || { echo "error: '$(PY) -m venv' failed; install python3-venv (Debian) and run make again" >&2; exit 3; }; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv \
	    && rm -rf $(VENV) && $(PY) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	@touch $@

engine: install ## Make sure Docker answers (installs/starts it on Debian as root) and the images exist
	$(RUNNER) doctor --fix

# The viewer's browser tests and benchmark drive Debian's chromium with Playwright (its own download cannot work
# offline); installed once, as root, when missing.
browser: ## Make sure Debian's chromium is installed (for `runner view` browser tests and bench)
	@command -v chromium >/dev/null || { \
	  test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
	    || { echo "error: chromium is missing; install Debian's chromium package and run make again" >&2; exit 3; }; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	    || { DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; }

images: engine ## Build the offline base and proxy sidecar images (quick when the recipes are unchanged)
	$(RUNNER) images build

packs: install ## Build the example packs packs/*.tar.zst from their sources in packs/src/
	$(BIN)/python packs/build.py

demo: images packs ## Replay the bundled example pack (exit 0: reproduced)
	$(RUNNER) replay packs/demo-fix.tar.zst

unit: install browser ## Run the tests that need no Docker engine
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m 'not docker' $(PYTEST_ARGS)

test-agents: install ## Cached virtualenvs of the third-party agents and the PyPI repository the real-agent tests use
	$(BIN)/python -m tests.agents.venvs

test: images packs browser test-agents ## Run the whole suite: lint, type checks, unit and Docker integration tests
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

lint: install ## ruff (lint and format), mypy --strict, and the layers (import-linter, pyproject.toml)
	$(BIN)/ruff check runner proxy tests packs bench images
	$(BIN)/ruff format --check runner proxy tests packs bench images
	$(BIN)/mypy
	$(BIN)/lint-imports

BENCH_SCRIPTS ?= $(sort $(wildcard bench/*_bench.py))

bench: images browser ## Run the benchmarks and print side-by-side ratios
	@for script in $(BENCH_SCRIPTS); do $(BIN)/python $$script || exit 1; done

clean: ## Remove the virtualenv and caches (images stay; `docker image prune` removes them)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .grimp_cache .import_linter_cache
