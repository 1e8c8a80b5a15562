"""The one module tests import their tools from (fixtures live in conftest.py).

By topic, implemented in `iru_pipeline_tests/support/`:
- env: settings pointing the pipeline at the bundled fake (`pipeline_env`, `cli_env`), in-process
  runs (`run_with_env`), small fakes, retry options;
- db: DuckDB compared with the fake, by ids (`assert_matches_fake`) and by values
  (`assert_values_match_fake`); `sync_results`; the cursors dlt would restore;
- leaks: scans of files, DuckDB columns and terminal output for secrets and personal data;
- processes: `PipelineProcess` runs `python -m iru_pipeline.cli ...` in its own process group
  (SIGKILL at a chosen moment), `dlt_phase`, DuckDB's lock holders, `on_nth_request`;
- dagster: runs, materialisations and pool slots through Dagster's instance API;
- world: the hand-made evidence world and its human inputs;
- chain: databases as the previous version wrote them (evidence chained by version 1).
"""

from __future__ import annotations

from iru_pipeline_tests.support.chain import V1_TABLES, write_as_chain_version_1, write_as_chain_version_2
from iru_pipeline_tests.support.dagster import (
    evidence_materializations,
    finish_unless_stuck_behind,
    free_slots_of,
    ingestion_run_ids,
    instance_at,
    latest_materialization_metadata,
    run_ids,
    slots_held,
    steps_waiting_for_a_slot,
)
from iru_pipeline_tests.support.db import (
    COMPARED,
    CURSORS,
    SNAPSHOT_TABLES,
    VALUE_TABLES,
    api_totals,
    assert_matches_fake,
    assert_no_cursor_passed_unloaded_data,
    assert_values_match_fake,
    committed_cursors,
    contact_updated_at,
    db_ids,
    execute_utc,
    fake_ids,
    query,
    query_dicts,
    stored_values,
    sync_results,
    table_fingerprint,
)
from iru_pipeline_tests.support.env import (
    FAST,
    FAST_RETRY,
    ROOT,
    SMALL,
    SPEC_PATH,
    TEST_PII_KEY,
    Loaded,
    cli_env,
    fresh_progress_handler,
    pipeline_env,
    run_with_env,
    small_fake,
)
from iru_pipeline_tests.support.leaks import (
    assert_nothing_leaked,
    files_containing,
    secret_needles,
    tables_containing,
)
from iru_pipeline_tests.support.processes import (
    HOLD_DUCKDB,
    PipelineProcess,
    data_dir_listing,
    dlt_phase,
    hold_duckdb_open,
    lock_holders,
    on_nth_request,
)
from iru_pipeline_tests.support.spec import openapi_to_json_schema
from iru_pipeline_tests.support.world import (
    DATA,
    WORLD_PII_KEY,
    WORLD_SQL,
    WorldFiles,
    build_world_db,
    derive_world,
    finding_id,
    world_run,
    write_world_inputs,
)

__all__ = [
    "COMPARED", "CURSORS", "DATA", "FAST", "FAST_RETRY", "HOLD_DUCKDB", "ROOT", "SMALL", "SNAPSHOT_TABLES",
    "SPEC_PATH", "TEST_PII_KEY", "V1_TABLES", "VALUE_TABLES", "WORLD_PII_KEY", "WORLD_SQL",
    "Loaded", "PipelineProcess", "WorldFiles",
    "api_totals", "assert_matches_fake", "assert_no_cursor_passed_unloaded_data", "assert_nothing_leaked",
    "assert_values_match_fake", "build_world_db", "cli_env", "committed_cursors", "contact_updated_at",
    "data_dir_listing", "db_ids", "derive_world", "dlt_phase", "evidence_materializations", "execute_utc", "fake_ids",
    "files_containing", "finding_id", "finish_unless_stuck_behind", "free_slots_of", "fresh_progress_handler",
    "hold_duckdb_open", "ingestion_run_ids", "instance_at", "latest_materialization_metadata", "lock_holders",
    "openapi_to_json_schema",
    "on_nth_request", "pipeline_env", "query", "query_dicts", "run_ids", "run_with_env", "secret_needles",
    "slots_held",
    "small_fake", "steps_waiting_for_a_slot", "stored_values", "sync_results", "table_fingerprint",
    "tables_containing", "world_run", "write_as_chain_version_1", "write_as_chain_version_2", "write_world_inputs",
]
