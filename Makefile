# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKSPACE ?= demo-workspace

.PHONY: install chromium demo test lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[ml,test]'
	@# With an NVIDIA GPU, FAISS's GPU build replaces the CPU one (same Python API).
	if nvidia-smi -L >/dev/null 2>&1; then \
	  $(BIN)/pip uninstall -q -y faiss-cpu && $(BIN)/pip install -q faiss-gpu-cu12; fi
	touch $(STAMP)

install: $(STAMP)

## Run the main job end to end on the embedded graph server, on a simulated shop.
demo: install
	$(BIN)/shopgraph demo --workspace $(WORKSPACE)

## Headless Chromium renders the HTML report in the tests (they skip, saying why, without it).
chromium:
	@command -v chromium >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $$SUDO apt-get install -y -qq chromium; } || \
	  echo "could not install chromium; the report's browser tests will be skipped"

## Run the test suite (the same command CI runs): the layer contracts, the type check, the tests.
test: install chromium
	$(BIN)/lint-imports
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	-$(BIN)/shopgraph db stop --workspace $(WORKSPACE)
	rm -rf $(WORKSPACE) .pytest_cache
