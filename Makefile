# Each target sets up its own virtual environment on first use (only python3 >= 3.11 needed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test ui bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## load the bundled fake Intercom (3 regions) into data/iru.duckdb, offline
	$(BIN)/iru-pipeline demo

test: $(STAMP)  ## the test suite (loopback HTTP, real DuckDB, real Dagster runs)
	$(BIN)/python -m pytest -q -m "not slow"

soak: $(STAMP)  ## longer fault-matrix variants
	$(BIN)/python -m pytest -q -m slow

# `exec`: the shell becomes the Python process, so the SIGTERM make passes on to its recipe
# reaches dev_ui, which stops every process it started. UI_ARGS: e.g. "--port 3001 --fake-port 8720".
ui: $(STAMP)  ## Dagster UI against the bundled fake with demo tokens, offline; Ctrl-C stops it
	exec $(BIN)/python -m iru_pipeline.dev_ui $(UI_ARGS)

bench: $(STAMP)  ## benchmarks; prints a table and writes data/bench/*.json
	$(BIN)/python -m iru_pipeline_tests.bench

clean:
	rm -rf $(VENV)
