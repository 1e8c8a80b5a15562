"""Plain constants of the Intercom dlt source: the resource table, windows and page sizes.

`RESOURCES` is the one list of what is loaded. Adding a resource means adding a row here and
a resource function in `__init__.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from iru_pipeline.intercom_client import PERMISSIONS
from iru_pipeline.intercom_client.rate_limit import MAX_IN_FLIGHT

DATASET_NAME = "intercom"
"""DuckDB schema of the raw tables."""

OVERLAP_SECONDS = 15 * 60
"""Each incremental window starts this far before the cursor. Intercom's search index lags
writes by "a few minutes" (docs/intercom-api.md#search-semantics): a record updated just before the last run may have
been invisible to it. Rows of the overlap that were already loaded unchanged are filtered by
their content hash (see helpers.OverlapFilter), so a quiet run loads nothing."""

RECONCILE_EVERY_DAYS = 7
"""Default cadence of the contact deletion sweep: the first run after this many days since
the last sweep lists every contact id and removes the contacts Intercom no longer has."""

SEARCH_PAGE_SIZE = 150
WINDOW_SPLIT_ABOVE = 3000
"""A contacts or conversations search matching more records is split into windows."""
ARROW_BATCH_ROWS = 10_000
"""Contacts and conversations go to dlt as Arrow tables of about this many rows."""
TABLE_WORKERS_ABOVE = 20_000
"""A contacts or conversations sync of more records than this builds its tables in worker
processes (table_workers.py); smaller ones are not worth starting them."""
PAGES_PER_TASK = 10
"""Search pages a table worker builds as one table: each column of a table has a fixed cost
(Arrow calls, type checks) whatever its size; measured on the fake's contacts, 20 µs per
contact in tables of one page against 15.6 µs in tables of ten."""
EXTRACT_WORKERS = MAX_IN_FLIGHT
"""Upper bound of search requests of contacts and conversations in flight at once (see
windows.py). How many are actually out follows the rate limit and the measured response
times (the client's RateLimiter, by Little's law), between 16 and this bound."""
DELETED_CONVERSATIONS_PAGE_SIZE = 60  # the endpoint's maximum (docs/intercom-api.md#pagination-four-kinds)
ACTIVITY_LOG_PAGE_SIZE = 150
INITIAL_ACTIVITY_LOG_DAYS = 365 * 3
"""How far back the first run reads admin activity logs (the API requires a lower bound)."""

SNAPSHOT = {"disposition": "merge", "strategy": "scd2"}
"""History-keeping snapshot: with merge_key="region" only the loaded region's missing rows are
retired (docs/ingestion.md#write-dispositions); `replace` would wipe the other regions."""
UPSERT = "merge"


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    endpoint: str
    pagination: str
    """single | full | search | activity_log | page_number"""
    cursor: str | None
    write_disposition: str | dict
    permission: str
    probe: tuple[str, str, dict]
    """A cheap request that proves the token may read the resource: (method, path, params/body)."""


RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec("workspaces", "GET /me", "single", None, SNAPSHOT, PERMISSIONS["workspaces"],
                 ("GET", "/me", {})),
    ResourceSpec("admins", "GET /admins", "full", None, SNAPSHOT, PERMISSIONS["admins"],
                 ("GET", "/admins", {})),
    ResourceSpec("teams", "GET /teams", "full", None, SNAPSHOT, PERMISSIONS["teams"],
                 ("GET", "/teams", {})),
    ResourceSpec("team_memberships", "GET /teams", "full", None, SNAPSHOT, PERMISSIONS["teams"],
                 ("GET", "/teams", {})),
    ResourceSpec("tags", "GET /tags", "full", None, SNAPSHOT, PERMISSIONS["tags"],
                 ("GET", "/tags", {})),
    ResourceSpec("data_attributes", "GET /data_attributes, GET /conversations/attributes", "full", None,
                 SNAPSHOT, PERMISSIONS["data_attributes"], ("GET", "/data_attributes", {"model": "contact"})),
    ResourceSpec("contacts", "POST /contacts/search", "search", "updated_at", UPSERT, PERMISSIONS["contacts"],
                 ("POST", "/contacts/search", {"query": {"field": "updated_at", "operator": ">", "value": 0},
                                                "pagination": {"per_page": 1}})),
    ResourceSpec("conversations", "POST /conversations/search", "search", "updated_at", UPSERT,
                 PERMISSIONS["conversations"],
                 ("POST", "/conversations/search", {"query": {"field": "updated_at", "operator": ">", "value": 0},
                                                     "pagination": {"per_page": 1}})),
    ResourceSpec("deleted_conversations", "GET /conversations/deleted", "page_number", "deleted_at", UPSERT,
                 PERMISSIONS["deleted_conversations"], ("GET", "/conversations/deleted", {"per_page": 1})),
    ResourceSpec("activity_logs", "GET /admins/activity_logs", "activity_log", "created_at", UPSERT,
                 PERMISSIONS["activity_logs"], ("GET", "/admins/activity_logs",
                     {"created_at_after": "0", "per_page": 1})),
)

RESOURCE_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCES)


def resource_spec(name: str) -> ResourceSpec:
    for spec in RESOURCES:
        if spec.name == name:
            return spec
    raise KeyError(name)


# Fields that exist in Intercom payloads and are deliberately not stored (PII policy). Recorded
# with each sync as the minimisation evidence.
DROPPED_FIELDS: dict[str, tuple[str, ...]] = {
    "contacts": (
        "name", "email", "phone", "external_id", "avatar", "social_profiles", "notes",
        "custom_attributes (values)", "location.city", "location.region", "browser*", "os",
        "android_*", "ios_*", "utm_*", "referrer", "formatted_phone", "language_override",
    ),
    "conversations": (
        "title", "source.body", "source.subject", "source.attachments", "source.url",
        "source.author.name", "source.author.email", "source.recipients", "source.reply_to",
        "source.email_message_metadata", "conversation_rating.remark", "ai_agent.rating_remark",
        "ai_agent.content_sources", "custom_attributes (values)", "sales_agent.collected_data",
        "first_contact_reply.url", "conversation_parts",
    ),
    "activity_logs": (
        "contact emails and phone numbers in activity_description and metadata (pseudonymised)",
    ),
}
