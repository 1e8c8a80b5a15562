"""Evidence assets: one Dagster asset per evidence table, each running its SQL file in DuckDB.

Keys are `evidence/<table without its evidence_ prefix>` (`evidence/admin_access_review` for
table `evidence.evidence_admin_access_review`). They run once after the workspaces' ingestion (the
`derive_evidence` job; they depend on the `intercom/*` assets they read), in the order of
`tables.EVIDENCE_TABLES`, and write through
the `duckdb` resource inside the DuckDB writer pool. All assets of one Dagster run share its
`run_id` and `as_of` (the run's start time), so a run's rows line up across tables; rows are
appended per run, and a re-execution of the same run replaces that run's rows.

Each materialisation carries row counts, counts per status, the table schema (each column with
its description, from descriptions.py, also set as the DuckDB column comment) and a markdown
preview of the failing rows. `auditor_export` writes the auditor folder of the run (export.py)
after the manifest is chained, report.html included, and links the report in its metadata.

Environment (see config.py): IRU_EVIDENCE_CONFIG (parameters and human inputs), IRU_PII_KEY
(only its fingerprint is recorded).
"""

# No `from __future__ import annotations`: Dagster reads the `context` annotation at definition time.
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from iru_pipeline.assets.ingestion import DUCKDB_POOL
from iru_pipeline.evidence.descriptions import apply_evidence_comments, evidence_column_schema
from iru_pipeline.evidence.manifest import write_run_manifest
from iru_pipeline.evidence.report import REPORT_FILE
from iru_pipeline.evidence.session import EvidenceRun, prepare_connection, run_table_sql
from iru_pipeline.evidence.tables import EVIDENCE_TABLES, MANIFEST_TABLE, EvidenceTable
from iru_pipeline.resources import IntercomResource

EVIDENCE_GROUP = "evidence"
PREVIEW_ROWS = 20
_PREVIEW_STATUSES = ("fail", "not_collected", "failed", "skipped", "warning", "review", "pending")


def asset_name(table: str) -> str:
    """The asset's name for an evidence table: the table name without its `evidence_` prefix
    (the asset key's `evidence/` prefix says it already). DuckDB keeps the full table name."""
    return table.removeprefix("evidence_")


def evidence_key(table: str) -> dg.AssetKey:
    """`evidence/<name>` for a table name (`evidence_admin_access_review`) or asset name."""
    return dg.AssetKey(["evidence", asset_name(table)])


def run_started_at(context: dg.AssetExecutionContext) -> datetime:
    """The Dagster run's start time: the `as_of` shared by every evidence table of the run."""
    stats = context.instance.get_run_stats(context.run_id)
    started = getattr(stats, "start_time", None) or getattr(stats, "launch_time", None)
    return datetime.fromtimestamp(started, UTC) if started else datetime.now(UTC)


def _build_asset(table: EvidenceTable) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(["intercom", name]) for name in table.reads] + [evidence_key(t) for t in table.after]

    @dg.asset(
        key=evidence_key(table.name),
        deps=deps,
        group_name=EVIDENCE_GROUP,
        description=f"{table.description}\n\nSQL: iru_pipeline/evidence/sql/{table.sql_path.name}",
        kinds={"duckdb", "sql"},
        pool=DUCKDB_POOL,
    )
    def _evidence_table(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                        intercom: IntercomResource) -> dg.MaterializeResult:
        run = EvidenceRun.from_settings(context.run_id, run_started_at(context), intercom.evidence_settings())
        with duckdb.get_connection() as con:
            prepare_connection(con, run)
            if table.name == MANIFEST_TABLE:
                digest = write_run_manifest(con, run.run_id, run.as_of, run.params.sha256,
                                            lambda: run_table_sql(con, table))
                context.log.info(f"manifest sha256 {digest}")
            else:
                run_table_sql(con, table)
            # After the write: a table created by this run gets its comments at once (idempotent).
            apply_evidence_comments(con)
            metadata = table_metadata(con, table, run.run_id)
        metadata["as_of"] = dg.MetadataValue.timestamp(run.as_of)
        metadata["params_sha256"] = run.params.sha256
        return dg.MaterializeResult(metadata=metadata)

    return _evidence_table


def table_metadata(con: Any, table: EvidenceTable, run_id: str) -> dict[str, Any]:
    """Row count, rows per status, schema, and a markdown preview of the failing rows."""
    name = table.name
    counts = dict(con.execute(
        f"select status, count(*) from evidence.{name} where run_id = ? group by status order by status", [run_id]
    ).fetchall())
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'evidence' and table_name = ? order by ordinal_position", [name]
    ).fetchall()
    metadata: dict[str, Any] = {
        "dagster/row_count": sum(counts.values()),
        "rows_by_status": dg.MetadataValue.json(counts),
        "dagster/column_schema": evidence_column_schema(name, [(c, t.lower()) for c, t in columns]),
        "table": f"evidence.{name} (latest run: evidence.latest_{name})",
    }
    shown = [s for s in _PREVIEW_STATUSES if s in counts]
    if shown:
        cols = ", ".join(f'"{c}"' for c in table.preview)
        order = ", ".join(f'"{c}"' for c in table.order_by)
        rows = con.execute(
            f"select {cols} from evidence.{name} where run_id = ? and status in ({', '.join('?' * len(shown))}) "
            f"order by list_position(?, status), {order} limit {PREVIEW_ROWS}",
            [run_id, *shown, list(_PREVIEW_STATUSES)],
        ).fetchall()
        metadata["failing_rows"] = dg.MetadataValue.md(markdown_table(list(table.preview), rows))
    return metadata


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


evidence_table_assets: list[dg.AssetsDefinition] = [_build_asset(t) for t in EVIDENCE_TABLES]


@dg.asset(
    key=evidence_key("auditor_export"),
    deps=[evidence_key(MANIFEST_TABLE)],
    group_name=EVIDENCE_GROUP,
    description="The auditor export of this run: a CSV and JSON file per evidence table, params.json, summary.md, "
    "report.html (the run as a page with charts that opens offline; linked from this asset's metadata), "
    "manifest.json, manifest.sig (signed with IRU_SIGNING_KEY_FILE when set) and SHA256SUMS, in "
    "exports/<as_of>_<run_id>/ beside the DuckDB file (`iru-pipeline export` writes the same bytes).",
    kinds={"duckdb", "file"},
    pool=DUCKDB_POOL,
)
def auditor_export(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                   intercom: IntercomResource) -> dg.MaterializeResult:
    from iru_pipeline.export import export_run, has_run, settings_signer

    out = Path(duckdb.database).expanduser().parent / "exports"
    signer = settings_signer(intercom.evidence_settings())
    with duckdb.get_connection() as con:
        if not has_run(con, context.run_id):
            context.log.warning("no workspace has been collected yet: nothing to export")
            return dg.MaterializeResult(metadata={"files": 0})
        result = export_run(con, context.run_id, out, signer)
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(result.folder)),
        "files": len(result.files),
        "report": dg.MetadataValue.path(str(result.folder / REPORT_FILE)),
        "report_url": dg.MetadataValue.url((result.folder / REPORT_FILE).resolve().as_uri()),
        "manifest_sha256": result.manifest_sha256 or "",
        "signed_by": signer.fingerprint if signer is not None else "unsigned",
        "verify": f"iru-pipeline verify {result.folder}",
    })


evidence_assets: list[dg.AssetsDefinition] = [*evidence_table_assets, auditor_export]
