"""Plain constants of the Intercom dlt source: windows, page sizes, the PII drop list.

What is loaded is declared once, in `iru_pipeline.intercom_records.registry`. `RESOURCES`
and `RESOURCE_NAMES` here are what a run loads (the registry's `LOADED_RESOURCES`: optional
resources are loaded only when asked for).
"""

from __future__ import annotations

from iru_pipeline.intercom_client.rate_limit import MAX_IN_FLIGHT
from iru_pipeline.intercom_records.registry import LOADED_RESOURCES, SNAPSHOT, UPSERT, Resource
from iru_pipeline.intercom_records.registry import resource as resource_spec

ResourceSpec = Resource
RESOURCES: tuple[Resource, ...] = LOADED_RESOURCES
RESOURCE_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCES)
__all__ = [
    "RESOURCES", "RESOURCE_NAMES", "SNAPSHOT", "UPSERT", "Resource", "ResourceSpec", "resource_spec",
]

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
DELETED_PAGES_AHEAD = 8
"""Pages of `/conversations/deleted` requested at once. 100k conversations have about 1,700
deleted ones, 28 pages: read one after another at 250 ms they took 7.8 s, longer than the
search's windows beside them; eight at a time take four round trips."""
ACTIVITY_LOG_PAGE_SIZE = 150
INITIAL_ACTIVITY_LOG_DAYS = 365 * 3
"""How far back the first run reads admin activity logs (the API requires a lower bound)."""

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
