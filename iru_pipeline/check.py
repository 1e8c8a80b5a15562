"""`iru-pipeline check`: is each configured workspace reachable, is its token valid, is it
hosted in the configured region and the workspace the name's stored data belongs to, and
which resources may the token read? One probe request per resource."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iru_pipeline.config import Settings, WorkspaceSettings
from iru_pipeline.intercom_client import (
    IntercomAuthError,
    IntercomClient,
    IntercomError,
    RetryPolicy,
)
from iru_pipeline.intercom_client.errors import KIND_WORDS
from iru_pipeline.intercom_client.reach import probe
from iru_pipeline.intercom_records.registry import RESOURCES, Resource
from iru_pipeline.regions import REGIONS
from iru_pipeline.workspace_binding import check_workspace

QUICK_RETRY = RetryPolicy(max_retries=2, max_rate_limit_waits=3, backoff_base=0.2, backoff_cap=2.0)


@dataclass
class ResourceProbe:
    resource: str
    readable: bool
    permission: str
    detail: str = ""
    kind: str | None = None
    """None when readable; else the class of failure (`KIND_WORDS`): only "permission" is a
    missing permission, anything else is an error of the probe itself."""
    optional: bool = False
    """A resource whose permission a read-only token usually lacks (the registry's `optional`):
    its missing permission is shown but does not fail the check."""

    @property
    def access(self) -> str:
        if self.readable:
            return "readable"
        if self.kind == "permission":
            return "optional" if self.optional else "MISSING"
        return "ERROR"

    @property
    def fails_check(self) -> bool:
        return not self.readable and not (self.optional and self.kind == "permission")


@dataclass
class WorkspaceCheck:
    workspace: str
    region: str
    host: str
    ok: bool = False
    workspace_id: str | None = None
    workspace_name: str | None = None
    reported_region: str | None = None
    region_matches: bool | None = None
    error: str | None = None
    probes: list[ResourceProbe] = field(default_factory=list)

    @property
    def missing(self) -> list[ResourceProbe]:
        """Probes that fail the check (an optional resource's missing permission does not)."""
        return [p for p in self.probes if p.fails_check]


def check_workspace_settings(ws: WorkspaceSettings, retry: RetryPolicy = QUICK_RETRY,
                             duckdb_path: Path | None = None) -> WorkspaceCheck:
    """The same start-up probe, `/me` validation and error classes as `run`, so a failure
    reads the same in both commands; with `duckdb_path`, the token's workspace is compared with
    the one the name's stored data belongs to (read only)."""
    result = WorkspaceCheck(workspace=ws.name, region=ws.region_code, host=ws.host)
    unreachable = probe(ws.name, ws.region_code, ws.base_url, base_url_setting=ws.base_url_setting)
    if unreachable is not None:
        result.error = unreachable
        return result
    with IntercomClient(ws.region_code, ws.base_url, ws.token, retry=retry, workspace=ws.name,
                        token_setting=ws.token_setting, base_url_setting=ws.base_url_setting) as client:
        try:
            me = client.me()
        except IntercomError as exc:
            result.error = str(exc)
            return result
        app = me["app"]
        result.workspace_id = str(app.get("id_code") or "") or None
        result.workspace_name = _shown(app.get("name"))
        result.reported_region = _shown(app.get("region"))
        changed = check_workspace(duckdb_path, ws.name, me) if duckdb_path is not None else None
        if result.reported_region:
            result.region_matches = result.reported_region.upper() == ws.region.reported_name
        for spec in RESOURCES:
            try:
                _probe_resource(client, spec)
                result.probes.append(ResourceProbe(spec.name, True, spec.permission, optional=spec.optional))
            except IntercomAuthError as exc:
                result.error = str(exc)
                return result
            except IntercomError as exc:
                result.probes.append(ResourceProbe(spec.name, False, spec.permission, str(exc), exc.kind,
                                                   optional=spec.optional))
    result.ok = result.region_matches is not False and not result.missing and changed is None
    if result.region_matches is False:
        result.error = _region_mismatch(ws, result.reported_region or "")
    elif changed is not None:
        result.error = changed
    return result


def _probe_resource(client: IntercomClient, spec: Resource) -> None:
    method, path, payload = spec.probe
    if method == "GET":
        client.get(path, payload, resource=spec.name)
    else:
        client.post(path, payload, resource=spec.name)


def _region_mismatch(ws: WorkspaceSettings, reported: str) -> str:
    """Name the setting to change only for a region this tool knows; the server's string is
    shown, never turned into a variable name."""
    other = next((r for r in REGIONS.values() if r.reported_name == reported.upper()), None)
    head = (f"[{ws.name}] {KIND_WORDS['auth']}: the token belongs to a workspace hosted in {reported}, "
            f"but it is configured as {ws.region_code.upper()}")
    if other is None:
        return f"{head}, a data region this tool does not know; ask Intercom which API host serves it"
    if ws.base_url_setting is not None:  # a workspaces file entry
        where = ws.base_url_setting.removesuffix(": base_url")
        return f"{head}: set region = \"{other.code}\" in {where} (its host is {other.default_base_url})"
    return f"{head}: move it to {other.token_env} (and its host, {other.default_base_url})"


def _shown(value: Any) -> str | None:
    """A server string fit for one line of the report."""
    text = " ".join(str(value).split())[:80] if value not in (None, "") else ""
    return text or None


def check_all(settings: Settings) -> list[WorkspaceCheck]:
    return [check_workspace_settings(ws, duckdb_path=settings.duckdb_path) for ws in settings.workspaces]


def format_checks(results: list[WorkspaceCheck]) -> str:
    lines: list[str] = []
    for r in results:
        status = "OK" if r.ok else "FAILED"
        label = r.region.upper() if r.workspace == r.region else f"{r.workspace} ({r.region.upper()})"
        lines.append(f"{label}  {r.host}  {status}")
        if r.workspace_id:
            match = {True: "matches", False: "DOES NOT match", None: "not reported"}[r.region_matches]
            lines.append(f"  workspace      {r.workspace_id}  {r.workspace_name or ''}".rstrip())
            lines.append(f"  data region    {r.reported_region or '?'} ({match} the configured {r.region.upper()})")
        if r.error:
            lines.append(f"  error          {r.error}")
        if r.probes:
            lines.append("  resource               access    permission")
            for p in r.probes:
                lines.append(f"  {p.resource:<22} {p.access:<9} {p.permission}")
                if p.detail and not p.readable:
                    lines.append(f"  {'':<22} {'':<9} {p.detail}")
    return "\n".join(lines)
