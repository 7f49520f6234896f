# Two commands on a fresh machine: `make train` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch goes in first and alone: installed later as a dependency, pip would take the newest
# CUDA build. For a GPU build: make install TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
ARGS ?=

.PHONY: install train test benchmark tensorboard clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[dev]"
	touch $@

train: install  ## train the default model: LSTM on IMDB sentiment
	$(PY) train.py model=lstm task=imdb $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

benchmark: install  ## training throughput vs a plain loop and packed sequences
	$(PY) scripts/benchmark_throughput.py $(ARGS)

tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf $(VENV) .cache .pytest_cache
