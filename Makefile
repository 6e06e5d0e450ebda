# Quick start: `make demo` runs the whole pipeline with simulated agencies; `make test` runs every test.
# Both set up what they need first: a virtualenv (.venv), the jars and the local stack (.stack).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export SATUBUS_ENV_FILE ?= $(CURDIR)/deploy/local/dev.env

.PHONY: demo test faults unit lint bench stack stack-down status clean deploy-tools k8s-validate

$(BIN)/satubus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

venv: $(BIN)/satubus

demo: venv
	$(BIN)/satubus demo

test: venv deploy-tools stack
	$(BIN)/pytest

faults: venv stack
	$(BIN)/pytest -m faults tests/faults tests/integration

unit: venv deploy-tools
	$(BIN)/pytest tests/unit

bench: venv stack
	$(BIN)/python -m bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/satubus k8s generate --check

# The Kubernetes manifests (deploy/k8s/), offline: every overlay rendered (kubectl kustomize, else kustomize) and
# every object checked by kubeconform against the JSON schemas of its kind (tests/unit/test_k8s_valid.py).
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)

deploy-tools: $(BIN)/kubeconform
	@command -v kubectl >/dev/null || [ -x $(BIN)/kustomize ] || \
		GOBIN=$(CURDIR)/$(BIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0

$(BIN)/kubeconform: | $(BIN)/satubus
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0

k8s-validate: venv deploy-tools
	$(BIN)/pytest -q tests/unit/test_k8s_generated.py tests/unit/test_k8s_overlays.py tests/unit/test_k8s_valid.py

stack: venv
	$(BIN)/satubus stack up

stack-down: venv
	$(BIN)/satubus stack down

status: venv
	$(BIN)/satubus stack status

clean: stack-down
	rm -rf .stack $(VENV)
