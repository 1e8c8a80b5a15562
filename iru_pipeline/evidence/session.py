"""One evidence run on one DuckDB connection: its identity, parameters and temp tables.

Every evidence table's SQL runs on a connection prepared here, so the SQL can rely on:

- `evidence_params`: one row, the run (`run_id`, `as_of`, `period_start/end`), every
  parameter of params.py, and what the manifest records (params hash, PII mode, versions);
- `hr_roster`, `access_exceptions`, `evidence_reviews`: the human inputs (empty if absent);
- `prior_runs`: the runs chained before this one (manifest.register_prior_runs);
- `raw_<table>`: fixed-shape views over schema `intercom` (raw.py);
- `resource_catalog`, `region_catalog`, `control_test_catalog`: constants of the product;
- the shared views of `sql/_common.sql` and the table macro of `sql/_control_days.sql`.

Values reach the SQL as prepared parameters, never as formatted text.
"""

from __future__ import annotations

import platform
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from iru_pipeline import __version__
from iru_pipeline.config import Settings
from iru_pipeline.evidence.controls import CONTROL_TESTS
from iru_pipeline.evidence.inputs import HumanInputs, load_inputs, register_inputs
from iru_pipeline.evidence.manifest import register_prior_runs, write_run_manifest
from iru_pipeline.evidence.params import EvidenceParams, canonical_json, load_params
from iru_pipeline.evidence.raw import create_raw_views
from iru_pipeline.evidence.tables import (
    COMMON_SQL,
    CONTROL_DAYS_SQL,
    EVIDENCE_TABLES,
    MANIFEST_TABLE,
    EvidenceTable,
)
from iru_pipeline.intercom_source.settings import RESOURCES
from iru_pipeline.regions import REGIONS

PII_MODE = "pseudonymous"
"""The only mode the ingestion implements (docs/evidence.md#personal-data)."""
EVIDENCE_SCHEMA = "evidence"
_STREAM_MODES = {"single": "full", "full": "full", "search": "incremental", "page_number": "incremental",
                 "activity_log": "window"}


@dataclass(frozen=True)
class EvidenceRun:
    run_id: str
    as_of: datetime
    params: EvidenceParams
    inputs: HumanInputs
    hmac_key_id: str | None = None

    @property
    def period_start(self) -> datetime:
        return self.as_of - timedelta(days=self.params.period_days)

    @classmethod
    def from_settings(cls, run_id: str, as_of: datetime, settings: Settings) -> EvidenceRun:
        params = load_params(settings.evidence_config, settings.evidence_config_path)
        # The key id is read from the database's key binding (prepare_connection), never
        # computed from the key here.
        return cls(run_id, as_of.astimezone(UTC), params, load_inputs(params.inputs))


def versions() -> dict[str, str]:
    import dagster
    import dlt
    import duckdb

    return {
        "tool_version": __version__,
        "python_version": platform.python_version(),
        "duckdb_version": duckdb.__version__,
        "dagster_version": dagster.__version__,
        "dlt_version": dlt.__version__,
    }


def prepare_connection(con: Any, run: EvidenceRun) -> None:
    """Create the schema, the raw views, the run's temp tables and the shared views."""
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"create schema if not exists {EVIDENCE_SCHEMA}")
    create_raw_views(con)
    _register_params(con, run)
    register_prior_runs(con, run.run_id, run.as_of)
    _register_key_id(con)
    register_inputs(con, run.inputs)
    _register_catalogs(con, run.params)
    con.execute(COMMON_SQL.read_text(encoding="utf-8"))
    con.execute(CONTROL_DAYS_SQL.read_text(encoding="utf-8"))


def run_table_sql(con: Any, table: EvidenceTable) -> None:
    """Run the table's SQL file: create the table if missing, replace this run's rows."""
    con.execute(table.sql)


