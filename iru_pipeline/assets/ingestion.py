"""Ingestion assets: the Intercom dlt source as Dagster assets, one partition per workspace.

Partitions are the configured workspace names (the workspaces file, then `us`, `eu`, `au` for
the INTERCOM_ACCESS_TOKEN_* variables), read when the definitions load: a workspace added to
the file shows after a reload of the code location. A run may cover many workspaces: the
asset's backfill policy is a single run, so one step loads every workspace of the run's
partition range, one after the other, in one process (docs/dagster.md#many-workspaces).

Each workspace runs its own dlt pipeline (`intercom_<name>`), so each keeps its own
incremental cursors; the pipeline's working dir sits under the data folder and its state is
restored from DuckDB at the start of every run (dagster-dlt drops local state first), so
DuckDB is the source of truth. Every asset that writes DuckDB shares the `duckdb_writer` pool
(limit 1 in the instance config): DuckDB allows one writing process per file.
"""



import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
import duckdb
from dagster import AssetExecutionContext
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from iru_pipeline.config import Settings, configured_workspace_names
from iru_pipeline.intercom_records.descriptions import apply_raw_comments, with_descriptions
from iru_pipeline.intercom_source import DATASET_NAME, RESOURCE_NAMES, SyncReport, intercom_source
from iru_pipeline.intercom_source.settings import DROPPED_FIELDS, UPSERT, resource_spec
from iru_pipeline.pii_key import bind_pii_key
from iru_pipeline.pipeline_state import check_committed_state, discard_unreadable_working_dir
from iru_pipeline.regions import REGION_CODES
from iru_pipeline.resources import IntercomResource
from iru_pipeline.storage import (
    apply_dlt_load_settings,
    database_turn,
    duckdb_destination,
    storage_problem,
    wait_for_database,
)
from iru_pipeline.sync_results import Collected, write_sync_results
from iru_pipeline.workspace_binding import Workspace, bind_workspace

progress = logging.getLogger("iru_pipeline.progress")
DUCKDB_POOL = "duckdb_writer"
INGESTION_GROUP = "intercom"


def partition_names(names: Sequence[str] | None = None) -> tuple[str, ...]:
    """The partition keys: the workspaces `names`, else those configured now. With none
    configured, the region-named ones, so the UI still loads; their runs say what to set."""
    keys = list(names) if names is not None else configured_workspace_names()
    return tuple(keys or REGION_CODES)


def make_pipeline(name: str, settings: Settings, notice: Callable[[str], None] | None = None) -> dlt.Pipeline:
    """The dlt pipeline of one workspace: its own name, hence its own state and cursors. A
    working dir whose state cannot be read is discarded first (`notice` says so): DuckDB holds
    the state. The env-var workspaces are named after their region, so their pipelines keep
    the names (`intercom_us`) and cursors they had while regions were the unit."""
    settings.pipelines_dir.mkdir(parents=True, exist_ok=True)
    discard_unreadable_working_dir(settings.pipelines_dir, f"intercom_{name}", notice)
    apply_dlt_load_settings()
    return dlt.pipeline(  # type: ignore[call-overload]  # progress=None (no progress output) works; the stub omits it
        pipeline_name=f"intercom_{name}",
        pipelines_dir=str(settings.pipelines_dir),
        destination=duckdb_destination(settings.duckdb_path),
        dataset_name=DATASET_NAME,
        progress=None,
    )


def _spec_pipeline() -> dlt.Pipeline:
    # Only used by @dlt_assets to derive asset specs; never runs. Kept out of the data folder.
    return dlt.pipeline(
        pipeline_name="intercom_specs",
        pipelines_dir=str(Path(tempfile.gettempdir()) / "iru-pipeline-dlt-specs"),
        destination="duckdb",
        dataset_name=DATASET_NAME,
    )


