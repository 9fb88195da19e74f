# Two commands do everything on a fresh machine:
#   make run   — create .venv, install moescale, plan an MoE for a default budget
#   make test  — create .venv, install moescale with every extra, run ruff and pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --constraint constraints.txt
EXTRAS := train,plot,hf,parquet,ray,slurm,dev

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.all: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e ".[$(EXTRAS)]"
	touch $@ $(VENV)/.core

run: $(VENV)/.core
	$(BIN)/moescale plan --compute 1e21

test: $(VENV)/.all
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 --durations=15

bench: $(VENV)/.all
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
