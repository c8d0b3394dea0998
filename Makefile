# Quickstart: `make run` starts the service with an example deployment; `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run install dev test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# setuptools prints an "Editable installation." banner on every editable install: silence it.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(QUIET_EDITABLE) $(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(QUIET_EDITABLE) $(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev

run: install
	$(BIN)/pushpool server start --deploy examples/hello.py:hello

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: dev
	$(BIN)/python -m tests.benchmarks.tick
	$(BIN)/python -m tests.benchmarks.api
	$(BIN)/python -m tests.benchmarks.runner
	$(BIN)/python -m tests.benchmarks.cold_start
	$(BIN)/python -m tests.benchmarks.tick_dynamodb
	$(BIN)/python -m tests.benchmarks.cloud_run
	$(BIN)/python -m tests.benchmarks.aci
	$(BIN)/python -m tests.benchmarks.replicas
	$(BIN)/python -m tests.benchmarks.sdk
	$(BIN)/python -m tests.benchmarks.events
	$(BIN)/python -m tests.benchmarks.automations
	$(BIN)/python -m tests.benchmarks.dashboard
	$(BIN)/python -m tests.benchmarks.blocks
	$(BIN)/python -m tests.benchmarks.cached_map --tasks 2000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
