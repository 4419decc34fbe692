# The two set-up commands of the README: `make demo` and `make test`. Each creates its
# environment on first use: .venv (the demo: PyTorch's small CPU build) and .venv-test (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch (a plain `pip install torch` may pull a multi-GB CUDA build).
TORCH ?= torch==2.13.0
RUN ?= runs/digits-$(shell date +%Y%m%d-%H%M%S)
# The tests run every interop and metric path, so their environment holds diffusers and
# torch-fidelity. torch-fidelity imports torchvision, whose PyPI wheels load only beside a CUDA
# build of torch: the tests use that pair (it runs on the CPU; on this project's machines pip
# takes it from the local disk, elsewhere it is a download of a few GB).
TEST_VENV ?= .venv-test
TEST_BIN := $(TEST_VENV)/bin
TEST_TORCH ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-all lint test-install

$(BIN)/ddpmkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e .
	touch $@

$(TEST_BIN)/ddpmkit: pyproject.toml
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_BIN)/python -m pip install --quiet $(TEST_TORCH) -e ".[test]"
	touch $@

install: $(BIN)/ddpmkit

demo: install
	$(BIN)/ddpmkit train --preset digits --out $(RUN)
	$(BIN)/python bench/digits_quality.py $(RUN)

# One process per core, one PyTorch thread each (tests/conftest.py): two threads in one process
# spin-wait for each other whenever another program holds a core. --dist loadfile keeps a module
# in one process, so a module-scoped fixture (a trained model) is built once.
# DDPMKIT_ALL_TESTS=1: a test skipped for a missing package fails the run (it did not run).
PYTEST := DDPMKIT_ALL_TESTS=1 $(TEST_BIN)/python -m pytest -n 2 --dist loadfile

test: $(TEST_BIN)/ddpmkit
	$(PYTEST)

# Everything, the slow tests (the full digits run of the README) included.
test-all: $(TEST_BIN)/ddpmkit
	$(PYTEST) -m "slow or not slow"

lint: $(TEST_BIN)/ddpmkit
	$(TEST_BIN)/ruff check . && $(TEST_BIN)/ruff format --check . && $(TEST_BIN)/mypy

# The README's Python quick start in a fresh venv with the built wheel and PyTorch's CPU build
# (tests/install/readme_quickstart.sh; about 3 minutes, most of it the 1-minute training run).
test-install:
	PYTHON=$(PYTHON) TORCH="$(TORCH)" bash tests/install/readme_quickstart.sh

# The documentation site (mkdocs.yml): the docs extra is installed into the test environment on
# first use; `mkdocs build --strict` fails on a broken link or reference and executes every
# tutorial (docs/tutorials/*.py) on the way, logging each one's time; then docs/check_site.py
# checks that every name of ddpmkit.__all__ is in the API reference and every tutorial shows a
# picture it drew. One PyTorch thread per process, as for the tests: two threads spin-wait for
# each other whenever another program holds a core.
.PHONY: docs
DOCS_STAMP := $(TEST_VENV)/.docs-extra-installed

$(DOCS_STAMP): $(TEST_BIN)/ddpmkit pyproject.toml
	$(TEST_BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $@

docs: $(DOCS_STAMP)
	@start=$$(date +%s); rm -rf site && \
	OMP_NUM_THREADS=1 NO_MKDOCS_2_WARNING=1 $(TEST_BIN)/mkdocs build --strict --site-dir site && \
	$(TEST_BIN)/python docs/check_site.py site && \
	echo "make docs: $$(( $$(date +%s) - start )) s"
