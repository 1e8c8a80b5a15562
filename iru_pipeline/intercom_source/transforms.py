"""Intercom records -> table rows, one function per resource.

Every row gets `region` and `workspace_id`; ids become strings (Intercom mixes string and
integer ids, notes §1); Unix seconds become UTC datetimes (TIMESTAMP WITH TIME ZONE in DuckDB).
Contacts and conversations are built from an allow-list: message content, names and custom
attribute values never reach a row, and a field Intercom adds later is not stored until it
is reviewed. Resources without customer personal data keep unknown fields.
Transforms never raise on odd input (wrong types, nulls, new enum values): they coerce or
drop the value.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from iru_pipeline.intercom_source.pii import Pseudonymizer, email_flags

Row = dict[str, Any]


# ----------------------------------------------------------------- value coercion


def ts(value: Any) -> datetime | None:
    """Unix seconds (int, float or digit string) or an ISO string -> aware UTC datetime."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            seconds = float(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            seconds = float(value.strip())
        elif isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        else:
            return None
        if seconds <= 0 or seconds > 32503680000:  # 0 means "never" in Intercom; reject year > 3000
            return None
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def sid(value: Any) -> str | None:
    """An id as VARCHAR: ints and strings alike; None stays None."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def assignee(value: Any) -> str | None:
    """Intercom 2.16 sends 0 for "unassigned" (notes §3.6); store NULL."""
    text = sid(value)
    return None if text in (None, "0") else text


def id_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return sorted({s for s in (sid(v) for v in value) if s is not None})


def text(value: Any, limit: int = 1000) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)[:limit]


def flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def integer(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -(2**63) <= number < 2**63 else None  # BIGINT range


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def listed(value: Any, key: str) -> list[Any]:
    """Items of an Intercom list object such as `{"type": "tag.list", "tags": [...]}`."""
    items = obj(value).get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def attribute_keys(value: Any) -> list[str]:
    """Keys of custom attributes that hold a value; the values themselves are never kept."""
    return sorted(str(k) for k, v in obj(value).items() if v not in (None, "", [], {}))


def row_hash(row: Row) -> str:
    """Content hash of a transformed row, used to skip unchanged rows of an overlap window."""
    payload = json.dumps(row, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(payload.encode(), digest_size=10).hexdigest()


# ----------------------------------------------------------------- resources


def workspace_row(me: dict[str, Any], region: str, host: str, api_version: str) -> Row:
    app = obj(me.get("app"))
    workspace_id = sid(app.get("id_code"))
    return {
        "region": region,
        "workspace_id": workspace_id,
        "id": workspace_id,
        "name": text(app.get("name")),
        "reported_region": text(app.get("region")),
        "timezone": text(app.get("timezone")),
        "identity_verification": flag(app.get("identity_verification")),
        "secure": flag(app.get("secure")),
        "created_at": ts(app.get("created_at")),
        "api_host": host,
        "api_version": api_version,
        "token_admin_id": sid(me.get("id")),
    }


_ADMIN_DROP = {"avatar", "type"}


def admin_row(admin: dict[str, Any], region: str, workspace_id: str) -> Row:
    # Admins stay in clear (DESIGN: access reviews must identify people). Unknown fields kept.
    role = obj(admin.get("role"))
    priority = obj(admin.get("team_priority_level"))
    row: Row = {k: v for k, v in admin.items() if k not in _ADMIN_DROP and not isinstance(v, (dict, list))}
    row.update(
        region=region,
        workspace_id=workspace_id,
        id=sid(admin.get("id")),
        name=text(admin.get("name")),
        email=text(admin.get("email")),
        job_title=text(admin.get("job_title")),
        away_mode_enabled=flag(admin.get("away_mode_enabled")),
        away_mode_reassign=flag(admin.get("away_mode_reassign")),
        away_status_reason_id=sid(admin.get("away_status_reason_id")),
        has_inbox_seat=flag(admin.get("has_inbox_seat")),
        team_ids=id_list(admin.get("team_ids")),
        role_id=sid(role.get("id")),
        role_name=text(role.get("name")),
        primary_team_ids=id_list(priority.get("primary_team_ids")),
        secondary_team_ids=id_list(priority.get("secondary_team_ids")),
    )
    return row


def team_row(team: dict[str, Any], region: str, workspace_id: str) -> Row:
    row: Row = {k: v for k, v in team.items() if k != "type" and not isinstance(v, (dict, list))}
    row.update(
        region=region,
        workspace_id=workspace_id,
        id=sid(team.get("id")),
        name=text(team.get("name")),
        admin_ids=id_list(team.get("admin_ids")),
        assignment_limit=integer(team.get("assignment_limit")),
        distribution_method=text(team.get("distribution_method")),
    )
    return row


def team_membership_rows(team: dict[str, Any], region: str, workspace_id: str) -> list[Row]:
    """One row per (team, admin): scd2 history then dates each membership's start and end."""
    team_id = sid(team.get("id"))
    if team_id is None:
        return []
    return [
        {"region": region, "workspace_id": workspace_id, "id": f"{team_id}:{admin_id}",
         "team_id": team_id, "admin_id": admin_id, "team_name": text(team.get("name"))}
        for admin_id in id_list(team.get("admin_ids"))
    ]


