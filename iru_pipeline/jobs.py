"""The jobs, the daily schedule, and the sensors that derive the evidence after ingestion."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from iru_pipeline.config import ConfigError, configured_workspace_names, load_settings, workspaces_file_entries
from iru_pipeline.regions import REGION_CODES, REGIONS

DAILY_CRON = "0 3 * * *"

RUN_EXECUTOR = dg.in_process_executor
"""Every step of a run executes in the run's own process, one after the other.

Dagster's default (multiprocess) starts a fresh Python process per step: 4-5 s of imports
around a step that mostly takes well under a second (a run had some 30 steps before the
evidence tables and checks became one step; now three: ingestion, evidence tables with their
checks, export). The steps write one DuckDB file through the
one-slot `duckdb_writer` pool, so they never ran side by side anyway. In process, a run
launched from the UI or the schedule costs what `iru-pipeline run` costs, plus one process
start. Steps still claim their pool slot, so runs launched together still queue."""

INGESTION = dg.AssetSelection.groups("intercom")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

refresh_all_job = dg.define_asset_job(
    name="refresh_all",
    selection=dg.AssetSelection.all(),
    executor_def=RUN_EXECUTOR,
    description="Ingest one workspace (the run's partition), then derive the evidence from everything "
    "loaded so far. For many workspaces at once use ingest_workspaces: the evidence follows it once.",
)

ingest_workspaces_job = dg.define_asset_job(
    name="ingest_workspaces",
    selection=INGESTION,
    executor_def=RUN_EXECUTOR,
    description="Ingest the workspaces of the run's partition range in one run and one process, one "
    "after the other (single-run backfill). The daily schedule launches it for every workspace; "
    "when it ends, derive_evidence runs once.",
)

derive_evidence_job = dg.define_asset_job(
    name="derive_evidence",
    selection=dg.AssetSelection.all() - INGESTION,
    executor_def=RUN_EXECUTOR,
    description="Derive the evidence tables and their checks from everything loaded, once.",
)


def partition_range_tags(names: list[str]) -> dict[str, str]:
    """Tags making a run cover the partitions `names` (consecutive in the partition order)."""
    return {RANGE_START: names[0], RANGE_END: names[-1]}


@dg.schedule(
    job=ingest_workspaces_job,
    cron_schedule=DAILY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily refresh: one run ingests every configured workspace; the evidence follows it.",
)
def daily_refresh(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
    # Names only: a workspace whose token is missing fails alone in the run, it does not
    # cancel the others' refresh. A workspaces file that cannot be read is said here.
    try:
        load_settings(require_pii_key=False, require_workspaces=False, with_workspaces=False)
        workspaces_file_entries()
    except ConfigError as exc:
        yield dg.SkipReason(f"not run: {exc}")
        return
    names = configured_workspace_names()
    if not names:
        variables = ", ".join(REGIONS[code].token_env for code in REGION_CODES)
        yield dg.SkipReason(f"no Intercom workspace is configured: list them in workspaces.toml, or set one of "
                            f"{variables}")
        return
    # The partitions the definitions were loaded with: a workspace added to the file since
    # joins after a reload of the code location; until then the run covers the others.
    partitions = context.repository_def.get_job(ingest_workspaces_job.name).partitions_def
    known = partitions.get_partition_keys() if partitions is not None else []
    keys = [k for k in known if k in names]
    if not keys:
        yield dg.SkipReason("none of the configured workspaces is a partition yet: reload the code location")
        return
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    # Yield (never return a list: evaluate_tick rejects it).
    yield dg.RunRequest(run_key=day, tags=partition_range_tags([keys[0], keys[-1]]))


def _evidence_after(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"evidence-after-{context.dagster_run.run_id}")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_workspaces_job], request_job=derive_evidence_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Derive the evidence once after an ingest_workspaces run loaded its workspaces.")
def evidence_after_ingestion(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    return _evidence_after(context)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.FAILURE, monitored_jobs=[ingest_workspaces_job], request_job=derive_evidence_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Derive the evidence once after an ingest_workspaces run in which some workspaces failed: "
    "the others were loaded, and the evidence reports the failed ones as not collected.")
def evidence_after_failed_ingestion(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    return _evidence_after(context)
