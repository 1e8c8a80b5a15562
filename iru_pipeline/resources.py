"""Dagster resources, and the settings value that travels in their configuration.

`iru-pipeline run` validates the settings once (`config.load_settings`) and hands them to each
run as `IntercomResource.validated_settings`: plain values (hosts, paths) and, for secrets,
only references to where they live (an environment variable's name, a file's path), so no
token or PII key is ever written into Dagster's run config or storage. Runs started without
the CLI (`dagster dev`, the schedule) build the same value from the environment when they start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from dagster_duckdb import DuckDBResource

from iru_pipeline.config import (
    ConfigError,
    SecretRef,
    Settings,
    duckdb_path_from_env,
    load_settings,
    resolve_settings,
)
from iru_pipeline.intercom_client import IntercomClient, RetryPolicy
from iru_pipeline.intercom_client.client import DEFAULT_TIMEOUT
from iru_pipeline.intercom_source.settings import EXTRACT_WORKERS, TABLE_WORKERS_ABOVE, WINDOW_SPLIT_ABOVE
from iru_pipeline.regions import REGIONS

__all__ = ["DuckDBTurnResource", "IntercomResource", "RegionConfig", "SettingsConfig", "duckdb_path_from_env"]

_RETRY = RetryPolicy()


class RegionConfig(dg.Config):
    """One enabled region as validated: its code, API base URL and where its token lives."""

    code: str
    base_url: str
    token_env: str | None = None
    """Name of the environment variable holding the token (never the token)."""
    token_file: str | None = None
    """Or: path of an owner-only file holding the token."""

    def token_ref(self) -> SecretRef:
        return SecretRef(env=self.token_env) if self.token_file is None else SecretRef(file=Path(self.token_file))


class SettingsConfig(dg.Config):
    """The settings a run uses, as `config.load_settings` validated them, secrets by reference."""

    duckdb_path: str
    regions: list[RegionConfig]
    """The enabled regions; each run uses the one of its partition."""
    pii_key_env: str | None = None
    """Name of the environment variable holding the PII key (never the key)."""
    evidence_config_path: str | None = None
    signing_key_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SettingsConfig:
        regions = []
        for rs in settings.regions:
            ref = rs.token_ref
            if ref is None:
                raise ValueError(f"region {rs.code}: settings without a token reference cannot cross into Dagster")
            regions.append(RegionConfig(code=rs.code, base_url=rs.base_url, token_env=ref.env,
                                        token_file=str(ref.file) if ref.file is not None else None))
        pii_ref = settings.pii_key_ref
        return cls(
            duckdb_path=str(settings.duckdb_path),
            regions=regions,
            pii_key_env=pii_ref.env if pii_ref is not None else None,
            evidence_config_path=str(settings.evidence_config_path) if settings.evidence_config_path else None,
            signing_key_file=str(settings.signing_key_file) if settings.signing_key_file else None,
        )

    def resolve(self, region: str | None = None) -> Settings:
        """The settings (of `region` only, when given), secrets read from their references."""
        if region is not None and region not in {r.code for r in self.regions}:
            variable = REGIONS[region].token_env if region in REGIONS else "its token"
            raise ConfigError(f"region {region} was asked for but is not enabled: set {variable}")
        return resolve_settings(
            duckdb_path=self.duckdb_path,
            regions=[(r.code, r.base_url, r.token_ref()) for r in self.regions if region in (None, r.code)],
            pii_key_ref=SecretRef(env=self.pii_key_env) if self.pii_key_env else None,
            evidence_config_path=self.evidence_config_path,
            signing_key_file=self.signing_key_file,
        )


class IntercomResource(dg.ConfigurableResource):
    """Per-run options of the Intercom ingestion, and the settings it runs with."""

    validated_settings: SettingsConfig | None = None
    """The settings `iru-pipeline run` validated, secrets by reference. None: read and validated
    from the environment when the run starts (`dagster dev`, the schedule)."""
    full_refresh: bool = False
    """Ignore stored cursors and re-read every record (history tables keep their history)."""
    reconcile: bool | None = None
    """True: sweep contact ids and remove deleted contacts; False: never; None: on cadence."""
    extract_workers: int = EXTRACT_WORKERS
    """Upper bound of requests in flight to one workspace (search windows of contacts and
    conversations fetched at once); within it, how many are out follows the rate limit and
    the measured response times."""
    window_split_above: int = WINDOW_SPLIT_ABOVE
    """A contacts or conversations search matching more records is split into windows."""
    table_workers_above: int | None = TABLE_WORKERS_ABOVE
    """A contacts or conversations sync of more records builds its tables in worker
    processes (None: never)."""
    table_processes: int = 0
    """How many worker processes (0: one per core, at most 4)."""
    max_retries: int = _RETRY.max_retries
    backoff_base_seconds: float = _RETRY.backoff_base
    read_timeout_seconds: float = DEFAULT_TIMEOUT.read or 60.0
    """How long a response may take before it is abandoned and asked again (a retry)."""

    def settings(self, region: str | None = None) -> Settings:
        """The run's settings (of `region` only, when given); ConfigError (one line) if one is wrong."""
        if self.validated_settings is None:
            return load_settings(only_regions=[region] if region else None)
        return self.validated_settings.resolve(region)

    def evidence_settings(self) -> Settings:
        """The settings the evidence reads (its parameters file, the PII key's id, the signing
        key): the handed value when there is one, else the environment; no region needed."""
        if self.validated_settings is None:
            return load_settings(require_regions=False, require_pii_key=False)
        return self.validated_settings.resolve()

    def client(self, settings: Settings, region: str) -> IntercomClient:
        rs = settings.region(region)
        connect_s = min(DEFAULT_TIMEOUT.connect or self.read_timeout_seconds, self.read_timeout_seconds)
        return IntercomClient(
            region, rs.base_url, rs.token,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base=self.backoff_base_seconds),
            timeout=httpx.Timeout(self.read_timeout_seconds, connect=connect_s),
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
