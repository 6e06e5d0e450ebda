# Quick start: `make demo` runs the whole pipeline with simulated agencies; `make test` runs every test.
# Both set up what they need first: a virtualenv (.venv), the jars and the local stack (.stack).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export SATUBUS_ENV_FILE ?= $(CURDIR)/deploy/local/dev.env

.PHONY: demo test faults unit lint bench stack stack-down status clean

$(BIN)/satubus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

venv: $(BIN)/satubus

demo: venv
	$(BIN)/satubus demo

test: venv stack
	$(BIN)/pytest

faults: venv stack
	$(BIN)/pytest -m faults tests/faults tests/integration

unit: venv
	$(BIN)/pytest tests/unit

bench: venv stack
	$(BIN)/python -m bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

stack: venv
	$(BIN)/satubus stack up

stack-down: venv
	$(BIN)/satubus stack down

status: venv
	$(BIN)/satubus stack status

clean: stack-down
	rm -rf .stack $(VENV)
