"""Intercom records -> table rows, one function per resource.

Every row gets `region` and `workspace_id`; ids become strings (Intercom mixes string and
integer ids, docs/intercom-api.md#ids-timestamps-and-free-text); Unix seconds become UTC datetimes (TIMESTAMP WITH
TIME ZONE in DuckDB).
Contacts and conversations (tables.py) are built from an allow-list: message content,
names and custom attribute values never reach a row, and a field Intercom adds later is not
stored until it is reviewed. Resources without customer personal data keep unknown fields.
Transforms never raise on odd input (wrong types, nulls, new enum values): they coerce or
drop the value.
"""

from __future__ import annotations

import hashlib
import reprlib
from datetime import UTC, datetime
from typing import Any

import orjson

from iru_pipeline.intercom_records.pii import Pseudonymizer

Row = dict[str, Any]
MAX_EPOCH_SECONDS = 32503680000
"""3000-01-01: later Unix seconds are taken for garbage, not dates."""
CURSOR_MIN_SECONDS = 946684800
"""2000-01-01: an Intercom record cannot have changed before; an earlier cursor value is garbage."""
CURSOR_SKEW_SECONDS = 86400
"""A cursor value this long after the run's start is out of range: clocks differ, but not by a
day (see `readable_cursor`)."""


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
        if seconds <= 0 or seconds > MAX_EPOCH_SECONDS:  # 0 means "never" in Intercom
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


def id_list(value: Any) -> list[str]:
    """Sorted unique ids (`sid` of each), e.g. a contact's tag ids."""
    if not isinstance(value, list):
        return []
    if all(type(v) is str for v in value):  # the usual case, without a call per id
        ids = {v.strip() for v in value}
        ids.discard("")
        return sorted(ids)
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


_NO_VALUE: tuple[Any, ...] = (None, "", [], {})  # built once: a literal with [] and {} is rebuilt at every call


def attribute_keys(value: Any) -> list[str]:
    """Keys of custom attributes that hold a value; the values themselves are never kept."""
    return sorted([str(k) for k, v in obj(value).items() if v not in _NO_VALUE])


def content_hash(item: dict[str, Any]) -> str:
    """A short hash of a raw record's content (the overlap filter compares them)."""
    try:
        payload = orjson.dumps(item, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except (TypeError, RecursionError):
        # Nested deeper than orjson serialises (about 250 levels): hash a depth-limited view.
        payload = _DEEP_REPR.repr(item).encode()
    return hashlib.blake2b(payload, digest_size=10).hexdigest()


_DEEP_REPR = reprlib.Repr()
_DEEP_REPR.maxlevel = 64
_DEEP_REPR.maxdict = _DEEP_REPR.maxlist = _DEEP_REPR.maxstring = _DEEP_REPR.maxother = 10**9


def cursor_seconds(value: Any) -> float | None:
    """A cursor value (Unix seconds, or anything `ts()` reads) as seconds."""
    if type(value) is int:
        return float(value)
    parsed = ts(value)
    return parsed.timestamp() if parsed is not None else None


def readable_cursor(value: Any, not_after: float) -> float | None:
    """A cursor value as seconds, or None when it cannot place its record in time: missing,
    not a time, before 2000, or later than `not_after` (a record cannot change after the run
    started; a stray far-future value would otherwise move a cursor past every record still
    to come, and a stray old one end a newest-first listing early)."""
    if type(value) is int:
        return float(value) if CURSOR_MIN_SECONDS <= value <= not_after else None
    stamp = cursor_seconds(value)
    return stamp if stamp is not None and CURSOR_MIN_SECONDS <= stamp <= not_after else None


def cursor_kind(value: Any, not_after: float) -> str:
    """What is wrong with a cursor value, in words that never show the value itself."""
    if value is None:
        return "null or missing"
    kind = type(value).__name__
    stamp = None if isinstance(value, bool) or isinstance(value, (dict, list)) else cursor_seconds(value)
    if stamp is None:
        return f"{kind} that is not a time"
    if stamp < CURSOR_MIN_SECONDS:
        return f"{kind} before 2000"
    return f"{kind} later than the run's start" if stamp > not_after else kind


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
    # Admins stay in clear (access reviews must identify people). Unknown fields kept.
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


def ip_allowlist_row(body: dict[str, Any], region: str, workspace_id: str) -> Row:
    """The workspace's IP allowlist (`GET /ip_allowlist`): one row per workspace, its id the
    workspace's, so scd2 history dates each change of the setting or of the ranges."""
    listed = body.get("ip_allowlist")
    ranges = {r for r in (text(v, 100) for v in listed) if r} if isinstance(listed, list) else set()
    return {"region": region, "workspace_id": workspace_id, "id": workspace_id,
            "enabled": flag(body.get("enabled")), "ip_allowlist": sorted(ranges)}


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


# ----------------------------------------------------------------- column hints

_TS = {"data_type": "timestamp", "timezone": True}
_TXT = {"data_type": "text"}
_BOOL = {"data_type": "bool"}
_INT = {"data_type": "bigint"}
_JSON = {"data_type": "json"}
_KEY = {"data_type": "text", "nullable": False}


def _hints(**cols: dict[str, Any]) -> dict[str, dict[str, Any]]:
    # Fresh dicts per column: dlt writes into hint dicts (e.g. their "name").
    base: dict[str, dict[str, Any]] = {"region": _KEY, "workspace_id": _TXT, "id": _KEY}
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
    "ip_allowlist": _hints(enabled=_BOOL, ip_allowlist=_JSON),
    "deleted_conversations": _hints(deleted_at={**_TS, "dedup_sort": "desc"}, metrics_retained=_BOOL),
    "activity_logs": _hints(created_at=_TS, activity_type=_TXT, performed_by_type=_TXT, performed_by_id=_TXT,
                            performed_by_email=_TXT, performed_by_ip=_TXT, activity_description=_TXT,
                            metadata=_JSON),
}
