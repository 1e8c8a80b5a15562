"""What the Dagster instance of a data folder recorded, read through Dagster's instance API
(runs, materialisations, the `duckdb_writer` pool's slots), never through its storage tables."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg

from iru_pipeline_tests.support.processes import PipelineProcess

POOL = "duckdb_writer"


@lru_cache(maxsize=8)
def _instance(dagster_home: str) -> dg.DagsterInstance:
    """One instance per Dagster home for the test session: opening one takes a fraction of a
    second, and `evidence_materializations` is polled while a run is deriving evidence."""
    return dg.DagsterInstance.from_config(dagster_home)


def instance_at(dagster_home: Path) -> dg.DagsterInstance:
    return _instance(str(dagster_home))


def ingestion_run_ids(result: Any) -> list[str]:
    return [o.run_id for o in result.outcomes if o.label.startswith("ingest ")]


def latest_materialization_metadata(dagster_home: Path, asset: list[str], partition: str) -> dict[str, Any]:
    """Metadata of an asset's latest materialisation, as the Dagster UI shows it."""
    event = instance_at(dagster_home).get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None and event.asset_materialization is not None, f"{asset} was never materialised"
    mat = event.asset_materialization
    assert mat.partition == partition, (mat.partition, partition)
    return {k: v.value for k, v in mat.metadata.items()}


def evidence_materializations(dagster_home: Path) -> int:
    """How many evidence asset materialisations the instance recorded so far (all runs)."""
    if not (dagster_home / "history").is_dir():
        return 0
    instance = instance_at(dagster_home)
    keys = instance.get_asset_keys(prefix=["evidence"])
    return sum(len(instance.fetch_materializations(key, limit=10_000).records) for key in keys)


def run_ids(dagster_home: Path) -> set[str]:
    """Every run the instance knows of."""
    if not (dagster_home / "history").is_dir():
        return set()
    return set(instance_at(dagster_home).get_run_ids())


def _pool(dagster_home: Path) -> Any:
    return instance_at(dagster_home).event_log_storage.get_concurrency_info(POOL)


def slots_held(dagster_home: Path) -> set[str]:
    """Run ids holding a `duckdb_writer` pool slot."""
    if not (dagster_home / "history").is_dir():
        return set()
    return {slot.run_id for slot in _pool(dagster_home).claimed_slots if slot.run_id}


def steps_waiting_for_a_slot(dagster_home: Path) -> set[str]:
    """Run ids with a step queued for a pool slot and not given one."""
    if not (dagster_home / "history").is_dir():
        return set()
    return {step.run_id for step in _pool(dagster_home).pending_steps if step.assigned_timestamp is None}


def free_slots_of(dagster_home: Path, dead_runs: set[str]) -> None:
    """What an operator would do by hand: give back the pool slots of runs whose process died."""
    instance = instance_at(dagster_home)
    for run_id in dead_runs:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def finish_unless_stuck_behind(run: PipelineProcess, dagster_home: Path, dead_runs: set[str],
                               grace: float = 10.0, timeout: float = 180.0) -> int | None:
    """Wait for `run`; None if it is stuck for `grace` seconds waiting for a pool slot that a
    run of a dead process holds (a deadlock: nothing alive will ever give the slot back)."""
    deadline = time.monotonic() + timeout
    stuck_since: float | None = None
    while run.proc.poll() is None:
        now = time.monotonic()
        stuck = bool(slots_held(dagster_home) & dead_runs) and bool(steps_waiting_for_a_slot(dagster_home) - dead_runs)
        stuck_since = (stuck_since or now) if stuck else None
        if stuck_since is not None and now - stuck_since > grace:
            run.kill()
            return None
        if now > deadline:
            run.kill()
            raise AssertionError(f"still running after {timeout:.0f}s:\n{run.terminal[-3000:]}")
        time.sleep(0.2)
    return run.finish()
