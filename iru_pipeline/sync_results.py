"""`intercom.sync_results`: one row per run, workspace and resource; and
`intercom.collection_proofs`: one row per snapshot response received (proof of collection).

What was collected, from where, with which cursors, at what API cost, and why a resource was
skipped. The evidence collection manifest is built on it. Written after the dlt load (also
when the load failed), straight into DuckDB: dlt's own state tables say what was loaded, this
table says what was attempted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline.intercom_client import API_VERSION, IntercomError
from iru_pipeline.intercom_source import DATASET_NAME, RESOURCE_NAMES, SyncReport
from iru_pipeline.intercom_source.settings import DROPPED_FIELDS

log = logging.getLogger(__name__)

TABLE = f"{DATASET_NAME}.sync_results"
DDL = f"""
create schema if not exists {DATASET_NAME};
create table if not exists {TABLE} (
    run_id varchar not null,
    region varchar not null,          -- the workspace's region (us | eu | au)
    resource varchar not null,
    status varchar not null,          -- ok | partial | skipped | failed
    reason varchar,
    rows_loaded bigint,               -- rows that landed (snapshots: rows of the snapshot)
    unchanged_rows_skipped bigint,
    rows_deleted bigint,              -- deletion markers (tombstones) applied
    pages bigint,
    cursor_before varchar,            -- dlt's cursor value as text (ISO 8601 for every cursor today)
    cursor_after varchar,
    window_start timestamptz,
    window_end timestamptz,
    api_host varchar,
    api_version varchar,
    api_calls bigint,
    api_retries bigint,
    api_429s bigint,
    api_5xx bigint,
    api_transport_errors bigint,
    lowest_ratelimit_remaining bigint,
    error_code varchar,
    http_status integer,
    request_id varchar,
    fields_dropped varchar[],
    reconciled boolean,
    started_at timestamptz,
    finished_at timestamptz,
    duplicates_skipped bigint,        -- records the API returned more than once, loaded once
    workspace varchar,                -- the workspace's configured name (us/eu/au for the env-var ones)
    workspace_id varchar              -- Intercom's id of it (`/me` app.id_code); null if never reached
);
create table if not exists {DATASET_NAME}.collection_proofs (
    run_id varchar not null,
    region varchar not null,
    endpoint varchar not null,        -- e.g. GET /admins
    resource varchar,
    received_at timestamptz not null,
    api_base_url varchar,
    http_status integer,
    request_id varchar,               -- X-Request-Id, else the body's request_id
    body_sha256 varchar not null,     -- of the body as received; the body is never stored
    body_bytes bigint,
    workspace varchar,
    workspace_id varchar
);
"""
PROOFS_TABLE = f"{DATASET_NAME}.collection_proofs"


_LOADED = ("ok", "partial")
"""Statuses whose rows were committed (partial: some records could not be placed in time)."""


UPGRADE = f"""
alter table {TABLE} add column if not exists duplicates_skipped bigint;
alter table {TABLE} add column if not exists workspace varchar;
alter table {TABLE} add column if not exists workspace_id varchar;
alter table {PROOFS_TABLE} add column if not exists workspace varchar;
alter table {PROOFS_TABLE} add column if not exists workspace_id varchar;
"""
"""Tables written before these columns existed get them in place (null in their old rows;
`upgrade_workspace_columns` then fills the workspace of each old row)."""
TIMESTAMP_COLUMNS = ("window_start", "window_end", "started_at", "finished_at")
"""Typed `timestamptz`. Tables written before that held the windows as ISO 8601 text; the
first write by this version converts them in place (`upgrade_timestamps`)."""
COLUMNS = (
    "run_id", "region", "resource", "status", "reason", "rows_loaded", "unchanged_rows_skipped", "rows_deleted",
    "pages", "cursor_before", "cursor_after", "window_start", "window_end", "api_host", "api_version", "api_calls",
    "api_retries", "api_429s", "api_5xx", "api_transport_errors", "lowest_ratelimit_remaining", "error_code",
    "http_status", "request_id", "fields_dropped", "reconciled", "started_at", "finished_at", "duplicates_skipped",
    "workspace", "workspace_id",
)
PROOF_COLUMNS = ("run_id", "region", "endpoint", "resource", "received_at", "api_base_url", "http_status",
                 "request_id", "body_sha256", "body_bytes", "workspace", "workspace_id")


@dataclass(frozen=True)
class Collected:
    """Which workspace a sync read: its configured name, region and Intercom id (None when the
    run stopped before `/me` answered)."""

    workspace: str
    region: str
    workspace_id: str | None = None


def sync_rows(
    run_id: str, where: Collected, client: Any, report: SyncReport, error: BaseException | None,
    loaded_rows: dict[str, int] | None = None, selected: list[str] | None = None,
    landed_rows: dict[str, int] | None = None,
) -> list[tuple]:
    """One row per resource. `loaded_rows`: what dlt normalised per table (tombstones and
    repeated records included); `landed_rows`: the rows of the load found in the table after
    it (merged tables only), from which duplicates are told apart."""
    finished = datetime.now(UTC)
    stats = client.resource_stats() if client is not None else {}
    host = getattr(client, "host", None)
    rows = []
    for name in RESOURCE_NAMES:
        rr = report.resources.get(name)
        if rr is None:
            if selected is None or name not in selected or error is None:
                continue  # not selected in this run
            rr = report.resource(name)  # selected, never started: the run failed before it
        status, reason = rr.status, rr.reason
        if error is not None and status != "skipped":
            # One load package per workspace: if its load failed, nothing of it was committed.
            status = "failed"
            reason = reason or f"not loaded, the workspace's run failed: {_one_line(_root_cause(error))}"
        elif status == "pending":
            status, reason = "failed", reason or "resource did not finish"
        s = stats.get(name, {})
        tombstones = rr.deleted if status in _LOADED else 0
        loaded, duplicates = _counts(name, rr.rows, tombstones, loaded_rows, landed_rows, error)
        rows.append((
            run_id, where.region, name, status, reason,
            loaded, rr.unchanged_skipped, tombstones, rr.pages,
            rr.cursor_before, rr.cursor_after if status in _LOADED else rr.cursor_before,
            _timestamp(rr.window_start), _timestamp(rr.window_end), host, API_VERSION,
            s.get("calls", 0), s.get("retries", 0), s.get("rate_limited", 0), s.get("server_errors", 0),
            s.get("transport_errors", 0), s.get("min_remaining"),
            rr.error_code, rr.status_code, rr.request_id,
            list(DROPPED_FIELDS.get(name, ())), report.reconciled if name == "contacts" else None,
            report.started_at, finished, duplicates, where.workspace, where.workspace_id,
        ))
    return rows


def write_sync_results(
    duckdb_path: Path, run_id: str, where: Collected, client: Any, report: SyncReport, error: BaseException | None,
    loaded_rows: dict[str, int] | None = None, selected: list[str] | None = None,
    landed_rows: dict[str, int] | None = None,
) -> list[tuple]:
    rows = sync_rows(run_id, where, client, report, error, loaded_rows, selected, landed_rows)
    if not rows:
        return rows
    try:
        con = duckdb.connect(str(duckdb_path))
        try:
            con.execute(DDL)
            con.execute(UPGRADE)
            upgrade_timestamps(con)
            upgrade_workspace_columns(con)
            con.executemany(f"insert into {TABLE} ({', '.join(COLUMNS)}) values ({', '.join('?' * len(COLUMNS))})",
                            rows)
            proofs = proof_rows(run_id, where, client)
            if proofs:
                con.executemany(f"insert into {PROOFS_TABLE} ({', '.join(PROOF_COLUMNS)}) "
                                f"values ({', '.join('?' * len(PROOF_COLUMNS))})", proofs)
        finally:
            con.close()
    except duckdb.Error as exc:
        # Never hide the run's own error behind this one.
        log.warning("could not record sync results for %s: %s", where.workspace, _one_line(exc))
    return rows


def upgrade_timestamps(con: Any) -> list[str]:
    """Convert the timestamp columns a previous version stored as text (ISO 8601, or epoch
    seconds) to `timestamptz`, in place, keeping every row. Returns the columns converted;
    on a table already typed it changes nothing."""
    schema, table = TABLE.split(".")
    types = dict(con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, table]).fetchall())
    converted = [c for c in TIMESTAMP_COLUMNS if c in types and types[c].upper() != "TIMESTAMP WITH TIME ZONE"]
    for column in converted:
        con.execute(
            f'alter table {TABLE} alter column "{column}" set data type timestamptz using '
            f'coalesce(try_cast("{column}" as timestamptz), to_timestamp(try_cast("{column}" as double)))')
    return converted


def _timestamp(value: str | datetime | None) -> datetime | None:
    """The report's ISO 8601 text as an aware datetime (DuckDB stores it as timestamptz)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def proof_rows(run_id: str, where: Collected, client: Any) -> list[tuple]:
    log_ = getattr(client, "proofs", None)
    if log_ is None:
        return []
    return [(run_id, where.region, p.endpoint, p.resource, p.received_at, p.api_base_url, p.http_status,
             p.request_id, p.body_sha256, p.body_bytes, where.workspace, where.workspace_id)
            for p in log_.proofs()]


