"""Plain constants of the fake Intercom: regions, API versions, page-size limits, marker text.

Numbers here come from Intercom's OpenAPI description, version 2.16, and the API's observed
behaviour described in docs/intercom-api.md.
"""

from __future__ import annotations

from dataclasses import dataclass

MESSAGE_BODY_MARKER = "IRU-MESSAGE-BODY-MARKER"
"""Text planted in message bodies, subjects, titles, rating remarks, attachment names and
custom attribute values. A pipeline that honours the PII policy never persists it, so a test
can grep its storage for this string."""

DEFAULT_INTERNAL_DOMAIN = "example-corp.com"
"""E-mail domain of the company that owns the workspaces (its staff, test and shared accounts)."""

API_VERSION = "2.16"
KNOWN_API_VERSIONS: tuple[str, ...] = (
    "1.0", "1.1", "1.2", "1.3", "1.4",
    "2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "2.9",
    "2.10", "2.11", "2.12", "2.13", "2.14", "2.15", "2.16",
)

# Page sizes (docs/intercom-api.md#pagination-four-kinds): the maximum for list and search endpoints is 150;
# GET /contacts defaults to 10, contact search to 50, conversation list and search to 20.
MAX_PER_PAGE = 150
CONTACTS_LIST_DEFAULT_PER_PAGE = 10
CONTACTS_SEARCH_DEFAULT_PER_PAGE = 50
CONVERSATIONS_DEFAULT_PER_PAGE = 20
# /conversations/deleted: page numbers, default 20, max 60 (spec).
DELETED_DEFAULT_PER_PAGE = 20
DELETED_MAX_PER_PAGE = 60
# Activity logs: default 20; the GET endpoint accepts up to 250 like its search sibling.
ACTIVITY_LOGS_DEFAULT_PER_PAGE = 20
ACTIVITY_LOGS_MAX_PER_PAGE = 250

# Search limits (spec "Nesting & Limitations"): two levels of groups, 15 entries per group.
SEARCH_MAX_NESTING = 2
SEARCH_MAX_GROUP_SIZE = 15

RATE_LIMIT_WINDOW_SECONDS = 10
"""Intercom enforces its per-minute limit in 10-second windows (docs/intercom-api.md#rate-limits)."""

DEFAULT_RATE_LIMIT_PER_WINDOW = 1000

SECONDS_PER_DAY = 86_400
HISTORY_SECONDS = 3 * 365 * SECONDS_PER_DAY
"""Generated records spread over roughly the three years before the fake was built."""


@dataclass(frozen=True)
class RegionProfile:
    """Everything about one regional workspace that does not depend on the seed."""

    code: str
    """`us`, `eu` or `au`."""
    reported_region: str
    """What `GET /me` reports as `app.region`."""
    timezone: str
    """IANA time zone of the workspace (`app.timezone`); contact date search uses it."""
    workspace_id: str
    """`app.id_code`, equal to `contact.workspace_id`."""
    app_name: str
    app_created_at: int
    default_token: str
    id_salt: int
    """Mixes the region into generated values."""
    contact_id_prefix: str
    """First 8 hex digits of contact ids; US and EU share one so some ids collide."""
    contact_id_stride: int
    conversation_id_base: int
    conversation_id_stride: int
    """US (stride 2) and EU (stride 3) share a base: every third US id equals an EU id."""


REGION_PROFILES: dict[str, RegionProfile] = {
    p.code: p
    for p in (
        RegionProfile(
            code="us", reported_region="US", timezone="America/Los_Angeles",
            workspace_id="t6kx9w2q", app_name="Example Corp (US)", app_created_at=1_514_764_800,
            default_token="dG9rOnQ2a3g5dzJxOmZha2UtdXMtYWNjZXNzLXRva2Vu",
            id_salt=0x5553, contact_id_prefix="6762f0d0", contact_id_stride=2,
            conversation_id_base=215_000_000_000, conversation_id_stride=2,
        ),
        RegionProfile(
            code="eu", reported_region="EU", timezone="Europe/Dublin",
            workspace_id="e4mz7r1b", app_name="Example Corp (EU) — Überwachung", app_created_at=1_546_300_800,
            default_token="dG9rOmU0bXo3cjFiOmZha2UtZXUtYWNjZXNzLXRva2Vu",
            id_salt=0x4555, contact_id_prefix="6762f0d0", contact_id_stride=3,
            conversation_id_base=215_000_000_000, conversation_id_stride=3,
        ),
        RegionProfile(
            code="au", reported_region="AU", timezone="Australia/Sydney",
            workspace_id="a9pn3v5d", app_name="Example Corp (AU)", app_created_at=1_577_836_800,
            default_token="dG9rOmE5cG4zdjVkOmZha2UtYXUtYWNjZXNzLXRva2Vu",
            id_salt=0x4155, contact_id_prefix="65a1c3e9", contact_id_stride=2,
            conversation_id_base=318_000_000_000, conversation_id_stride=2,
        ),
    )
}

ALL_REGIONS: tuple[str, ...] = tuple(REGION_PROFILES)
