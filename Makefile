# Everything runs from .venv, which these targets create from the lock files. The
# installer is itself locked: a pinned, hash-checked pip (and the setuptools that builds
# the project) replaces whatever pip `python3 -m venv` bundles, and then installs the
# lock exactly as written (--no-deps: nothing is resolved against the index of the day).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --no-input
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
HOST ?= 127.0.0.1
PORT ?= 8000
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --no-header -q

.DEFAULT_GOAL := help
.PHONY: help install install-runtime run test test-fast lint format lock bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

# The runtime alone: what `make run` needs.
$(RUNTIME): requirements-bootstrap.lock requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes --no-deps -r requirements-bootstrap.lock
	$(PIP) install --quiet --require-hashes --no-deps -r requirements.lock
	@# setuptools warns about every editable install; this one is meant.
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PIP) check --quiet
	@touch $(RUNTIME)

# Everything for tests, lint and benchmarks, on top of the runtime.
$(DEV): $(RUNTIME) requirements-dev.lock
	$(PIP) install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(PIP) check --quiet
	@touch $(DEV)

install: $(DEV) ## create .venv with everything, from the lock files

install-runtime: $(RUNTIME) ## create .venv with the runtime only

run: $(RUNTIME) ## migrate the database and serve the API on http://127.0.0.1:8000
	$(BIN)/app db upgrade
	$(BIN)/app serve --host $(HOST) --port $(PORT)

test: $(DEV) ## the whole test suite, with coverage
	$(BIN)/pytest --cov=domain --cov=application --cov=adapters --cov=entrypoints --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

test-fast: $(DEV) ## the unit tests only
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

lint: $(DEV) ## ruff, mypy, import-linter, the Docker files and the Kubernetes manifests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint --config .hadolint.yaml docker/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml
	@$(MAKE) --no-print-directory $(KUBERNETES_CHECKED)
	$(BIN)/pytest tests/deploy -q

# deploy/kubernetes: both overlays rendered with `kubectl kustomize` and checked offline,
# against the pinned Kubernetes API schemas and by checkov (some 4 s), again only when
# they or the checkers change. Without kubectl it says so, and checks nothing.
KUBERNETES_CHECKED := build/kubernetes/.checked
$(KUBERNETES_CHECKED): $(DEV) scripts/kubernetes_manifests.py $(shell find deploy/kubernetes -type f ! -name secrets.env)
	$(BIN)/python -m scripts.kubernetes_manifests $(@D)

format: $(DEV) ## fix what ruff can fix
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Not on $(DEV): that stamp follows pyproject.toml, and re-installing the old lock against
# a changed pyproject (the reason to lock) fails its check. uv from any earlier install will do.
lock: ## re-resolve the lock files from pyproject.toml (keeping the pins that still fit)
	@test -x $(BIN)/uv || $(MAKE) install
	printf 'pip\nsetuptools>=77\n' | $(BIN)/uv pip compile - $(LOCK_FLAGS) -o requirements-bootstrap.lock
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -c requirements-bootstrap.lock -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -c requirements-bootstrap.lock -c requirements.lock -o requirements-dev.lock

bench: $(DEV) ## the benchmark (needs PostgreSQL and wrk); see benchmarks/README.md
	$(BIN)/python -m benchmarks.run

clean: ## remove the virtualenv, caches and the local database
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov app.db app.db-wal app.db-shm build/kubernetes