def upgrade_workspace_columns(con: Any) -> None:
    """Rows written while a region held one workspace: their workspace is the one named after
    the region (`us`, `eu`, `au`), and its id the one that name is bound to (or, in a file
    written before bindings existed, the id its `intercom.workspaces` rows hold). A no-op once
    every row has them."""
    from iru_pipeline.workspace_binding import bound_workspace

    for table in (TABLE, PROOFS_TABLE):
        con.execute(f"update {table} set workspace = region where workspace is null")
        regions = [r[0] for r in con.execute(
            f"select distinct region from {table} where workspace_id is null and workspace = region").fetchall()]
        for region in regions:
            bound = bound_workspace(con, region)
            if bound is not None:
                con.execute(f"update {table} set workspace_id = ? where workspace_id is null and workspace = ?",
                            [bound.workspace_id, region])


def _counts(name: str, extracted: int, tombstones: int, loaded_rows: dict[str, int] | None,
            landed_rows: dict[str, int] | None, error: BaseException | None) -> tuple[int, int]:
    """(rows that landed, records loaded more than once). dlt's normalize counts include the
    tombstones and every repeat of a record (a record updated while a sync pages through it
    comes twice); the rows carrying this load's id in the table after the merge do not."""
    if error is not None:
        return 0, 0  # one load package per region: nothing of it was committed
    if loaded_rows is None:
        return max(0, extracted - tombstones), 0
    normalized = int(loaded_rows.get(name, 0))
    if landed_rows is None or name not in landed_rows:
        return normalized, 0
    landed = int(landed_rows[name])
    return landed, max(0, normalized - tombstones - landed)


def _root_cause(exc: BaseException) -> BaseException:
    """Our own error inside dlt's wrappers (PipelineStepFailed -> ResourceExtractionError -> ...)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, IntercomError):
            return current
        current = current.__cause__ or current.__context__
    return exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, IntercomError):
        return text[:500]
    return f"{type(exc).__name__}: {text}"[:500]
