# Quick start: `make run` (the seed study, headless) and `make test` (the test suite).
# Each sets up a project-local virtual environment (.venv) first, on a fresh machine too.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench tui clean-venv

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,report]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mnist-workbench --headless experiments.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.grid_benchmark

tui: $(STAMP)
	$(BIN)/mnist-workbench experiments.toml

clean-venv:
	rm -rf $(VENV)
