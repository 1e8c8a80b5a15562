# Each target sets up its own virtual environment on first use (only python3 >= 3.11 needed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick lint sql ui bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

demo: $(STAMP)  ## load the bundled fake Intercom (3 regions) into data/iru.duckdb, offline
	$(BIN)/iru-pipeline demo

# `make test` runs the test files on TEST_WORKERS processes (pytest-xdist; each file stays on
# one, in its order, with its module fixtures built once). Three on two cores: many tests wait
# on loopback HTTP, a child process or a fault's latency rather than compute. Their tmp
# folders go on tmpfs when /dev/shm has room (4 GB free): the runs' fsyncs (Dagster's SQLite
# event log, DuckDB's checkpoints) then wait for no disk, which halved a run's time on a busy
# disk. TEST_WORKERS=0 runs them in one process; TEST_TMPDIR= keeps the default tmp folder.
TEST_WORKERS ?= 3
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && df -Pk /dev/shm | awk 'NR == 2 && $$4 > 4000000 {print "/dev/shm"}')

test: $(STAMP)  ## the test suite (loopback HTTP, real DuckDB, real Dagster runs)
	$(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR) )$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

# The inner loop: unit tests and the fastest end-to-end paths (the three regions loaded once in
# process, the windowed-search units, `check`, the evidence world and export). `make test`
# stays the full suite; what is left out here are the multi-run scenarios, the fuzz, leak-scan,
# kill, fault-matrix and memory tests.
QUICK_TESTS := $(addprefix iru_pipeline_tests/,test_config.py test_client.py test_record_tables.py \
	test_evidence_inputs.py test_evidence_world.py test_evidence_sql.py test_export.py test_check.py \
	test_ingestion.py test_windows.py)
QUICK_SKIP := page_bodies_are_freed or same_second_changes or second_run_without_changes \
	or exact_through_changes or forbidden_conversations or quiet_run_after_a_busy_day or full_refresh \
	or cursors_are_restored or plan_restriction_is_recorded

test-quick: $(STAMP)  ## unit tests and the fastest end-to-end paths (the inner loop)
	$(BIN)/python -m pytest -q -m "not slow" -k "not ($(QUICK_SKIP))" $(QUICK_TESTS)

lint: $(STAMP)  ## ruff (lint, import order) and mypy over iru_pipeline/; both run, either fails it
	@status=0; $(BIN)/ruff check iru_pipeline || status=1; $(BIN)/mypy || status=1; exit $$status

DB ?= $(or $(IRU_DUCKDB_PATH),data/iru.duckdb)
sql: $(STAMP)  ## read-only SQL on the DuckDB file: make sql, or make sql Q="select ..."
	@$(BIN)/python -c "$$SQL_SHELL" "$(DB)" "$(Q)"

soak: $(STAMP)  ## longer fault-matrix variants
	$(BIN)/python -m pytest -q -m slow

# `exec`: the shell becomes the Python process, so the SIGTERM make passes on to its recipe
# reaches dev_ui, which stops every process it started. UI_ARGS: e.g. "--port 3001 --fake-port 8720".
ui: $(STAMP)  ## Dagster UI against the bundled fake with demo tokens, offline; Ctrl-C stops it
	exec $(BIN)/python -m iru_pipeline.dev_ui $(UI_ARGS)

bench: $(STAMP)  ## benchmarks; prints a table and writes data/bench/*.json
	$(BIN)/python -m iru_pipeline_tests.bench

clean:  ## the virtual environment and the runtime output under data/ (the folder stays)
	rm -rf $(VENV)
	find data -mindepth 1 -depth ! -path data/.gitignore ! -path data/dagster_home \
		! -path data/dagster_home/dagster.yaml -delete

# `make sql`: no duckdb binary is needed; the Python package's connection does the work,
# read-only, so it never takes the lock a run needs.
define SQL_SHELL
import sys, duckdb
from pathlib import Path
path, query = sys.argv[1], sys.argv[2]
if not Path(path).is_file():
    sys.exit(f"no DuckDB file at {path}: run make demo first, or set IRU_DUCKDB_PATH (or DB=...)")
con = duckdb.connect(path, read_only=True)
if query:
    con.sql(query).show(max_rows=200)
    sys.exit(0)
print(f"read-only SQL on {path}; end a statement with ';', an empty line or Ctrl-D quits")
buf = ""
while True:
    try:
        line = input("sql> " if not buf else "...> ")
    except EOFError:
        break
    if not line.strip() and not buf:
        break
    buf += line + "\n"
    if buf.rstrip().endswith(";"):
        try:
            result = con.sql(buf)
            if result is not None:
                result.show(max_rows=200)
        except duckdb.Error as exc:
            print(str(exc).splitlines()[0])
        buf = ""
con.close()
endef
export SQL_SHELL
