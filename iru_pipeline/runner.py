"""Run the Dagster definitions in process, as `iru-pipeline run` and `demo` do.

The selected workspaces are one run of the `ingest_workspaces` job over their partitions (the
ingestion step loads them one after the other, in this process), given the settings the CLI
validated as its `intercom` resource's configuration; the evidence assets then run once over
everything loaded, in a `derive_evidence` run. Runs are recorded in the Dagster
instance under the data folder, so they show in `dagster dev` too. Clean-up after runs whose
process died is in `run_cleanup.py`.
"""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from iru_pipeline.config import Settings
from iru_pipeline.resources import SettingsConfig
from iru_pipeline.run_cleanup import process_tags, reap_dead_runs

INSTANCE_TEMPLATE = Path(__file__).with_name("dagster.yaml")
# The terminal gets progress lines and the summary; Dagster's own event log (with stack
# traces) stays in the instance, where the UI shows it.
QUIET_DAGSTER = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class RunOutcome:
    label: str
    run_id: str
    success: bool
    error: str | None = None


@dataclass
class PipelineResult:
    outcomes: list[RunOutcome] = field(default_factory=list)
    sync_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(not o.success for o in self.outcomes)

    @property
    def partial(self) -> bool:
        return any(r["status"] != "ok" for r in self.sync_rows)

    @property
    def exit_code(self) -> int:
        # 2 is the CLI's "bad setting"; a partial run (a resource skipped) is 3.
        return 1 if self.failed else (3 if self.partial else 0)


