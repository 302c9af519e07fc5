# Every target builds what it needs from a bare clone.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt
export PREFECT_SERVER_ANALYTICS_ENABLED = false
export DO_NOT_TRACK = 1

.PHONY: test test-long lint demo look bench bench-naive bench-dlt clean venv dev

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

# both ingest benchmarks (30-50 minutes on a shared 2-core machine); dlt gets a venv of its own
bench: bench-naive bench-dlt

bench-naive: $(VENV)/.dev
	$(BIN)/python benchmarks/ingest_vs_naive.py

bench-dlt: $(VENV)/.dev
	$(BIN)/python benchmarks/ingest_vs_dlt.py

clean:
	rm -rf $(VENV) lake .pytest_cache .mypy_cache .ruff_cache