class IntercomTranslator(DagsterDltTranslator):
    """Asset keys `intercom/<resource>`, no phantom upstream assets, descriptions from the
    resource table. Keys must not depend on the pipeline (it differs per workspace)."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        name = data.resource.name
        spec = resource_spec(name)
        return super().get_asset_spec(data).replace_attributes(
            key=dg.AssetKey(["intercom", name]),
            deps=[],
            group_name=INGESTION_GROUP,
            description=(
                f"Intercom {name} ({spec.endpoint}), one partition per workspace, table intercom.{name}. "
                f"Needs the {spec.permission!r} permission."
            ),
            kinds={"dlt", "duckdb"},
        )


def build_intercom_assets(names: Sequence[str] | None = None) -> dg.AssetsDefinition:
    """The ingestion assets, partitioned by the workspaces `names` (else those configured now)."""
    return _intercom_assets(partition_names(names))


@cache  # deriving the specs builds a dlt source and pipeline: once per set of partitions
def _intercom_assets(names: tuple[str, ...]) -> dg.AssetsDefinition:

    @dlt_assets(
        dlt_source=intercom_source(),
        dlt_pipeline=_spec_pipeline(),
        name="intercom",
        partitions_def=dg.StaticPartitionsDefinition(list(names)),
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dlt_translator=IntercomTranslator(),
        pool=DUCKDB_POOL,
    )
    def intercom_assets(context: AssetExecutionContext, dlt: DagsterDltResource,
                        intercom: IntercomResource) -> Iterator[Any]:
        """Load the run's workspaces into DuckDB schema `intercom`, one after the other."""
        names = list(context.partition_keys)
        if len(names) > 1:  # a range may span partitions no longer configured (the file changed)
            configured = intercom.workspace_names()
            for name in names:
                if name not in configured:
                    context.log.warning(f"[{name}] not configured any more: skipped (reload the code location)")
            names = [name for name in names if name in configured]
        settings = intercom.step_settings()
        # The whole step holds the DuckDB turn: dlt opens the file several times in a step and
        # does not retry a lock conflict (storage.database_turn).
        with progress_to_run_log(context), database_turn(settings.duckdb_path, log=context.log.info):
            yield from _load_workspaces(context, dlt, intercom, settings, names)

    return intercom_assets


class WorkspacesNotLoaded(RuntimeError):
    """Some workspaces of a run of many could not be loaded; the others were (one line)."""


def _load_workspaces(context: AssetExecutionContext, dlt: DagsterDltResource, intercom: IntercomResource,
                     settings: Settings, names: list[str]) -> Iterator[Any]:
    """Each workspace in turn. One that fails (a revoked token, another workspace's token, its
    host down) is reported and the next one loads; the step fails at the end, naming them, so
    the run is marked failed while every other workspace's rows and cursors are committed. A
    full or read-only disk stops at once (every later workspace would fail the same way).
    A run of one workspace yields dlt's results as they are; a run of many materialises each
    workspace's partition by itself (a plain result would mark every partition of the run)."""
    wait_for_database(settings.duckdb_path, log=context.log.info)
    if settings.pii_key is not None:
        bind_pii_key(settings.duckdb_path, settings.pii_key)  # another key stops here, before any write
    failed: list[str] = []
    try:
        for name in names:
            _stop_if_requested()
            try:
                for result in _load_workspace(context, dlt, intercom, name, many=len(names) > 1):
                    yield result if len(names) == 1 else _for_partition(result, name)
            except Exception as exc:
                if len(names) == 1 or storage_problem(exc):
                    raise
                line = _one_line(exc)
                line = line if line.startswith(f"[{name}]") else f"[{name}] {line}"
                progress.warning("%s", line)
                failed.append(line)
    finally:  # once per step: a table or column created by any workspace's load gets its comment
        comment_raw_tables(settings.duckdb_path, context.log.warning)
    if failed:
        raise WorkspacesNotLoaded(f"{len(failed)} of {len(names)} workspaces not loaded (the others were): "
                                  + "; ".join(failed))


def _for_partition(result: Any, name: str) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(asset_key=result.asset_key, partition=name, metadata=result.metadata)


def _one_line(exc: BaseException) -> str:
    """Our own errors are one line already; anything else is named by its class."""
    from iru_pipeline.config import ConfigError
    from iru_pipeline.pipeline_state import UnreadableStateError
    from iru_pipeline.sync_results import _one_line as one_line
    from iru_pipeline.sync_results import _root_cause

    root = _root_cause(exc)
    if isinstance(root, (ConfigError, UnreadableStateError)):
        return " ".join(str(root).split())
    return one_line(root)


def _stop_if_requested() -> None:
    from iru_pipeline.intercom_source.parallel import STOP_REQUESTED

    if STOP_REQUESTED.is_set():
        raise KeyboardInterrupt("stopped on request")


class _RunLogHandler(logging.Handler):
    """Sends each progress line to the Dagster run log, at its level, as the terminal shows it."""

    def __init__(self, log: Any) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            (self.log.warning if record.levelno >= logging.WARNING else self.log.info)(message)
        except Exception:  # a log line must never fail the load
            self.handleError(record)


