# The two set-up commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch (a plain `pip install torch` may pull a multi-GB CUDA build).
TORCH ?= torch==2.13.0
RUN ?= runs/digits-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install demo test lint

$(BIN)/ddpmkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[test]"
	touch $@

install: $(BIN)/ddpmkit

demo: install
	$(BIN)/ddpmkit train --preset digits --out $(RUN)
	$(BIN)/python bench/digits_quality.py $(RUN)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
