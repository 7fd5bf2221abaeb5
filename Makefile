# Tokenboard: the verbs people expect. Everything installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run serve demo migrate install install-test test test-fast lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)
	bash scripts/ensure-system-deps.sh

## run: install, migrate, seed the demo organization, print a login and serve on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/tokenboard demo --serve

serve: $(STAMP)
	$(BIN)/tokenboard serve

demo: $(STAMP)
	$(BIN)/tokenboard demo

migrate: $(STAMP)
	$(BIN)/tokenboard migrate

## test: install everything (Python packages, Chromium) and run the whole suite on SQLite and PostgreSQL
# The tests mostly wait (databases, live servers, browsers): they run in worker processes, one module per
# worker at a time so a module's live server starts once; the slowest modules first (tests/conftest.py).
test: install-test
	$(BIN)/ruff check tokenboard tests
	$(BIN)/mypy tokenboard
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadscope --no-loadscope-reorder --durations=15

test-fast: install-test
	$(BIN)/python -m pytest -m "not browser" -x

lint: install-test
	$(BIN)/ruff check tokenboard tests
	$(BIN)/ruff format --check tokenboard tests
	$(BIN)/mypy tokenboard

format: install-test
	$(BIN)/ruff format tokenboard tests
	$(BIN)/ruff check --fix tokenboard tests

## bench: the gateway overhead benchmark (loopback, about 5 minutes; figures into docs/benchmarks.md)
.PHONY: bench
bench: install-test
	$(BIN)/python bench/gateway/run.py

## soak: 30 minutes of mixed gateway and dashboard load; the server's memory over time (docs/benchmarks.md)
.PHONY: soak
soak: install-test
	$(BIN)/python bench/gateway/soak.py

## bench-analytics: usage ingestion into fresh SQLite and PostgreSQL databases (1M events; docs/benchmarks.md)
.PHONY: bench-analytics
bench-analytics: install-test
	$(BIN)/python bench/analytics/run.py

clean:
	rm -rf $(VENV) test-artifacts *.egg-info
