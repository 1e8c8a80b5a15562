"""The job that refreshes everything, and its daily schedule."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from iru_pipeline.config import ConfigError, load_settings
from iru_pipeline.regions import REGION_CODES, REGIONS

DAILY_CRON = "0 3 * * *"

RUN_EXECUTOR = dg.in_process_executor
"""Every step of a run executes in the run's own process, one after the other.

Dagster's default (multiprocess) starts a fresh Python process per step: 4-5 s of imports
around a step that mostly takes well under a second, for some 30 steps (ingestion, each
evidence table, the export, the checks). The steps write one DuckDB file through the
one-slot `duckdb_writer` pool, so they never ran side by side anyway. In process, a run
launched from the UI or the schedule costs what `iru-pipeline run` costs, plus one process
start. Steps still claim their pool slot, so runs launched together still queue."""

refresh_all_job = dg.define_asset_job(
    name="refresh_all",
    selection=dg.AssetSelection.all(),
    executor_def=RUN_EXECUTOR,
    description="Ingest one region's Intercom workspace (the run's partition), then derive the evidence "
    "from everything loaded so far. The daily schedule launches one run per enabled region.",
)


def enabled_regions() -> list[str]:
    """Regions whose token is set. Invalid settings raise ConfigError."""
    return [rs.code for rs in load_settings(require_pii_key=False, require_regions=False).regions]


@dg.schedule(
    job=refresh_all_job,
    cron_schedule=DAILY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily refresh: one run per enabled region.",
)
def daily_refresh(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
    try:
        regions = enabled_regions()
    except ConfigError as exc:
        yield dg.SkipReason(f"not run: {exc}")
        return
    if not regions:
        names = ", ".join(REGIONS[code].token_env for code in REGION_CODES)
        yield dg.SkipReason(f"no Intercom region is enabled: set one of {names}")
        return
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for region in regions:
        # Yield (never return a list: evaluate_tick rejects it).
        yield dg.RunRequest(run_key=f"{day}-{region}", partition_key=region, tags={"region": region})