def tag_row(tag: dict[str, Any], region: str, workspace_id: str) -> Row:
    return {"region": region, "workspace_id": workspace_id, "id": sid(tag.get("id")), "name": text(tag.get("name"))}


def data_attribute_row(attr: dict[str, Any], region: str, workspace_id: str, model: str) -> Row:
    name = text(attr.get("name"))
    attr_model = text(attr.get("model")) or model
    return {
        "region": region,
        "workspace_id": workspace_id,
        # Built-in attributes have no id; the model and name identify an attribute.
        "id": f"{attr_model}:{attr.get('full_name') or name}",
        "attribute_id": sid(attr.get("id")),
        "model": attr_model,
        "name": name,
        "full_name": text(attr.get("full_name")),
        "label": text(attr.get("label")),
        "data_type": text(attr.get("data_type")),
        "custom": flag(attr.get("custom")),
        "archived": flag(attr.get("archived")),
        "api_writable": flag(attr.get("api_writable")),
        "ui_writable": flag(attr.get("ui_writable")),
        "messenger_writable": flag(attr.get("messenger_writable")),
        "created_at": ts(attr.get("created_at")),
        "updated_at": ts(attr.get("updated_at")),
        "admin_id": sid(attr.get("admin_id")),
    }


_CONTACT_TIMESTAMPS = (
    "created_at", "updated_at", "signed_up_at", "last_seen_at", "last_replied_at", "last_contacted_at",
    "last_email_opened_at", "last_email_clicked_at",
)


def contact_row(contact: dict[str, Any], region: str, workspace_id: str, pseudo: Pseudonymizer) -> Row:
    location = obj(contact.get("location"))
    tags = obj(contact.get("tags"))
    companies = obj(contact.get("companies"))
    email = contact.get("email")
    row: Row = {
        "region": region,
        "workspace_id": workspace_id,
        "id": sid(contact.get("id")),
        "role": text(contact.get("role")),
        "email_hmac": pseudo.email(email),
        "phone_hmac": pseudo.phone(contact.get("phone")),
        "external_id_hmac": pseudo.external_id(contact.get("external_id")),
        "email_domain": (text(contact.get("email_domain")) or _domain(email) or None),
        **email_flags(email, pseudo),
        "has_name": bool(text(contact.get("name"), 5)),
        "has_phone": bool(contact.get("phone")),
        "owner_id": assignee(contact.get("owner_id")),
        "country": text(location.get("country")),
        "country_code": text(location.get("country_code") or contact.get("country_code")),
        "has_hard_bounced": flag(contact.get("has_hard_bounced")),
        "marked_email_as_spam": flag(contact.get("marked_email_as_spam")),
        "unsubscribed_from_emails": flag(contact.get("unsubscribed_from_emails")),
        "tag_ids": id_list([t.get("id") for t in _data(tags)]),
        "tags_truncated": bool(tags.get("has_more")),
        "company_ids": id_list([c.get("id") for c in _data(companies)]),
        "custom_attribute_keys": attribute_keys(contact.get("custom_attributes")),
    }
    for field in _CONTACT_TIMESTAMPS:
        row[field] = ts(contact.get(field))
    return row


