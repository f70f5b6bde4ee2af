# Targets do their own set-up and are idempotent: a second run only checks and exits quickly.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNNER := $(BIN)/runner
PYTEST_ARGS ?=
export TESTCONTAINERS_RYUK_DISABLED := true

.DEFAULT_GOAL := help
.PHONY: help install engine images packs demo test unit lint bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create the virtualenv and install the runner (editable) with test and dev tools

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]'
	@touch $@

engine: install ## Make sure a Docker engine answers (installs and starts one on Debian as root)
	$(RUNNER) doctor --fix

images: engine ## Build the offline base image and the proxy sidecar image (skipped when unchanged)
	$(RUNNER) images build

packs: images ## Build the example packs in packs/ from their sources

demo: packs ## Replay the bundled example pack

unit: install ## Run the tests that need no Docker engine
	$(BIN)/python -m pytest -m 'not docker' $(PYTEST_ARGS)

test: images ## Run the whole suite: lint, type checks, unit and Docker integration tests
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install ## ruff and mypy --strict on the package
	$(BIN)/ruff check runner proxy tests
	$(BIN)/mypy

bench: images ## Run the benchmarks and print side-by-side ratios
	$(BIN)/python bench/proxy_bench.py

clean: ## Remove the virtualenv and caches (images stay; `docker image prune` removes them)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