def _register_params(con: Any, run: EvidenceRun) -> None:
    p = run.params
    values: list[tuple[str, str, Any]] = [
        ("run_id", "varchar", run.run_id),
        ("as_of", "timestamptz", run.as_of),
        ("period_start", "timestamptz", run.period_start),
        ("period_end", "timestamptz", run.as_of),
    ]
    for name, value in p.as_dict().items():
        values.append((name, _sql_type(value), value))
    values += [
        ("business_days", "integer[]", p.business_days),
        ("business_hour_start", "integer", p.business_hour_start),
        ("business_hour_end", "integer", p.business_hour_end),
        ("hr_roster_provided", "boolean", run.inputs.provided("hr_roster")),
        ("access_exceptions_provided", "boolean", run.inputs.provided("access_exceptions")),
        ("evidence_reviews_provided", "boolean", run.inputs.provided("evidence_reviews")),
        ("params_json", "json", p.canonical_json()),
        ("params_sha256", "varchar", p.sha256),
        ("inputs_json", "json", canonical_json(run.inputs.as_records())),
        ("pii_mode", "varchar", PII_MODE),
        ("hmac_key_id", "varchar", run.hmac_key_id),
        ("collector_host", "varchar", socket.gethostname()),
        *((name, "varchar", value) for name, value in versions().items()),
    ]
    select = ", ".join(f"?::{sql_type} as {name}" for name, sql_type, _ in values)
    con.execute(f"create or replace temp table evidence_params as select {select}", [v for _, _, v in values])


def _register_key_id(con: Any) -> None:
    """`hmac_key_id`: the id of the PII key the stored pseudonyms were made with, from the
    database's key binding (a salted scrypt fingerprint: `pii_key.bind_pii_key`)."""
    from iru_pipeline.pii_key import KEY_ID_HEX, KEY_TABLE

    bound = con.execute("select count(*) from information_schema.tables where table_schema = 'iru_meta' "
                        "and table_name = 'pii_key'").fetchone()[0]
    if bound:
        con.execute(f"update evidence_params set hmac_key_id = (select left(fingerprint, {KEY_ID_HEX}) "
                    f"from {KEY_TABLE} limit 1)")


def _sql_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, (list, tuple)):
        return "varchar[]"
    return "varchar"


def _register_catalogs(con: Any, params: EvidenceParams) -> None:
    _table(con, "resource_catalog", ("stream varchar", "endpoint varchar", "scope_required varchar", "mode varchar"),
           [(r.name, r.endpoint, r.permission, _STREAM_MODES.get(r.pagination, r.pagination)) for r in RESOURCES])
    _table(con, "region_catalog", ("region varchar", "reported_region varchar", "official_host varchar"),
           [(r.code, r.reported_name, r.default_base_url.split("://", 1)[1]) for r in REGIONS.values()])
    settings = params.as_dict()
    _table(
        con, "control_test_catalog",
        ("test_id varchar", "check_name varchar", "test_name varchar", "evidence_table varchar",
         "criteria varchar", "soc2 varchar[]", "iso27001 varchar[]", "gdpr varchar[]", "params_json json",
         "required_streams varchar[]", "required_inputs varchar[]"),
        [(t.test_id, t.check_name, t.name, t.evidence_table, t.criteria, list(t.soc2), list(t.iso27001),
          list(t.gdpr), canonical_json({k: settings[k] for k in t.params}),
          list(t.streams), list(t.inputs)) for t in CONTROL_TESTS],
    )


def _table(con: Any, name: str, columns: Sequence[str], rows: list[tuple]) -> None:
    con.execute(f"create or replace temp table {name} ({', '.join(columns)})")
    if rows:
        con.executemany(f"insert into {name} values ({', '.join('?' * len(columns))})", rows)


def derive_tables(con: Any, run: EvidenceRun, tables: Sequence[EvidenceTable] | None = None,
                  ) -> Iterator[tuple[EvidenceTable, str | None]]:
    """Write `tables` (default: every one, in the order of EVIDENCE_TABLES) for one run on this
    connection, yielding each once written, with the run's manifest hash for the manifest table
    (which chains the run: manifest.write_run_manifest), else None."""
    prepare_connection(con, run)
    for table in EVIDENCE_TABLES if tables is None else tables:
        if table.name == MANIFEST_TABLE:
            yield table, write_run_manifest(con, run.run_id, run.as_of, run.params.sha256,
                                            partial(run_table_sql, con, table))
        else:
            run_table_sql(con, table)
            yield table, None


def derive_all(con: Any, run: EvidenceRun) -> str:
    """Write every evidence table of one run, outside Dagster (the `evidence_tables` step does
    the same inside it). Returns the run's manifest hash."""
    digests = [digest for _, digest in derive_tables(con, run) if digest is not None]
    return digests[0]
