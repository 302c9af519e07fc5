# Every target builds what it needs from a bare clone.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt
export PREFECT_SERVER_ANALYTICS_ENABLED = false
export DO_NOT_TRACK = 1

.PHONY: test test-long lint demo look bench clean venv dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# runtime dependencies only (what `make demo` needs)
$(VENV)/.runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	@touch $@

# runtime + dev extras (what `make test` needs)
$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev]'
	@touch $@ $(VENV)/.runtime

venv: $(VENV)/.runtime
dev: $(VENV)/.dev

lint: $(VENV)/.dev
	$(BIN)/ruff check powerflex_etl flows tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q

# the long crash/fuzz sweeps
test-long: lint
	POWERFLEX_TEST_LONG=1 $(BIN)/python -m pytest -q

demo: $(VENV)/.runtime
	$(BIN)/powerflex-etl demo

# render the report in headless Chromium to report.png (runs the demo first on an empty lake)
look: $(VENV)/.runtime
	scripts/look.sh

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/ingest_vs_naive.py

clean:
	rm -rf $(VENV) lake .pytest_cache .mypy_cache .ruff_cache
