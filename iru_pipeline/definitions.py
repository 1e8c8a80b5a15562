"""The single Dagster `Definitions` of iru-pipeline (loaded by workspace.yaml).

Environment (see README, Configuration; names in `env_names.py`): the workspaces file
(IRU_WORKSPACES_FILE, default ./workspaces.toml) and/or INTERCOM_ACCESS_TOKEN_US/_EU/_AU with
optional INTERCOM_BASE_URL_*, IRU_DUCKDB_PATH, IRU_PII_KEY, IRU_EVIDENCE_CONFIG. A `.env`
file in the working directory is honoured. `iru-pipeline run` hands each run the settings it
validated (the `intercom` resource's `validated_settings`); a run launched from the UI or the
schedule has none and builds the same value from the environment when it starts, not at
import, so the UI loads even while a setting is wrong (the run then fails with the one-line
reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from dagster_dlt import DagsterDltResource

from iru_pipeline.assets.ingestion import build_intercom_assets
from iru_pipeline.config import duckdb_path_from_env, load_dotenv_file
from iru_pipeline.evidence.assets import evidence_assets
from iru_pipeline.jobs import (
    RUN_EXECUTOR,
    daily_refresh,
    derive_evidence_job,
    evidence_after_failed_ingestion,
    evidence_after_ingestion,
    ingest_workspaces_job,
    refresh_all_job,
)
from iru_pipeline.resources import DuckDBTurnResource, IntercomResource
from iru_pipeline.storage import DUCKDB_MEMORY_LIMIT, restrict_umask

load_dotenv_file()
# `dagster dev` and its run workers import this module: what their runs create (DuckDB,
# pipelines dir, Dagster storage, exports) is owner-only, as with `iru-pipeline run`.
restrict_umask()

EVIDENCE_ASSETS: list = [*evidence_assets]


def evidence_asset_keys() -> list[dg.AssetKey]:
    return [key for a in EVIDENCE_ASSETS for key in a.keys]


def build_definitions(duckdb_path: Path | None = None, workspaces: Sequence[str] | None = None) -> dg.Definitions:
    """The definitions; the ingestion assets' partitions are the workspaces `workspaces` (by
    name), else those configured in the environment now."""
    return dg.Definitions(
        assets=[build_intercom_assets(workspaces), *EVIDENCE_ASSETS],
        jobs=[refresh_all_job, ingest_workspaces_job, derive_evidence_job],
        schedules=[daily_refresh],
        sensors=[evidence_after_ingestion, evidence_after_failed_ingestion],
        # Also the executor of the UI's "Materialize" runs (the implicit asset job).
        executor=RUN_EXECUTOR,
        resources={
            "dlt": DagsterDltResource(),
            "intercom": IntercomResource(),
            "duckdb": DuckDBTurnResource(database=str(duckdb_path or duckdb_path_from_env()),
                                         connection_config={"memory_limit": DUCKDB_MEMORY_LIMIT}),
        },
    )


defs = build_definitions()
