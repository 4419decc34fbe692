# The two set-up commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch (a plain `pip install torch` may pull a multi-GB CUDA build).
TORCH ?= torch==2.13.0
RUN ?= runs/digits-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install demo test test-all lint

$(BIN)/ddpmkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[test]"
	touch $@

install: $(BIN)/ddpmkit

demo: install
	$(BIN)/ddpmkit train --preset digits --out $(RUN)
	$(BIN)/python bench/digits_quality.py $(RUN)

# One process per core, one PyTorch thread each (tests/conftest.py): two threads in one process
# spin-wait for each other whenever another program holds a core. --dist loadfile keeps a module
# in one process, so a module-scoped fixture (a trained model) is built once.
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile

test: install
	$(PYTEST)

# Everything, the slow tests (the full digits run of the README) included.
test-all: install
	$(PYTEST) -m "slow or not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
