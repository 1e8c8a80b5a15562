"""Dagster resources. Settings come from `iru_pipeline.config` (env vars, `.env`), read when a
run starts, so tokens never enter Dagster's run config or storage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from dagster_duckdb import DuckDBResource

from iru_pipeline.config import DEFAULT_DUCKDB_PATH, Settings, load_settings
from iru_pipeline.intercom_client import IntercomClient, RetryPolicy
from iru_pipeline.intercom_source.settings import EXTRACT_WORKERS, TABLE_WORKERS_ABOVE


class IntercomResource(dg.ConfigurableResource):
    """Per-run options of the Intercom ingestion; credentials come from the environment."""

    full_refresh: bool = False
    """Ignore stored cursors and re-read every record (history tables keep their history)."""
    reconcile: bool | None = None
    """True: sweep contact ids and remove deleted contacts; False: never; None: on cadence."""
    extract_workers: int = EXTRACT_WORKERS
    """Upper bound of requests in flight to one workspace (search windows of contacts and
    conversations fetched at once); within it, how many are out follows the rate limit and
    the measured response times."""
    window_split_above: int = 3000
    """A contacts or conversations search matching more records is split into windows."""
    table_workers_above: int | None = TABLE_WORKERS_ABOVE
    """A contacts or conversations sync of more records builds its tables in worker
    processes (None: never)."""
    table_processes: int = 0
    """How many worker processes (0: one per core, at most 4)."""
    max_retries: int = 6
    backoff_base_seconds: float = 0.5
    read_timeout_seconds: float = 60.0
    """How long a response may take before it is abandoned and asked again (a retry)."""

    def settings(self, region: str | None = None) -> Settings:
        return load_settings(only_regions=[region] if region else None)

    def client(self, settings: Settings, region: str) -> IntercomClient:
        rs = settings.region(region)
        return IntercomClient(
            region, rs.base_url, rs.token,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base=self.backoff_base_seconds),
            timeout=httpx.Timeout(self.read_timeout_seconds, connect=min(10.0, self.read_timeout_seconds)),
            max_connections=max(1, self.extract_workers),
        )


class DuckDBTurnResource(DuckDBResource):
    """Dagster's DuckDB resource, its connections opened inside the pipeline's DuckDB turn
    (storage.database_turn), so an evidence step or check never meets another run's load."""

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        from iru_pipeline.storage import database_turn

        with database_turn(Path(self.database)), super().get_connection() as con:
            yield con


def duckdb_path_from_env() -> Path:
    """The DuckDB file without validating anything (used to build definitions at import)."""
    import os

    return Path(os.environ.get("IRU_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
