"""Evidence assets: one Dagster asset per evidence table, each running its SQL file in DuckDB,
all written by one step (`evidence_tables`, a multi-asset that also computes the control
checks), then `auditor_export`.

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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from iru_pipeline.assets.ingestion import DUCKDB_POOL
from iru_pipeline.evidence.checks import CONTROL_CHECK_SPECS, control_check_result
from iru_pipeline.evidence.dagster_metadata import evidence_key, table_metadata
from iru_pipeline.evidence.descriptions import apply_evidence_comments
from iru_pipeline.evidence.report import REPORT_FILE
from iru_pipeline.evidence.session import EvidenceRun, derive_tables
from iru_pipeline.evidence.tables import EVIDENCE_TABLES, MANIFEST_TABLE, EvidenceTable
from iru_pipeline.resources import IntercomResource

__all__ = ["EVIDENCE_GROUP", "auditor_export", "evidence_assets", "evidence_key", "evidence_tables"]

EVIDENCE_GROUP = "evidence"


def run_started_at(context: dg.AssetExecutionContext) -> datetime:
    """The Dagster run's start time: the `as_of` shared by every evidence table of the run."""
    stats = context.instance.get_run_stats(context.run_id)
    started = getattr(stats, "start_time", None) or getattr(stats, "launch_time", None)
    return datetime.fromtimestamp(started, UTC) if started else datetime.now(UTC)


def _table_spec(table: EvidenceTable) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=evidence_key(table.name),
        deps=[dg.AssetKey(["intercom", name]) for name in table.reads] + [evidence_key(t) for t in table.after],
        group_name=EVIDENCE_GROUP,
        description=f"{table.description}\n\nSQL: iru_pipeline/evidence/sql/{table.sql_path.name}",
        kinds={"duckdb", "sql"},
        skippable=True,
    )


@dg.multi_asset(
    name="evidence_tables",
    specs=[_table_spec(t) for t in EVIDENCE_TABLES],
    check_specs=CONTROL_CHECK_SPECS,
    can_subset=True,
    pool=DUCKDB_POOL,
)
def evidence_tables(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                    intercom: IntercomResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Every selected evidence table, in the order of `EVIDENCE_TABLES`, then every selected
    control check, in one step on one connection.

    Why one step rather than an asset per table: each step of a run costs Dagster's bookkeeping
    (events, the pool slot, a DuckDB connection and the run's temp views set up again), and with
    an asset and a check per table that was most of an evidence run's time. Each table still
    has its own materialisation (metadata as before) and each control test its own check. A
    table whose SQL fails fails the step after the tables before it were recorded."""
    selected = context.selected_asset_keys
    tables = [t for t in EVIDENCE_TABLES if evidence_key(t.name) in selected]
    with duckdb.get_connection() as con:
        if tables:
            run = EvidenceRun.from_settings(context.run_id, run_started_at(context), intercom.evidence_settings())
            for table, digest in derive_tables(con, run, tables):
                if digest is not None:
                    context.log.info(f"manifest sha256 {digest}")
                # After the write: a table created by this run gets its comments at once (idempotent).
                apply_evidence_comments(con)
                metadata = table_metadata(con, table, run.run_id)
                metadata["as_of"] = dg.MetadataValue.timestamp(run.as_of)
                metadata["params_sha256"] = run.params.sha256
                yield dg.MaterializeResult(asset_key=evidence_key(table.name), metadata=metadata)
        for check in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
            yield control_check_result(con, check, context.run_id, Path(duckdb.database))


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


evidence_assets: list[dg.AssetsDefinition] = [evidence_tables, auditor_export]
