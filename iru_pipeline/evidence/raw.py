"""Temp views `raw_<table>` over schema `intercom`, the only way the evidence SQL reads raw data.

dlt creates a table on its first load and a column when a value first arrives. A resource that
was never collected (a 403, a plan without activity logs) has no table, and an optional field
(`email_verified`, `role_name` on an old API version) may have no column. The views give the
SQL one fixed shape regardless: a missing table is an empty view, a missing column is NULL, and
JSON list columns become VARCHAR[]. Whether a resource was collected is told by
`intercom.sync_results` (the collection manifest), never guessed from an empty view.
"""

from __future__ import annotations

from typing import Any

from iru_pipeline.intercom_records.registry import RESOURCES, evidence_columns
from iru_pipeline.intercom_source import DATASET_NAME

RAW_COLUMNS: dict[str, tuple[str, ...]] = {
    # Each resource's columns are declared with the resource (intercom_records/registry.py).
    **{spec.name: evidence_columns(spec) for spec in RESOURCES},
    "sync_results": (
        "run_id varchar", "region varchar", "resource varchar", "status varchar", "reason varchar",
        "rows_loaded bigint", "unchanged_rows_skipped bigint", "rows_deleted bigint", "pages bigint",
        "cursor_before varchar", "cursor_after varchar", "window_start varchar", "window_end varchar",
        "api_host varchar", "api_version varchar", "api_calls bigint", "api_retries bigint",
        "api_429s bigint", "api_5xx bigint", "lowest_ratelimit_remaining bigint", "error_code varchar",
        "http_status integer", "request_id varchar", "fields_dropped varchar[]", "reconciled boolean",
        "started_at timestamptz", "finished_at timestamptz", "workspace varchar", "workspace_id varchar",
    ),
    "collection_proofs": (
        "run_id varchar", "region varchar", "endpoint varchar", "resource varchar", "received_at timestamptz",
        "api_base_url varchar", "http_status integer", "request_id varchar", "body_sha256 varchar",
        "body_bytes bigint", "workspace varchar", "workspace_id varchar",
    ),
}


def _existing_columns(con: Any, table: str) -> dict[str, str]:
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
        [DATASET_NAME, table],
    ).fetchall()
    return {name: dtype.upper() for name, dtype in rows}


def _projection(column: str, sql_type: str, existing: dict[str, str]) -> str:
    quoted = f'"{column}"'
    if column not in existing:
        return f"null::{sql_type} as {quoted}"
    if sql_type == "varchar[]" and existing[column] != "VARCHAR[]":
        return f"cast(cast({quoted} as json) as varchar[]) as {quoted}"  # dlt stores lists as JSON
    return f"cast({quoted} as {sql_type}) as {quoted}"


def create_raw_views(con: Any) -> None:
    """Create `raw_<table>` temp views on this connection (see module docstring)."""
    for table, columns in RAW_COLUMNS.items():
        existing = _existing_columns(con, table)
        select = ", ".join(_projection(name, sql_type, existing)
                           for name, sql_type in (c.split(" ", 1) for c in columns))
        source = f"from {DATASET_NAME}.{table}" if existing else "limit 0"
        con.execute(f"create or replace temp view raw_{table} as select {select} {source}")
