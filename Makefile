# Two commands do everything on a fresh machine:
#   make run   — create .venv, install moescale with the local toolkit (trainer, plots,
#                corpora), plan an MoE for a default budget
#   make test  — create .venv, install moescale with every extra, run ruff and pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --constraint constraints.txt
EXTRAS := train,plot,hf,parquet,data,ray,slurm,tensorboard,mlflow,wandb,dev
LOCAL  := train,plot,data  # what every README command outside clusters and trackers needs

.PHONY: run test lint bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e ".[$(LOCAL)]"
	touch $@

$(VENV)/.all: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e ".[$(EXTRAS)]"
	touch $@ $(VENV)/.core

run: $(VENV)/.core
	$(BIN)/moescale plan --compute 1e21

# Headless Chromium and its WebDriver (Debian packages) for the report's browser test;
# installed when missing. Outside CI a failed install only makes that test skip.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing chromium and chromium-driver (apt-get) for the browser test"; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install \
	      -y -qq --no-install-recommends chromium chromium-driver >/dev/null ) \
	  || { echo "could not install chromium; the browser test will skip"; [ -z "$$CI" ] || exit 1; }; \
	else echo "no apt-get: install chromium and chromedriver for the browser test"; \
	  [ -z "$$CI" ] || exit 1; fi

test: $(VENV)/.all browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15

bench: $(VENV)/.all
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
