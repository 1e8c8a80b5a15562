"""`iru-pipeline check`: is each enabled region reachable, is the token valid, is it the right
region, and which resources may the token read? One probe request per resource."""

from __future__ import annotations

from dataclasses import dataclass, field

from iru_pipeline.config import RegionSettings, Settings
from iru_pipeline.intercom_client import (
    IntercomAuthError,
    IntercomClient,
    IntercomError,
    IntercomPermissionError,
    IntercomVersionError,
    RetryPolicy,
)
from iru_pipeline.intercom_source.settings import RESOURCES

QUICK_RETRY = RetryPolicy(max_retries=2, max_rate_limit_waits=3, backoff_base=0.2, backoff_cap=2.0)


@dataclass
class ResourceProbe:
    resource: str
    readable: bool
    permission: str
    detail: str = ""


@dataclass
class RegionCheck:
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
        return [p for p in self.probes if not p.readable]


def check_region(rs: RegionSettings, retry: RetryPolicy = QUICK_RETRY) -> RegionCheck:
    result = RegionCheck(region=rs.code, host=rs.host)
    with IntercomClient(rs.code, rs.base_url, rs.token, retry=retry) as client:
        try:
            me = client.get("/me", resource="workspaces")
        except IntercomError as exc:
            result.error = str(exc)
            return result
        app = me.get("app") if isinstance(me.get("app"), dict) else {}
        result.workspace_id = str(app.get("id_code") or "") or None
        result.workspace_name = str(app.get("name") or "") or None
        result.reported_region = str(app.get("region") or "") or None
        if result.reported_region:
            result.region_matches = result.reported_region.upper() == rs.region.reported_name
        for spec in RESOURCES:
            method, path, payload = spec.probe
            try:
                if method == "GET":
                    client.get(path, payload, resource=spec.name)
                else:
                    client.post(path, payload, resource=spec.name)
                result.probes.append(ResourceProbe(spec.name, True, spec.permission))
            except (IntercomPermissionError, IntercomVersionError) as exc:
                result.probes.append(ResourceProbe(spec.name, False, spec.permission, exc.message))
            except IntercomAuthError as exc:
                result.error = str(exc)
                return result
            except IntercomError as exc:
                result.probes.append(ResourceProbe(spec.name, False, spec.permission, str(exc)))
    result.ok = result.region_matches is not False and not result.missing
    if result.region_matches is False:
        result.error = (
            f"the token belongs to a workspace hosted in {result.reported_region}, but it is configured as "
            f"{rs.code.upper()}: move it to INTERCOM_ACCESS_TOKEN_{result.reported_region.upper()} "
            f"(and its host)"
        )
    return result


def check_all(settings: Settings) -> list[RegionCheck]:
    return [check_region(rs) for rs in settings.regions]


def format_checks(results: list[RegionCheck]) -> str:
    lines: list[str] = []
    for r in results:
        status = "OK" if r.ok else "FAILED"
        lines.append(f"{r.region.upper()}  {r.host}  {status}")
        if r.workspace_id:
            match = {True: "matches", False: "DOES NOT match", None: "not reported"}[r.region_matches]
            lines.append(f"  workspace      {r.workspace_id}  {r.workspace_name or ''}".rstrip())
            lines.append(f"  data region    {r.reported_region or '?'} ({match} the configured {r.region.upper()})")
        if r.error:
            lines.append(f"  error          {r.error}")
        if r.probes:
            lines.append("  resource               access    permission")
            for p in r.probes:
                access = "readable" if p.readable else "MISSING"
                lines.append(f"  {p.resource:<22} {access:<9} {p.permission}")
                if p.detail and not p.readable:
                    lines.append(f"  {'':<22} {'':<9} {p.detail}")
    return "\n".join(lines)