def conversation_row(conv: dict[str, Any], region: str, workspace_id: str) -> Row:
    source = obj(conv.get("source"))
    author = obj(source.get("author"))
    stats = obj(conv.get("statistics"))
    rating = obj(conv.get("conversation_rating"))
    sla = obj(conv.get("sla_applied"))
    ai = obj(conv.get("ai_agent"))
    tags = listed(conv.get("tags"), "tags")
    channel = obj(conv.get("channel"))
    return {
        "region": region,
        "workspace_id": workspace_id,
        "id": sid(conv.get("id")),
        "created_at": ts(conv.get("created_at")),
        "updated_at": ts(conv.get("updated_at")),
        "waiting_since": ts(conv.get("waiting_since")),
        "snoozed_until": ts(conv.get("snoozed_until")),
        "state": text(conv.get("state")),
        "open": flag(conv.get("open")),
        "read": flag(conv.get("read")),
        "priority": text(conv.get("priority")),
        "admin_assignee_id": assignee(conv.get("admin_assignee_id")),
        "team_assignee_id": assignee(conv.get("team_assignee_id")),
        "tag_ids": id_list([t.get("id") for t in tags]),
        "tag_names": sorted({n for n in (text(t.get("name")) for t in tags) if n}),
        "contact_ids": id_list([c.get("id") for c in listed(conv.get("contacts"), "contacts")]),
        "teammate_ids": id_list([t.get("id") for t in listed(conv.get("teammates"), "teammates")]),
        "company_id": sid(obj(conv.get("company")).get("id")),
        "source_type": text(source.get("type")),
        "source_delivered_as": text(source.get("delivered_as")),
        "source_author_type": text(author.get("type")),
        "source_author_id": sid(author.get("id")),
        "channel_initial": text(channel.get("initial")),
        "channel_current": text(channel.get("current")),
        "sla_name": text(sla.get("sla_name")),
        "sla_status": text(sla.get("sla_status")),
        "rating_score": integer(rating.get("rating")),
        "rating_created_at": ts(rating.get("created_at")),
        "rating_teammate_id": sid(obj(rating.get("teammate")).get("id")),
        "ai_agent_participated": flag(conv.get("ai_agent_participated")),
        "ai_agent_resolution_state": text(ai.get("resolution_state")),
        "ai_agent_last_answer_type": text(ai.get("last_answer_type")),
        "ai_agent_source_type": text(ai.get("source_type")),
        "ai_agent_rating": integer(ai.get("rating")),
        "custom_attribute_keys": attribute_keys(conv.get("custom_attributes")),
        "first_contact_reply_at": ts(obj(conv.get("first_contact_reply")).get("created_at")),
        "time_to_assignment": integer(stats.get("time_to_assignment")),
        "time_to_admin_reply": integer(stats.get("time_to_admin_reply")),
        "time_to_first_close": integer(stats.get("time_to_first_close")),
        "time_to_last_close": integer(stats.get("time_to_last_close")),
        "median_time_to_reply": integer(stats.get("median_time_to_reply")),
        "first_admin_reply_at": ts(stats.get("first_admin_reply_at")),
        "first_assignment_at": ts(stats.get("first_assignment_at")),
        "first_close_at": ts(stats.get("first_close_at")),
        "last_close_at": ts(stats.get("last_close_at")),
        "last_admin_reply_at": ts(stats.get("last_admin_reply_at")),
        "last_contact_reply_at": ts(stats.get("last_contact_reply_at")),
        "last_closed_by_id": sid(stats.get("last_closed_by_id")),
        "count_reopens": integer(stats.get("count_reopens")),
        "count_assignments": integer(stats.get("count_assignments")),
        "count_conversation_parts": integer(stats.get("count_conversation_parts")),
        "deleted_at": None,
    }


def conversation_tombstone(item: dict[str, Any], region: str, workspace_id: str) -> Row:
    """A deletion marker for the conversations table: `deleted_at` is its hard-delete column.
    Its `updated_at` is the deletion time, so it wins over an earlier version of the same
    conversation read in the same run (dedup by newest `updated_at`)."""
    deleted = ts(item.get("deleted_at")) or datetime.now(UTC)
    return {"region": region, "workspace_id": workspace_id, "id": sid(item.get("id")),
            "deleted_at": deleted, "updated_at": deleted}


def deleted_conversation_row(item: dict[str, Any], region: str, workspace_id: str) -> Row:
    return {
        "region": region,
        "workspace_id": workspace_id,
        "id": sid(item.get("id")),
        "deleted_at": ts(item.get("deleted_at")),
        "metrics_retained": flag(item.get("metrics_retained")),
    }


def activity_log_row(entry: dict[str, Any], region: str, workspace_id: str, pseudo: Pseudonymizer) -> Row:
    performer = obj(entry.get("performed_by"))
    metadata = entry.get("metadata")
    return {
        "region": region,
        "workspace_id": workspace_id,
        "id": sid(entry.get("id")),
        "created_at": ts(entry.get("created_at")),
        "activity_type": text(entry.get("activity_type"), 200),
        # Admin identity stays in clear; contact emails/phones inside text are pseudonymised.
        "performed_by_type": text(performer.get("type")),
        "performed_by_id": sid(performer.get("id")),
        "performed_by_email": text(performer.get("email")),
        "performed_by_ip": text(performer.get("ip")),
        "activity_description": pseudo.scrub_text(text(entry.get("activity_description"), 4000) or "") or None,
        "metadata": pseudo.scrub(metadata) if isinstance(metadata, (dict, list)) else None,
    }


def _data(value: dict[str, Any]) -> list[dict[str, Any]]:
    items = value.get("data")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _domain(email: Any) -> str | None:
    if isinstance(email, str) and "@" in email:
        return email.rsplit("@", 1)[1].strip().lower() or None
    return None


# ----------------------------------------------------------------- column hints

_TS = {"data_type": "timestamp", "timezone": True}
_TXT = {"data_type": "text"}
_BOOL = {"data_type": "bool"}
_INT = {"data_type": "bigint"}
_JSON = {"data_type": "json"}
_KEY = {"data_type": "text", "nullable": False}