@contextmanager
def progress_to_run_log(context: AssetExecutionContext) -> Iterator[None]:
    """For the step's duration, the ingestion's progress lines (the `iru_pipeline.progress`
    logger: `[us] contacts: done, 300 rows (0 unchanged skipped)`, pages so far, skips) go to
    `context.log` too, so the run's log in the UI reads like the terminal. An instance whose
    dagster.yaml already manages that logger (`python_logs.managed_python_loggers`, as
    iru_pipeline/dagster.yaml does) gets them from Dagster itself: not twice."""
    if progress.name in (context.instance.managed_python_loggers or []):
        yield
        return
    handler = _RunLogHandler(context.log)
    level = progress.level
    if progress.getEffectiveLevel() > logging.INFO:
        progress.setLevel(logging.INFO)
    progress.addHandler(handler)
    try:
        yield
    finally:
        progress.removeHandler(handler)
        progress.setLevel(level)


def _load_workspace(context: AssetExecutionContext, dlt: DagsterDltResource, intercom: IntercomResource,
                    name: str, many: bool = False) -> Iterator[Any]:
    """One workspace's load. In a run of many, its resources' "done" lines are DEBUG and one
    line says the workspace's outcome: 2,000 lines for 200 workspaces would bury the failures
    (and cost an event each in Dagster's log)."""
    started = time.monotonic()
    settings = intercom.settings([name])  # this workspace's token only: a missing one fails it alone
    ws = settings.workspace(name)
    region = ws.region_code
    client = intercom.client(settings, name)
    report = SyncReport(name)
    progress.info("[%s] loading from %s into %s", name, client.host, settings.duckdb_path)
    pipeline = make_pipeline(name, settings, notice=lambda line: _notice(context, name, line))
    error: BaseException | None = None
    where = Collected(name, region)
    try:
        check_committed_state(settings.duckdb_path, DATASET_NAME, pipeline.pipeline_name)
        me = client.me()
        workspace_id = Workspace.from_me(me).workspace_id
        where = Collected(name, region, workspace_id)
        # Another workspace's token stops here, before any load.
        bind_workspace(settings.duckdb_path, name, region, me, ws.token_setting)
        source = intercom_source(
            region=region,
            client=client,
            pii_key=settings.pii_key,
            internal_domains=_internal_domains(settings),
            full_refresh=intercom.full_refresh,
            reconcile=intercom.reconcile,
            known_contact_ids=lambda: stored_contact_ids(settings.duckdb_path, workspace_id),
            report=report,
            workers=intercom.extract_workers,
            split_above=intercom.window_split_above,
            table_workers_above=intercom.table_workers_above,
            table_processes=intercom.table_processes or None,
            me=me,
            done_level=logging.DEBUG if many else logging.INFO,
        )
        for result in dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline, loader_file_format="parquet"):
            yield _with_sync_metadata(result, report, client)
        if many:
            progress.info("[%s] done: %s", name, _workspace_line(report, client, time.monotonic() - started))
    except BaseException as exc:
        error = exc
        raise
    finally:
        client.close()
        write_sync_results(settings.duckdb_path, context.run_id, where, client, report, error,
                           loaded_rows=None if error else normalized_row_counts(pipeline),
                           selected=[key.path[-1] for key in context.selected_asset_keys],
                           landed_rows=None if error else landed_row_counts(pipeline, settings.duckdb_path,
                                                                            where.workspace_id))


def _workspace_line(report: SyncReport, client: Any, seconds: float) -> str:
    """`12 resources ok, 340 rows (5 unchanged skipped), 14 API calls, 1.1 s`; the resources
    not ok are named with their status (their own warning line says why)."""
    statuses = {name: rr.status for name, rr in report.resources.items()}
    ok = sum(1 for status in statuses.values() if status == "ok")
    others = ", ".join(f"{name} {status}" for name, status in sorted(statuses.items()) if status != "ok")
    rows = sum(rr.rows for rr in report.resources.values())
    unchanged = sum(rr.unchanged_skipped for rr in report.resources.values())
    calls = sum(s["calls"] for s in client.stats().values())
    line = f"{ok} resources ok, {rows:,} rows ({unchanged:,} unchanged skipped), {calls} API calls, {seconds:.1f} s"
    return f"{line}; {others}" if others else line


