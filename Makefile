# Everything runs from .venv, which these targets create from the lock files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint format lock bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP) ## create .venv from the lock files

run: $(STAMP) ## migrate the database and serve the API on http://127.0.0.1:8000
	$(BIN)/app db upgrade
	$(BIN)/app serve --host $(HOST) --port $(PORT)

test: $(STAMP) ## the whole test suite, with coverage
	$(BIN)/pytest --cov=domain --cov=application --cov=adapters --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

test-fast: $(STAMP) ## the unit tests only
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy, import-linter and the Docker files
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/lint_docker.py

format: $(STAMP) ## fix what ruff can fix
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: $(STAMP) ## re-resolve the lock files from pyproject.toml
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --no-header -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes --no-header -q -c requirements.lock -o requirements-dev.lock

bench: $(STAMP) ## the benchmark (needs PostgreSQL and wrk); see benchmarks/README.md
	$(BIN)/python -m benchmarks.run

clean: ## remove the virtualenv, caches and the local database
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov app.db app.db-wal app.db-shm
