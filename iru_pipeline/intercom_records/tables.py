"""Contacts and conversations: their columns, defined once, and pages of them as Arrow tables.

Why Arrow, built by hand: these two resources carry nearly all the volume (millions of rows),
and dlt's dict path (normalise every row in Python) tops out near 5k rows/s here, while Arrow
tables go straight to parquet (docs/ingestion.md#tables-arrow-built-in-worker-processes-for-large-syncs: about 5x
faster end to end).

The column machinery (kinds, `Column`, `TableSpec`, decoding) is in `arrow_columns.py`;
this module declares the two tables and the values derived from several fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from iru_pipeline.intercom_records.arrow_columns import (
    Column,
    Items,
    Records,
    TableSpec,
    col,
    derived,
    text_array,
)
from iru_pipeline.intercom_records.pii import (
    TEST_LOOKING,
    Pseudonymizer,
    normalize_email,
    normalize_external_id,
    normalize_phone,
)
from iru_pipeline.intercom_records.transforms import attribute_keys, id_list, text

__all__ = [
    "CONTACTS", "CONTACTS_SCHEMA", "CONVERSATIONS", "CONVERSATIONS_SCHEMA", "Column", "Records", "TableSpec",
    "col", "contacts_table", "conversations_table", "derived", "tombstones_table",
]


# ----------------------------------------------------------------- derived values


def _ids_of(path: tuple[str, ...], list_key: str) -> Callable[[Records], list[Any]]:
    """Sorted unique ids of the objects listed at `path` (e.g. a contact's `tags.data`)."""
    def ids(records: Records) -> list[Any]:
        out = []
        for listed in records.values((*path, list_key)):
            out.append(id_list([i.get("id") for i in listed if type(i) is dict]) if listed and type(listed) is list
                       else [])
        return out
    return ids


def _custom_attribute_keys(records: Records) -> list[Any]:
    return [attribute_keys(v) if v else [] for v in records.values(("custom_attributes",))]


def _emails(records: Records) -> list[str | None]:
    return records.once("emails", lambda r: [normalize_email(e) for e in r.values(("email",))])


_NORMALIZE = {"email": normalize_email, "phone": normalize_phone, "external_id": normalize_external_id}


def _pseudonyms(kind: str) -> Callable[[Records], list[Any]]:
    """HMACs of the normalised identifier (pii.py); the clear value goes no further."""
    def pseudonyms(records: Records) -> list[Any]:
        assert records.pseudo is not None, "contacts need a Pseudonymizer"
        norm = _emails(records) if kind == "email" else [_NORMALIZE[kind](v) for v in records.values((kind,))]
        return records.pseudo.digests(kind, norm)
    return pseudonyms


def _email_domain(records: Records) -> list[Any]:
    stated = text_array(records.values(("email_domain",))).to_pylist()
    return [s or (e.rpartition("@")[2].strip() or None if e and "@" in e else None)
            for s, e in zip(stated, _emails(records), strict=True)]


def _email_flags(records: Records) -> list[tuple[bool, bool, bool, bool]]:
    """has_email, is_internal_domain, email_has_plus_tag, email_looks_test: computed from the
    clear address before it is dropped (all False without one)."""
    def flags(r: Records) -> list[tuple[bool, bool, bool, bool]]:
        is_internal = r.pseudo.is_internal if r.pseudo is not None else (lambda domain: False)
        out = []
        for e in _emails(r):
            if not e:
                out.append((False, False, False, False))
                continue
            local, _, domain = e.partition("@")
            out.append((True, is_internal(domain), "+" in local, bool(TEST_LOOKING.search(local))))
        return out
    return records.once("email_flags", flags)


def _email_flag(position: int) -> Callable[[Records], list[Any]]:
    return lambda records: [f[position] for f in _email_flags(records)]


def _country_code(records: Records) -> list[Any]:
    own = records.values(("country_code",))
    return [loc or c for loc, c in zip(records.values(("location", "country_code")), own, strict=True)]


def _tag_names(records: Records) -> list[Any]:
    out = []
    for listed in records.values(("tags", "tags")):
        names = {text(t.get("name")) for t in listed if type(t) is dict} if type(listed) is list else set()
        out.append(sorted(n for n in names if n))
    return out


def _null(records: Records) -> list[Any]:
    return [None] * len(records.items)


_CONTACT_TIMESTAMPS = (
    "created_at", "updated_at", "signed_up_at", "last_seen_at", "last_replied_at", "last_contacted_at",
    "last_email_opened_at", "last_email_clicked_at",
)

CONTACTS = TableSpec("contacts", (
    col("id", "id"),
    col("role", "text"),
    derived("email_hmac", "text", _pseudonyms("email"), "email"),
    derived("phone_hmac", "text", _pseudonyms("phone"), "phone"),
    derived("external_id_hmac", "text", _pseudonyms("external_id"), "external_id"),
    derived("email_domain", "text", _email_domain, "email_domain", "email"),
    derived("has_email", "flag", _email_flag(0), "email"),
    derived("is_internal_domain", "flag", _email_flag(1), "email"),
    derived("email_has_plus_tag", "flag", _email_flag(2), "email"),
    derived("email_looks_test", "flag", _email_flag(3), "email"),
    derived("has_name", "flag", lambda r: [bool(text(v, 5)) for v in r.values(("name",))], "name"),
    derived("has_phone", "flag", lambda r: [bool(v) for v in r.values(("phone",))], "phone"),
    col("owner_id", "assignee"),
    col("country", "text", "location", "country"),
    derived("country_code", "text", _country_code, "location.country_code", "country_code"),
    col("has_hard_bounced", "flag"),
    col("marked_email_as_spam", "flag"),
    col("unsubscribed_from_emails", "flag"),
    derived("tag_ids", "json", _ids_of(("tags",), "data"), "tags.data"),
    derived("tags_truncated", "flag", lambda r: [bool(v) for v in r.values(("tags", "has_more"))], "tags.has_more"),
    derived("company_ids", "json", _ids_of(("companies",), "data"), "companies.data"),
    derived("custom_attribute_keys", "json", _custom_attribute_keys, "custom_attributes"),
    derived("deleted_at", "timestamp", _null, hard_delete=True),
    # A record read twice in one run (updated while the sync paged) keeps its newest version.
    *(col(f, "timestamp", **({"dedup_sort": "desc"} if f == "updated_at" else {})) for f in _CONTACT_TIMESTAMPS),
))

_STATS = "statistics"
CONVERSATIONS = TableSpec("conversations", (
    col("id", "id"),
    col("created_at", "timestamp"),
    col("updated_at", "timestamp", dedup_sort="desc"),
    col("waiting_since", "timestamp"),
    col("snoozed_until", "timestamp"),
    col("state", "text"),
    col("open", "flag"),
    col("read", "flag"),
    col("priority", "text"),
    col("admin_assignee_id", "assignee"),
    col("team_assignee_id", "assignee"),
    derived("tag_ids", "json", _ids_of(("tags",), "tags"), "tags.tags"),
    derived("tag_names", "json", _tag_names, "tags.tags"),
    derived("contact_ids", "json", _ids_of(("contacts",), "contacts"), "contacts.contacts"),
    derived("teammate_ids", "json", _ids_of(("teammates",), "teammates"), "teammates.teammates"),
    col("company_id", "id", "company", "id"),
    col("source_type", "text", "source", "type"),
    col("source_delivered_as", "text", "source", "delivered_as"),
    col("source_author_type", "text", "source", "author", "type"),
    col("source_author_id", "id", "source", "author", "id"),
    col("channel_initial", "text", "channel", "initial"),
    col("channel_current", "text", "channel", "current"),
    col("sla_name", "text", "sla_applied", "sla_name"),
    col("sla_status", "text", "sla_applied", "sla_status"),
    col("rating_score", "int", "conversation_rating", "rating"),
    col("rating_created_at", "timestamp", "conversation_rating", "created_at"),
    col("rating_teammate_id", "id", "conversation_rating", "teammate", "id"),
    col("ai_agent_participated", "flag"),
    col("ai_agent_resolution_state", "text", "ai_agent", "resolution_state"),
    col("ai_agent_last_answer_type", "text", "ai_agent", "last_answer_type"),
    col("ai_agent_source_type", "text", "ai_agent", "source_type"),
    col("ai_agent_rating", "int", "ai_agent", "rating"),
    derived("custom_attribute_keys", "json", _custom_attribute_keys, "custom_attributes"),
    col("first_contact_reply_at", "timestamp", "first_contact_reply", "created_at"),
    *(col(f, "int", _STATS, f) for f in ("time_to_assignment", "time_to_admin_reply", "time_to_first_close",
                                         "time_to_last_close", "median_time_to_reply")),
    *(col(f, "timestamp", _STATS, f) for f in ("first_admin_reply_at", "first_assignment_at", "first_close_at",
                                               "last_close_at", "last_admin_reply_at", "last_contact_reply_at")),
    col("last_closed_by_id", "id", _STATS, "last_closed_by_id"),
    *(col(f, "int", _STATS, f) for f in ("count_reopens", "count_assignments", "count_conversation_parts")),
    derived("deleted_at", "timestamp", _null, hard_delete=True),
))

CONTACTS_SCHEMA = CONTACTS.schema
CONVERSATIONS_SCHEMA = CONVERSATIONS.schema


def contacts_table(items: Items, region: str, workspace_id: str | None, pseudo: Pseudonymizer,
                   vectorized: bool = True) -> pa.Table:
    return CONTACTS.table(items, region, workspace_id, pseudo, vectorized)


def conversations_table(items: Items, region: str, workspace_id: str | None, vectorized: bool = True) -> pa.Table:
    return CONVERSATIONS.table(items, region, workspace_id, None, vectorized)


def tombstones_table(schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    """Hard-delete markers (region, workspace_id, id, deleted_at) in a table's full schema."""
    n = len(rows)
    cols: dict[str, list[Any]] = {f.name: [None] * n for f in schema}
    for key in ("region", "workspace_id", "id"):
        cols[key] = [r[key] for r in rows]
    cols["deleted_at"] = [int(r["deleted_at"].timestamp() * 1_000_000) for r in rows]
    # The marker's updated_at is its deletion time: it wins the dedup over earlier versions.
    cols["updated_at"] = cols["deleted_at"]
    return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)