def prepare_instance(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance in the data folder, with the DuckDB writer pool limited to 1."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(INSTANCE_TEMPLATE, config)
    return dg.DagsterInstance.from_config(str(home))


def run_pipeline(
    settings: Settings,
    *,
    full_refresh: bool = False,
    reconcile: bool | None = None,
    instance: dg.DagsterInstance | None = None,
    with_evidence: bool = True,
    intercom_options: dict[str, Any] | None = None,
) -> PipelineResult:
    """Ingest every workspace of `settings` in one Dagster run, then derive the evidence in another.

    `intercom_options` sets further fields of `IntercomResource` (e.g. retry bounds)."""
    from iru_pipeline.definitions import build_definitions, evidence_asset_keys
    from iru_pipeline.jobs import partition_range_tags

    instance = instance or prepare_instance(settings)
    for run_id in reap_dead_runs(instance):
        logging.getLogger("iru_pipeline.progress").info(
            "run %s was left unfinished by a killed process: marked failed, its DuckDB pool slot freed", run_id)
    names = [ws.name for ws in settings.workspaces]
    # The partitions are exactly the selected workspaces, so one range covers them all.
    defs = build_definitions(duckdb_path=settings.duckdb_path, workspaces=names)
    run_config = ingestion_run_config(settings, full_refresh=full_refresh, reconcile=reconcile,
                                      intercom_options=intercom_options)
    result = PipelineResult()
    if names:
        _stop_if_requested()
        label = f"ingest {names[0]}" if len(names) == 1 else f"ingest {len(names)} workspaces"
        outcome = _execute(defs.resolve_job_def("ingest_workspaces"), instance, label, run_config,
                           tags=partition_range_tags(names))
        _stop_if_storage_failed(settings, outcome)
        result.outcomes.append(outcome)
        result.sync_rows += _sync_rows(settings.duckdb_path, outcome.run_id)
    if with_evidence and evidence_asset_keys():
        _stop_if_requested()
        outcome = _execute(defs.resolve_job_def("derive_evidence"), instance, "evidence",
                           evidence_run_config(settings))
        _stop_if_storage_failed(settings, outcome)
        result.outcomes.append(outcome)
    _stop_if_requested()
    return result


def ingestion_run_config(settings: Settings, *, full_refresh: bool = False, reconcile: bool | None = None,
                         intercom_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run config of an ingestion run: the run's options and the validated settings, whose
    secrets are references (variable names, file paths), never values (resources.py)."""
    intercom = {
        "validated_settings": SettingsConfig.from_settings(settings).model_dump(),
        "full_refresh": full_refresh,
        "reconcile": reconcile,
        **(intercom_options or {}),
    }
    return {**QUIET_DAGSTER, "resources": {"intercom": {"config": intercom}}}


def evidence_run_config(settings: Settings) -> dict[str, Any]:
    """The run config of the evidence run: the same validated settings (its parameters file,
    the PII key's id and the signing key come from them), secrets by reference."""
    validated = SettingsConfig.from_settings(settings).model_dump()
    return {**QUIET_DAGSTER, "resources": {"intercom": {"config": {"validated_settings": validated}}}}


def _stop_if_storage_failed(settings: Settings, outcome: RunOutcome) -> None:
    """A full or read-only disk fails the evidence too: stop at the first, in one line
    (StorageError) naming the folder and the fix."""
    from iru_pipeline.storage import storage_error, storage_problem

    problem = storage_problem(outcome.error) if not outcome.success else None
    if problem:
        raise storage_error(settings.data_dir, problem)


class RunStopped(Exception):
    """The process was asked to stop (SIGINT, SIGTERM): the Dagster run in progress ended
    (failed, its pool slot freed) and no further workspace or evidence was started."""


def _stop_if_requested() -> None:
    from iru_pipeline.intercom_source.parallel import STOP_REQUESTED

    if STOP_REQUESTED.is_set():
        raise RunStopped("stopped on request")


def _execute(job: Any, instance: dg.DagsterInstance, label: str, run_config: dict,
             tags: dict[str, str] | None = None) -> RunOutcome:
    logging.getLogger("iru_pipeline.progress").info("%s: started", label)
    res = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False,
                                 tags={**process_tags(), **(tags or {})})
    error = None
    if not res.success:
        error = _first_failure(res)
    return RunOutcome(label, res.run_id, res.success, error)


def _first_failure(res: Any) -> str:
    """The root cause of a failed run, in one line (our errors are one line already)."""
    for event in res.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            err = event.step_failure_data.error
            chain = [err]
            while chain[-1].cause is not None:
                chain.append(chain[-1].cause)
            ours = [e for e in chain if e.cls_name.startswith("Intercom") or e.cls_name == "ConfigError"]
            root = ours[0] if ours else chain[-1]
            text = " ".join(root.message.split()) or root.cls_name
            if ":" in text and text.split(":", 1)[0].replace(".", "").replace("_", "").isalnum():
                text = text.split(":", 1)[1].strip()  # drop the "module.ClassName: " prefix
            return text[:2000]  # a run of many workspaces names each one that failed
    return "run failed"


def _sync_rows(duckdb_path: Path, run_id: str) -> list[dict[str, Any]]:
    from iru_pipeline.storage import reading_database

    if not duckdb_path.exists():
        return []
    try:
        with reading_database(duckdb_path, log=logging.getLogger("iru_pipeline.progress").info) as con:
            return _sync_rows_of(con, run_id)
    except duckdb.Error:
        return []


def _sync_rows_of(con: Any, run_id: str) -> list[dict[str, Any]]:
    try:
        cur = con.execute(
            "select coalesce(workspace, region) as workspace, region, resource, status, rows_loaded, rows_deleted, "
            "duplicates_skipped, api_calls, api_429s, api_retries, reason, cursor_before, cursor_after "
            "from intercom.sync_results where run_id = ? order by started_at, workspace, resource", [run_id])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    except duckdb.Error:  # no sync_results table yet (the run failed before writing any)
        return []


def format_summary(result: PipelineResult) -> str:
    lines = []
    width = max([11, *(len(r["workspace"]) + 2 for r in result.sync_rows)])
    header = (f"{'workspace':<{width}}{'resource':<23}{'status':<9}{'rows':>9}{'deleted':>9}{'repeats':>8}"
              f"{'calls':>7}{'429s':>6}{'retries':>8}  reason")
    lines.append(header)
    lines.append("-" * len(header))
    for r in result.sync_rows:
        reason = (r["reason"] or "")[:90]
        lines.append(
            f"{r['workspace']:<{width}}{r['resource']:<23}{r['status']:<9}"
            f"{r['rows_loaded'] or 0:>9,}{r['rows_deleted'] or 0:>9,}"
            f"{r['duplicates_skipped'] or 0:>8,}"
            f"{r['api_calls'] or 0:>7}{r['api_429s'] or 0:>6}{r['api_retries'] or 0:>8}  {reason}"
        )
    for o in result.outcomes:
        mark = "ok" if o.success else f"FAILED: {o.error}"
        lines.append(f"{o.label}: {mark}")
    partial = "partial: some resources were skipped, failed or partial (see reason)"
    verdict = "failed" if result.failed else (partial if result.partial else "complete")
    lines.append(f"run {verdict}")
    return "\n".join(lines)


def enable_progress(stream: Any = None) -> None:
    """Print the pipeline's progress lines (pages and rows per resource and region)."""
    logger = logging.getLogger("iru_pipeline.progress")
    if any(getattr(h, "_iru_progress", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler._iru_progress = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
