# Two commands on a fresh machine: `make train` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch goes in first and alone: installed later as a dependency, pip would take the newest
# CUDA build. For a GPU build: make install TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
ARGS ?=

.PHONY: help install train test test-fast check format benchmark tensorboard clean
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

install: $(VENV)/.installed  ## create .venv: torch first and alone, then seqmodels with its dev tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[dev]"
	touch $@

train: install  ## train the default model: LSTM on IMDB sentiment
	$(PY) train.py model=lstm task=imdb $(ARGS)

test: check  ## what CI runs: lint, format and type checks, then every test (slow ones included)
	$(PY) -m pytest -q -m "" --durations=15 $(ARGS)

test-fast: install  ## the inner loop: every test not marked slow (about a minute)
	$(PY) -m pytest -q $(ARGS)

check: install  ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

benchmark: install  ## training throughput vs a plain loop and packed sequences
	$(PY) scripts/benchmark_throughput.py $(ARGS)

tensorboard: install  ## open TensorBoard on outputs/
	$(VENV)/bin/tensorboard --logdir outputs

clean:  ## remove .venv and caches
	rm -rf $(VENV) .cache .pytest_cache
