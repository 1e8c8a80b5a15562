"""The one list of Intercom resources the pipeline loads: each declared once.

A declaration says where the resource comes from (endpoint, paging kind, the permission a
token needs and a cheap probe request that proves it), how it is stored (write disposition,
keys, cursor, column hints or, for contacts and conversations, the Arrow table spec of the
same name in `tables.py`), and what the evidence SQL reads of it (`raw_<name>` views,
`evidence/raw.py`). Everything else derives from this list: the client's permission wording,
the dlt source's resources, `iru-pipeline check`'s probes, the evidence inputs and catalogue,
and the test helpers' resource lists.

Adding a snapshot resource (one whole list or object per run, kept with history) is one
`Resource(...)` here, with a `Fetch` and a row builder from `transforms.py`; the dlt source
builds its resource from the declaration (`intercom_source.snapshots`).

Plain Python on purpose: the HTTP client reads the permission wording from here and must not
import dlt or Dagster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iru_pipeline.intercom_records.transforms import (
    COLUMNS,
    Row,
    admin_row,
    data_attribute_row,
    ip_allowlist_row,
    tag_row,
    team_membership_rows,
    team_row,
    workspace_row,
)

SNAPSHOT: dict[str, str] = {"disposition": "merge", "strategy": "scd2"}
"""History-keeping snapshot: with merge_key="workspace_id" only the loaded workspace's missing
rows are retired (docs/ingestion.md#write-dispositions); `replace` would wipe the other
workspaces."""
UPSERT = "merge"
"""Incremental resources: merged on (workspace_id, id); ids repeat across workspaces, also
within one region."""


@dataclass(frozen=True)
class RowContext:
    """What a row builder may use besides the record: the workspace it came from."""

    region: str
    workspace_id: str
    api_host: str
    api_version: str
    model: str | None = None
    """`Fetch.model` of the request the record came from (data attributes)."""


RowBuilder = Callable[[dict[str, Any], RowContext], list[Row]]


@dataclass(frozen=True)
class Fetch:
    """One request of a snapshot resource. `items` names the list in the response body (a
    full list, followed through its pages); None means the body itself is the one record.
    `/me` is not requested again: the workspace's `/me`, read once per run, is used."""

    path: str
    items: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None

    @property
    def cache_key(self) -> str:
        """Requests with the same key are made once per run and shared between resources
        (`/teams` feeds `teams` and `team_memberships`)."""
        return self.path.strip("/") + "".join(f"&{k}={v}" for k, v in sorted(self.params.items()))


@dataclass(frozen=True)
class Resource:
    name: str
    endpoint: str
    """As shown to users (`check`, asset descriptions, `evidence_collection_stream`)."""
    pagination: str
    """single | full | search | activity_log | page_number (docs/intercom-api.md#pagination-four-kinds)."""
    permission: str
    """As the Intercom Developer Hub names it (docs/intercom-api.md#permissions)."""
    probe: tuple[str, str, dict[str, Any]]
    """A cheap request that proves the token may read the resource: (method, path, params/body)."""
    write_disposition: str | dict[str, str]
    cursor: str | None = None
    evidence_columns: tuple[str, ...] = ()
    """What the evidence SQL reads: `raw_<name>` has these columns ("name type"), plus dlt's
    scd2 validity columns for snapshots; a missing table or column reads as empty or NULL."""
    columns: dict[str, dict[str, Any]] | None = None
    """dlt column hints; None for contacts and conversations, whose `TableSpec` gives them."""
    fetch: tuple[Fetch, ...] = ()
    rows: RowBuilder | None = None
    """Snapshot resources: one record of a `fetch` -> its rows."""
    unique_ids: bool = False
    """Keep one row per id (the last): several requests may return the same record."""
    optional: bool = False
    """Needs a permission a read-only token usually lacks (docs/intercom-api.md#permissions):
    not loaded unless asked for (`intercom_source(optional_resources=...)`), so it is not
    among a run's resources (`LOADED_RESOURCES`) and a read-only token's run stays complete;
    `check` probes it and shows it missing without failing."""

    @property
    def keeps_history(self) -> bool:
        return self.write_disposition == SNAPSHOT

    @property
    def keys(self) -> dict[str, Any]:
        """dlt's key hints: snapshots merge per workspace, the others per (workspace_id, id)
        (docs/ingestion.md#write-dispositions). A table a release keyed by region is re-keyed by
        dlt on the next load: the stored schema's hints follow these."""
        return {"merge_key": "workspace_id"} if self.keeps_history else {"primary_key": ("workspace_id", "id")}


def _one(build: Callable[..., Row]) -> RowBuilder:
    """A row builder of the usual shape, (record, region, workspace_id) -> row."""
    return lambda item, c: [build(item, c.region, c.workspace_id)]


_SEARCH_PROBE = {"query": {"field": "updated_at", "operator": ">", "value": 0}, "pagination": {"per_page": 1}}
_SCD2 = ("_dlt_valid_from timestamptz", "_dlt_valid_to timestamptz")
_IDS = ("region varchar", "workspace_id varchar", "id varchar")

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "workspaces", "GET /me", "single", "Read admins", ("GET", "/me", {}), SNAPSHOT,
        columns=COLUMNS["workspaces"], fetch=(Fetch("/me"),),
        rows=lambda me, c: [workspace_row(me, c.region, c.api_host, c.api_version)],
        evidence_columns=(*_IDS, "name varchar", "reported_region varchar", "timezone varchar",
                          "identity_verification boolean", "secure boolean", "created_at timestamptz",
                          "api_host varchar", "api_version varchar", "token_admin_id varchar"),
    ),
    Resource(
        "admins", "GET /admins", "full", "Read admins", ("GET", "/admins", {}), SNAPSHOT,
        columns=COLUMNS["admins"], fetch=(Fetch("/admins", "admins"),), rows=_one(admin_row),
        evidence_columns=(*_IDS, "name varchar", "email varchar", "job_title varchar", "away_mode_enabled boolean",
                          "has_inbox_seat boolean", "team_ids varchar[]", "role_id varchar", "role_name varchar",
                          "email_verified boolean"),
    ),
    Resource(
        "teams", "GET /teams", "full", "Read admins", ("GET", "/teams", {}), SNAPSHOT,
        columns=COLUMNS["teams"], fetch=(Fetch("/teams", "teams"),), rows=_one(team_row),
        evidence_columns=(*_IDS, "name varchar", "admin_ids varchar[]"),
    ),
    Resource(
        "team_memberships", "GET /teams", "full", "Read admins", ("GET", "/teams", {}), SNAPSHOT,
        columns=COLUMNS["team_memberships"], fetch=(Fetch("/teams", "teams"),),
        rows=lambda team, c: team_membership_rows(team, c.region, c.workspace_id),
        evidence_columns=(*_IDS, "team_id varchar", "admin_id varchar", "team_name varchar"),
    ),
    Resource(
        "tags", "GET /tags", "full", "Read tags", ("GET", "/tags", {}), SNAPSHOT,
        columns=COLUMNS["tags"], fetch=(Fetch("/tags", "data"),), rows=_one(tag_row),
        evidence_columns=(*_IDS, "name varchar"),
    ),
    Resource(
        "data_attributes", "GET /data_attributes, GET /conversations/attributes", "full",
        "Read and list users and companies", ("GET", "/data_attributes", {"model": "contact"}), SNAPSHOT,
        columns=COLUMNS["data_attributes"],
        # `model=conversation` answers 422 in 2.16; conversation attributes have their own
        # endpoint (docs/intercom-api.md#version-216-always-sent).
        fetch=(Fetch("/data_attributes", "data", {"model": "contact"}, model="contact"),
               Fetch("/data_attributes", "data", {"model": "company"}, model="company"),
               Fetch("/conversations/attributes", "data", model="conversation")),
        rows=lambda a, c: [data_attribute_row(a, c.region, c.workspace_id, c.model or "contact")],
        unique_ids=True,
        evidence_columns=(*_IDS, "model varchar", "name varchar", "full_name varchar", "label varchar",
                          "data_type varchar", "custom boolean", "archived boolean", "created_at timestamptz",
                          "admin_id varchar"),
    ),
    Resource(
        "contacts", "POST /contacts/search", "search", "Read and list users and companies",
        ("POST", "/contacts/search", _SEARCH_PROBE), UPSERT, cursor="updated_at",
        evidence_columns=(
            *_IDS, "role varchar", "email_hmac varchar", "phone_hmac varchar", "external_id_hmac varchar",
            "email_domain varchar", "has_email boolean", "is_internal_domain boolean", "email_looks_test boolean",
            "has_name boolean", "has_phone boolean", "owner_id varchar", "country varchar", "country_code varchar",
            "unsubscribed_from_emails boolean", "marked_email_as_spam boolean", "has_hard_bounced boolean",
            "tag_ids varchar[]", "company_ids varchar[]", "custom_attribute_keys varchar[]",
            "created_at timestamptz", "updated_at timestamptz", "signed_up_at timestamptz",
            "last_seen_at timestamptz", "last_replied_at timestamptz"),
    ),
    Resource(
        "conversations", "POST /conversations/search", "search", "Read conversations",
        ("POST", "/conversations/search", _SEARCH_PROBE), UPSERT, cursor="updated_at",
        evidence_columns=(
            *_IDS, "created_at timestamptz", "updated_at timestamptz", "waiting_since timestamptz",
            "state varchar", "open boolean", "admin_assignee_id varchar", "team_assignee_id varchar",
            "tag_names varchar[]", "custom_attribute_keys varchar[]", "source_author_type varchar",
            "sla_status varchar", "time_to_admin_reply bigint", "time_to_first_close bigint",
            "first_admin_reply_at timestamptz", "first_close_at timestamptz", "last_close_at timestamptz"),
    ),
    Resource(
        "deleted_conversations", "GET /conversations/deleted", "page_number", "Read conversations",
        ("GET", "/conversations/deleted", {"per_page": 1}), UPSERT, cursor="deleted_at",
        columns=COLUMNS["deleted_conversations"], evidence_columns=(*_IDS, "deleted_at timestamptz"),
    ),
    Resource(
        "activity_logs", "GET /admins/activity_logs", "activity_log", "Read admin activity logs",
        ("GET", "/admins/activity_logs", {"created_at_after": "0", "per_page": 1}), UPSERT, cursor="created_at",
        columns=COLUMNS["activity_logs"],
        evidence_columns=(*_IDS, "created_at timestamptz", "activity_type varchar", "performed_by_type varchar",
                          "performed_by_id varchar", "performed_by_email varchar", "performed_by_ip varchar",
                          "activity_description varchar", "metadata json"),
    ),
    Resource(
        "ip_allowlist", "GET /ip_allowlist", "single", "Manage IP allowlist (manage_ip_allowlist)",
        ("GET", "/ip_allowlist", {}), SNAPSHOT, optional=True,
        columns=COLUMNS["ip_allowlist"], fetch=(Fetch("/ip_allowlist"),), rows=_one(ip_allowlist_row),
        evidence_columns=(*_IDS, "enabled boolean", "ip_allowlist varchar[]"),
    ),
)

RESOURCE_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCES)
LOADED_RESOURCES: tuple[Resource, ...] = tuple(r for r in RESOURCES if not r.optional)
"""What every run loads (the optional resources only when asked for)."""
SNAPSHOT_RESOURCES: tuple[Resource, ...] = tuple(r for r in RESOURCES if r.rows is not None)
PERMISSIONS: dict[str, str] = {r.name: r.permission for r in RESOURCES}
"""Permission wording by resource name, for error messages and `check`."""


def resource(name: str) -> Resource:
    for spec in RESOURCES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def evidence_columns(spec: Resource) -> tuple[str, ...]:
    """The columns of `raw_<name>`: the declared ones, and dlt's scd2 validity for snapshots."""
    return spec.evidence_columns + (_SCD2 if spec.keeps_history else ())
