"""Dagster resources, and the settings value that travels in their configuration.

`iru-pipeline run` validates the settings once (`config.load_settings`) and hands them to each
run as `IntercomResource.validated_settings`: plain values (hosts, paths) and, for secrets,
only references to where they live (an environment variable's name, a file's path), so no
token or PII key is ever written into Dagster's run config or storage. Runs started without
the CLI (`dagster dev`, the schedule) build the same value from the environment when they start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    WorkspaceRef,
    configured_workspace_names,
    duckdb_path_from_env,
    how_to_add,
    load_settings,
    resolve_settings,
)
from iru_pipeline.intercom_client import IntercomClient, RetryPolicy
from iru_pipeline.intercom_client.client import DEFAULT_TIMEOUT
from iru_pipeline.intercom_source.settings import EXTRACT_WORKERS, TABLE_WORKERS_ABOVE, WINDOW_SPLIT_ABOVE

__all__ = ["DuckDBTurnResource", "IntercomResource", "SettingsConfig", "WorkspaceConfig", "duckdb_path_from_env"]

_RETRY = RetryPolicy()


class WorkspaceConfig(dg.Config):
    """One workspace as validated: its name, region, API base URL and where its token lives."""

    name: str
    region: str
    base_url: str
    token_env: str | None = None
    """Name of the environment variable holding the token (never the token)."""
    token_file: str | None = None
    """Or: path of an owner-only file holding the token."""
    base_url_setting: str | None = None
    """What messages name to fix the base URL (None: the region's INTERCOM_BASE_URL_* variable)."""

    def reference(self) -> WorkspaceRef:
        token = SecretRef(env=self.token_env) if self.token_file is None else SecretRef(file=Path(self.token_file))
        return WorkspaceRef(self.name, self.region, self.base_url, token, self.base_url_setting)


class SettingsConfig(dg.Config):
    """The settings a run uses, as `config.load_settings` validated them, secrets by reference."""

    duckdb_path: str
    workspaces: list[WorkspaceConfig]
    """The selected workspaces; an ingestion run loads those of its partitions."""
    pii_key_env: str | None = None
    """Name of the environment variable holding the PII key (never the key)."""
    evidence_config_path: str | None = None
    signing_key_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SettingsConfig:
        workspaces = []
        for ws in settings.workspaces:
            ref = ws.token_ref
            if ref is None:
                raise ValueError(f"workspace {ws.name}: settings without a token reference cannot cross into Dagster")
            workspaces.append(WorkspaceConfig(
                name=ws.name, region=ws.region_code, base_url=ws.base_url, token_env=ref.env,
                token_file=str(ref.file) if ref.file is not None else None, base_url_setting=ws.base_url_setting))
        pii_ref = settings.pii_key_ref
        return cls(
            duckdb_path=str(settings.duckdb_path),
            workspaces=workspaces,
            pii_key_env=pii_ref.env if pii_ref is not None else None,
            evidence_config_path=str(settings.evidence_config_path) if settings.evidence_config_path else None,
            signing_key_file=str(settings.signing_key_file) if settings.signing_key_file else None,
        )

    def resolve(self, names: str | Sequence[str] | None = None) -> Settings:
        """The settings (of the workspaces `names` only, when given), secrets read from their references."""
        names = [names] if isinstance(names, str) else names
        configured = {w.name for w in self.workspaces}
        for name in names or ():
            if name not in configured:
                raise ConfigError(f"workspace {name} was asked for but is not configured: {how_to_add(name)}")
        return resolve_settings(
            duckdb_path=self.duckdb_path,
            workspaces=[w.reference() for w in self.workspaces if names is None or w.name in names],
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

    def settings(self, names: Sequence[str] | None = None) -> Settings:
        """The run's settings (of the workspaces `names` only, when given); ConfigError (one
        line) if one is wrong."""
        if self.validated_settings is None:
            return load_settings(only_workspaces=names)
        return self.validated_settings.resolve(names)

    def step_settings(self) -> Settings:
        """What a run of many workspaces needs around them (the DuckDB file, the PII key),
        without reading any workspace's token: each workspace's own settings are read when it
        loads (`settings([name])`), so one whose token is missing fails alone."""
        if self.validated_settings is None:
            return load_settings(with_workspaces=False)
        return self.validated_settings.resolve([])

    def workspace_names(self) -> list[str]:
        """The names of the run's workspaces (the handed value's, else those configured now)."""
        if self.validated_settings is None:
            return configured_workspace_names()
        return [w.name for w in self.validated_settings.workspaces]

    def evidence_settings(self) -> Settings:
        """The settings the evidence reads (its parameters file, the PII key's id, the signing
        key): the handed value when there is one, else the environment; no region needed."""
        if self.validated_settings is None:
            return load_settings(require_workspaces=False, require_pii_key=False)
        return self.validated_settings.resolve()

    def client(self, settings: Settings, name: str) -> IntercomClient:
        ws = settings.workspace(name)
        connect_s = min(DEFAULT_TIMEOUT.connect or self.read_timeout_seconds, self.read_timeout_seconds)
        return IntercomClient(
            ws.region_code, ws.base_url, ws.token, workspace=ws.name, token_setting=ws.token_setting,
            base_url_setting=ws.base_url_setting,
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
