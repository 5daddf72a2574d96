# vaultside: `make run` starts a dev server, `make test` runs every check.
# Works on a fresh Debian 12 (Python 3.11) as root; idempotent and quick when all is installed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= .data
TEST_PACKAGES := docker.io busybox-static postgresql wrk debootstrap graphviz sqlite3 docker-registry
PYTEST_ARGS ?=

.PHONY: help run venv dev-deps system-deps lint unit integration test bench image plugin clean redocly sarif-tool

help:
	@echo "make run          create .venv, install, start 'vaultside serve --dev' (data in $(DATA_DIR)/)"
	@echo "make test         install dev deps + Debian packages, then lint, mypy and all tests"
	@echo "make lint         ruff check, ruff format --check, mypy (strict), lint-imports (layers)"
	@echo "make redocly      install @redocly/cli (the OpenAPI lint gate) into .tools/redocly"
	@echo "make unit         unit tests only (no services)"
	@echo "make integration  integration tests (real dockerd, OpenBao, PostgreSQL)"
	@echo "make bench        run every benchmark in bench/"
	@echo "make fuzz         schemathesis against a dev server, 2 x 150 s (FUZZ_ARGS=--max-time 30)"
	@echo "make image        build the server image (deploy/Dockerfile) from a local wheelhouse"
	@echo "make plugin       the managed Docker volume plugin (config.json + rootfs) in $(PLUGIN_DIR)/"

# python3-venv provides ensurepip; Debian's python3 lacks it by default.
$(PY):
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || scripts/ensure-debian-packages python3-venv
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

dev-deps: $(VENV)/.installed-dev

system-deps:
	@scripts/ensure-debian-packages $(TEST_PACKAGES)

run: venv
	@mkdir -p $(DATA_DIR) && chmod 700 $(DATA_DIR)
	VAULTSIDE_DATA_DIR=$(abspath $(DATA_DIR)) exec $(VENV)/bin/vaultside serve --dev

# All four checks run (so one run shows every problem); any failure fails the target.
lint: dev-deps
	@status=0; \
	echo "== ruff check"; $(VENV)/bin/ruff check . || status=1; \
	echo "== ruff format --check"; $(VENV)/bin/ruff format --check . || status=1; \
	echo "== mypy"; $(VENV)/bin/mypy || status=1; \
	echo "== lint-imports (layers: .importlinter)"; $(VENV)/bin/lint-imports || status=1; \
	exit $$status

# The SARIF multitool (GitHub code-scanning rules) for the scanner's SARIF test: npm, repo-local.
SARIF_MULTITOOL := .tools/sarif/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool
$(SARIF_MULTITOOL):
	npm install --no-audit --no-fund --prefix .tools/sarif @microsoft/sarif-multitool-linux@5.7.0
	chmod u+x $@

sarif-tool: $(SARIF_MULTITOOL)

unit: dev-deps sarif-tool
	$(VENV)/bin/pytest -ra tests/unit $(PYTEST_ARGS)

integration: dev-deps system-deps
	$(VENV)/bin/pytest -ra tests/integration $(PYTEST_ARGS)

# @redocly/cli for the OpenAPI lint gate (tests/unit/api/test_openapi_lint.py): npm, repo-local,
# pinned; installed once (the binary is the target). Under CI=true the test fails without it.
REDOCLY_VERSION := 2.77.0
REDOCLY := .tools/redocly/node_modules/.bin/redocly
# npm comes with Node.js (nodejs from NodeSource bundles it; Debian splits it into `npm`).
$(REDOCLY):
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ with npm" >&2; exit 1; }
	npm install --no-audit --no-fund --save-exact --prefix .tools/redocly @redocly/cli@$(REDOCLY_VERSION)
	@touch $@

redocly: $(REDOCLY)

# pytest exits 5 when it collects nothing: that fails the target like any other error.
test: dev-deps system-deps redocly sarif-tool lint
	$(VENV)/bin/pytest -ra tests $(PYTEST_ARGS)

bench: dev-deps system-deps
	@shopt -s nullglob; benches=(bench/bench_*.py); \
	if [[ $${#benches[@]} -eq 0 ]]; then echo "no bench/bench_*.py found" >&2; exit 1; fi; \
	for b in "$${benches[@]}"; do echo "== $$b"; $(PY) "$$b"; done

# The build context is the wheelhouse alone: nothing else from the work tree reaches the image.
# DOCKER_BUILD_ARGS: e.g. --build-arg BASE_IMAGE=debian:bookworm-slim for a local stand-in base.
DOCKER_BUILD_ARGS ?=
IMAGE ?= vaultside:$(shell $(PYTHON) -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
image: venv
	rm -rf build/wheels
	$(PY) -m pip wheel -q --wheel-dir build/wheels .
	docker build -f deploy/Dockerfile -t $(IMAGE) $(DOCKER_BUILD_ARGS) \
	  --build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) build/wheels

# The managed volume plugin: deploy/plugin/config.json + the image's file system as rootfs/.
PLUGIN_DIR ?= build/plugin
plugin: image
	scripts/build-plugin $(IMAGE) $(PLUGIN_DIR)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

# Schema-driven fuzzing of the API (root + narrow token): fails on any 5xx or undocumented status.
FUZZ_ARGS ?= --max-time 150
.PHONY: fuzz
fuzz: dev-deps
	$(PY) bench/fuzz_api.py $(FUZZ_ARGS)