def comment_raw_tables(duckdb_path: Path, warn: Callable[[str], None]) -> None:
    """Column comments on the raw tables (intercom_records/descriptions.py), after every load:
    a table or column dlt created in this load gets its comment; a second call writes nothing."""
    if not duckdb_path.exists():
        return
    try:
        con = duckdb.connect(str(duckdb_path))
        try:
            apply_raw_comments(con, DATASET_NAME)
        finally:
            con.close()
    except duckdb.Error as exc:
        # Never hide the run's own error behind this one; the next load comments them.
        warn(f"could not set the column comments of {DATASET_NAME}.*: {' '.join(str(exc).split())[:300]}")


def _notice(context: AssetExecutionContext, name: str, line: str) -> None:
    # The run log gets it through progress_to_run_log (or the instance's managed logger).
    progress.warning("[%s] %s", name, line)


def normalized_row_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows that went into the load, per table (after dlt's cursor filter)."""
    trace = pipeline.last_trace
    info = trace.last_normalize_info if trace else None
    return dict(info.row_counts) if info else {}


MERGED_TABLES = tuple(name for name in RESOURCE_NAMES if resource_spec(name).write_disposition == UPSERT)


def landed_row_counts(pipeline: dlt.Pipeline, duckdb_path: Path, workspace_id: str | None) -> dict[str, int]:
    """Rows of this run's load found in each merged table after it: a record the API sent twice
    is one row, a tombstone none. (Snapshot tables keep dlt's counts: their unchanged rows
    keep their old load id.)"""
    trace = pipeline.last_trace
    info = trace.last_load_info if trace else None
    load_ids = list(info.loads_ids) if info else []
    if not load_ids or not duckdb_path.exists():
        return {}
    counts: dict[str, int] = {}
    con = duckdb.connect(str(duckdb_path))
    try:
        present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [DATASET_NAME]).fetchall()}
        for table in MERGED_TABLES:
            if table in present:
                counts[table] = con.execute(
                    f"select count(*) from {DATASET_NAME}.{table} where workspace_id = ? and _dlt_load_id in "
                    "(select unnest(?))", [workspace_id, load_ids]).fetchall()[0][0]
    except duckdb.Error:
        return {}
    finally:
        con.close()
    return counts


def _with_sync_metadata(result: Any, report: SyncReport, client: Any) -> Any:
    name = result.asset_key.path[-1]
    rr = report.resources.get(name)
    if rr is None:
        return result
    endpoint_stats = client.stats()
    extra: dict[str, Any] = {
        "workspace": report.region,
        "region": client.region,
        "status": rr.status,
        "rows_extracted": rr.rows,
        "unchanged_rows_skipped": rr.unchanged_skipped,
        "cursor_before": rr.cursor_before or "",
        "cursor_after": rr.cursor_after or "",
        "window_start": rr.window_start or "",
        "api_calls": sum(s["calls"] for s in endpoint_stats.values()),
        "api_429s": sum(s["rate_limited"] for s in endpoint_stats.values()),
        "api_retries": sum(s["retries"] for s in endpoint_stats.values()),
    }
    if rr.reason:
        extra["reason"] = rr.reason
    if name in DROPPED_FIELDS:
        extra["fields_dropped"] = ", ".join(DROPPED_FIELDS[name])
    metadata = {**(result.metadata or {}), **extra}
    schema = metadata.get("dagster/column_schema")
    schema = getattr(schema, "schema", schema)  # a TableSchemaMetadataValue or a TableSchema
    if isinstance(schema, dg.TableSchema):
        metadata["dagster/column_schema"] = with_descriptions(schema, name)
    return dg.MaterializeResult(asset_key=result.asset_key, metadata=metadata)


def _internal_domains(settings: Settings) -> list[str]:
    domains = settings.evidence_config.get("internal_domains", [])
    return [str(d) for d in domains] if isinstance(domains, list) else []


def stored_contact_ids(duckdb_path: Path, workspace_id: str) -> set[str]:
    """Contact ids already stored for a workspace (read for the deletion sweep)."""
    if not duckdb_path.exists():
        return set()
    con = duckdb.connect(str(duckdb_path))
    try:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = 'contacts'",
            [DATASET_NAME],
        ).fetchall()[0][0]
        if not exists:
            return set()
        rows = con.execute(f"select id from {DATASET_NAME}.contacts where workspace_id = ?", [workspace_id]).fetchall()
        return {r[0] for r in rows}
    finally:
        con.close()


INGESTION_ASSET_KEYS = [dg.AssetKey(["intercom", name]) for name in RESOURCE_NAMES]