def _hints(**cols: dict[str, Any]) -> dict[str, dict[str, Any]]:
    # Fresh dicts per column: dlt writes into hint dicts (e.g. their "name").
    base = {"region": _KEY, "workspace_id": _TXT, "id": _KEY}
    return {name: dict(hint) for name, hint in {**base, **cols}.items()}


COLUMNS: dict[str, dict[str, dict[str, Any]]] = {
    "workspaces": _hints(name=_TXT, reported_region=_TXT, timezone=_TXT, identity_verification=_BOOL,
                         secure=_BOOL, created_at=_TS, api_host=_TXT, api_version=_TXT, token_admin_id=_TXT),
    "admins": _hints(name=_TXT, email=_TXT, job_title=_TXT, away_mode_enabled=_BOOL, away_mode_reassign=_BOOL,
                     away_status_reason_id=_TXT, has_inbox_seat=_BOOL, team_ids=_JSON, role_id=_TXT,
                     role_name=_TXT, primary_team_ids=_JSON, secondary_team_ids=_JSON),
    "teams": _hints(name=_TXT, admin_ids=_JSON, assignment_limit=_INT, distribution_method=_TXT),
    "team_memberships": _hints(team_id=_TXT, admin_id=_TXT, team_name=_TXT),
    "tags": _hints(name=_TXT),
    "data_attributes": _hints(attribute_id=_TXT, model=_TXT, name=_TXT, full_name=_TXT, label=_TXT,
                              data_type=_TXT, custom=_BOOL, archived=_BOOL, api_writable=_BOOL,
                              ui_writable=_BOOL, messenger_writable=_BOOL, created_at=_TS, updated_at=_TS,
                              admin_id=_TXT),
    "contacts": _hints(
        role=_TXT, email_hmac=_TXT, phone_hmac=_TXT, external_id_hmac=_TXT, email_domain=_TXT,
        has_email=_BOOL, is_internal_domain=_BOOL, email_has_plus_tag=_BOOL, email_looks_test=_BOOL,
        has_name=_BOOL, has_phone=_BOOL, owner_id=_TXT, country=_TXT, country_code=_TXT,
        has_hard_bounced=_BOOL, marked_email_as_spam=_BOOL, unsubscribed_from_emails=_BOOL,
        tag_ids=_JSON, tags_truncated=_BOOL, company_ids=_JSON, custom_attribute_keys=_JSON,
        deleted_at={**_TS, "hard_delete": True},
        # A record read twice in one run (updated while the sync paged) keeps its newest version.
        **{f: ({**_TS, "dedup_sort": "desc"} if f == "updated_at" else _TS) for f in _CONTACT_TIMESTAMPS},
    ),
    "conversations": _hints(
        created_at=_TS, updated_at={**_TS, "dedup_sort": "desc"}, waiting_since=_TS, snoozed_until=_TS, state=_TXT, open=_BOOL,
        read=_BOOL, priority=_TXT, admin_assignee_id=_TXT, team_assignee_id=_TXT, tag_ids=_JSON,
        tag_names=_JSON, contact_ids=_JSON, teammate_ids=_JSON, company_id=_TXT, source_type=_TXT,
        source_delivered_as=_TXT, source_author_type=_TXT, source_author_id=_TXT, channel_initial=_TXT,
        channel_current=_TXT, sla_name=_TXT, sla_status=_TXT, rating_score=_INT, rating_created_at=_TS,
        rating_teammate_id=_TXT, ai_agent_participated=_BOOL, ai_agent_resolution_state=_TXT,
        ai_agent_last_answer_type=_TXT, ai_agent_source_type=_TXT, ai_agent_rating=_INT,
        custom_attribute_keys=_JSON, first_contact_reply_at=_TS, time_to_assignment=_INT,
        time_to_admin_reply=_INT, time_to_first_close=_INT, time_to_last_close=_INT,
        median_time_to_reply=_INT, first_admin_reply_at=_TS, first_assignment_at=_TS, first_close_at=_TS,
        last_close_at=_TS, last_admin_reply_at=_TS, last_contact_reply_at=_TS, last_closed_by_id=_TXT,
        count_reopens=_INT, count_assignments=_INT, count_conversation_parts=_INT,
        deleted_at={**_TS, "hard_delete": True},
    ),
    "deleted_conversations": _hints(deleted_at={**_TS, "dedup_sort": "desc"}, metrics_retained=_BOOL),
    "activity_logs": _hints(created_at=_TS, activity_type=_TXT, performed_by_type=_TXT, performed_by_id=_TXT,
                            performed_by_email=_TXT, performed_by_ip=_TXT, activity_description=_TXT,
                            metadata=_JSON),
}
