"""The search query language of `POST /contacts/search` and `POST /conversations/search`.

docs/intercom-api.md#search-semantics: filters `{field, operator, value}`, groups `{operator: AND|OR, value: [...]}`
nested
at most two levels with at most 15 entries per group, operators `= != IN NIN < > <= >= ~ !~ ^ $`.
Contact date fields are matched by calendar day in the workspace time zone and accept only
`= < >`; conversation date `>`/`<` are inclusive and exact to the second.

A compiled query can also say which seconds of `updated_at` it can match (`time_ranges`), so
the store turns it into index ranges over generated records instead of scanning them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from .constants import SEARCH_MAX_GROUP_SIZE, SEARCH_MAX_NESTING
from .timeline import local_day_start, next_local_midnight

NEG_INF = -(2**62)
POS_INF = 2**62
Ranges = list[tuple[int, int]]
"""Sorted, disjoint half-open second ranges [start, stop)."""

OPERATORS = frozenset({"=", "!=", "IN", "NIN", "<", ">", "<=", ">=", "~", "!~", "^", "$"})


class SearchError(Exception):
    """A query Intercom would reject with 400; `code` is the error-list code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Field catalogues -------------------------------------------------------------------------
_CONTACT_DATES = frozenset({
    "created_at", "signed_up_at", "updated_at", "last_seen_at", "last_contacted_at", "last_replied_at",
    "last_email_opened_at", "last_email_clicked_at", "ios_last_seen_at", "android_last_seen_at",
})
_CONTACT_BOOLS = frozenset({"unsubscribed_from_emails", "marked_email_as_spam", "has_hard_bounced"})
_CONTACT_STRINGS: dict[str, str] = {
    # search field -> dotted path in the record
    "id": "id", "role": "role", "name": "name", "avatar": "avatar.image_url", "owner_id": "owner_id",
    "email": "email", "email_domain": "email_domain", "phone": "phone", "external_id": "external_id",
    "language_override": "language_override", "browser": "browser", "browser_language": "browser_language",
    "os": "os", "location.country": "location.country", "location.region": "location.region",
    "location.city": "location.city", "ios_app_version": "ios_app_version", "ios_device": "ios_device",
    "ios_app_device": "ios_device", "ios_os_version": "ios_os_version", "ios_app_name": "ios_app_name",
    "ios_sdk_version": "ios_sdk_version", "android_app_version": "android_app_version",
    "android_device": "android_device", "android_app_name": "android_app_name",
    "android_sdk_version": "android_sdk_version", "andoid_sdk_version": "android_sdk_version",
    "android_os_version": "android_os_version",
}

_CONVERSATION_DATES = frozenset({
    "created_at", "updated_at", "waiting_since", "snoozed_until",
    "statistics.first_contact_reply_at", "statistics.first_assignment_at", "statistics.first_admin_reply_at",
    "statistics.first_close_at", "statistics.last_assignment_at", "statistics.last_assignment_admin_reply_at",
    "statistics.last_contact_reply_at", "statistics.last_admin_reply_at", "statistics.last_close_at",
    "conversation_rating.requested_at", "conversation_rating.replied_at",
})
_CONVERSATION_INTS = frozenset({
    "admin_assignee_id", "team_assignee_id", "statistics.time_to_assignment", "statistics.time_to_admin_reply",
    "statistics.time_to_first_close", "statistics.time_to_last_close", "statistics.median_time_to_reply",
    "statistics.count_reopens", "statistics.count_assignments", "statistics.count_conversation_parts",
    "conversation_rating.score", "ai_agent.rating",
})
_CONVERSATION_BOOLS = frozenset({"open", "read", "ai_agent_participated"})
_CONVERSATION_PATHS: dict[str, str] = {
    "conversation_rating.score": "conversation_rating.rating",
    "conversation_rating.requested_at": "conversation_rating.created_at",
    "conversation_rating.replied_at": "conversation_rating.updated_at",
    "conversation_rating.contact_id": "conversation_rating.contact.id",
    "conversation_rating.admin_d": "conversation_rating.teammate.id",
    "conversation_rating.admin_id": "conversation_rating.teammate.id",
    "channel_initiated": "source.type",
}
_CONVERSATION_STRINGS = frozenset({
    "id", "source.type", "source.id", "source.delivered_as", "source.subject", "source.body", "source.author.id",
    "source.author.type", "source.author.name", "source.author.email", "source.url", "state", "priority",
    "channel_initiated", "statistics.last_closed_by_id", "conversation_rating.remark",
    "conversation_rating.contact_id", "conversation_rating.admin_d", "conversation_rating.admin_id",
    "ai_agent.resolution_state", "ai_agent.last_answer_type", "ai_agent.rating_remark", "ai_agent.source_type",
    "ai_agent.source_title", "title",
})


def resolve_path(record: dict[str, Any], path: str) -> Any:
    """Value at a dotted path, or None when any step is missing."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _contact_tag_ids(record: dict[str, Any]) -> list[str]:
    tags = record.get("tags") or {}
    full = getattr(tags, "all_items", None)
    items = full if full is not None else tags.get("data", [])
    return [t["id"] for t in items]


def _formatted_phone(record: dict[str, Any]) -> str | None:
    phone = record.get("phone")
    return None if phone is None else "+" + "".join(ch for ch in phone if ch.isdigit())


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    """`string`, `date`, `integer`, `boolean`, or `tag` (contact tag_id: `=`/`!=` only)."""
    get: Callable[[dict[str, Any]], Any]
    multi: bool = False
    words: bool = False
    """source.body matches individual words (spec)."""


def _path_getter(path: str) -> Callable[[dict[str, Any]], Any]:
    if "." not in path:
        return lambda r: r.get(path)
    return lambda r: resolve_path(r, path)


def contact_field(name: str) -> FieldSpec:
    if name in _CONTACT_DATES:
        return FieldSpec(name, "date", _path_getter(name))
    if name in _CONTACT_BOOLS:
        return FieldSpec(name, "boolean", _path_getter(name))
    if name in _CONTACT_STRINGS:
        return FieldSpec(name, "string", _path_getter(_CONTACT_STRINGS[name]))
    if name == "tag_id":
        return FieldSpec(name, "tag", _contact_tag_ids, multi=True)
    if name == "formatted_phone":
        return FieldSpec(name, "string", _formatted_phone)
    if name == "segment_id":
        return FieldSpec(name, "string", lambda r: None)
    if name.startswith("custom_attributes.") and len(name) > len("custom_attributes."):
        return FieldSpec(name, "custom", _path_getter(name))
    raise SearchError("parameter_invalid", f"'{name}' is not a searchable contact field")


def conversation_field(name: str) -> FieldSpec:
    path = _CONVERSATION_PATHS.get(name, name)
    if name in _CONVERSATION_DATES:
        return FieldSpec(name, "date", _path_getter(path))
    if name in _CONVERSATION_INTS:
        return FieldSpec(name, "integer", _path_getter(path))
    if name in _CONVERSATION_BOOLS:
        return FieldSpec(name, "boolean", _path_getter(path))
    if name == "tag_ids":
        return FieldSpec(name, "string", lambda r: [t["id"] for t in (r.get("tags") or {}).get("tags", [])], multi=True)
    if name == "contact_ids":
        return FieldSpec(name, "string", lambda r: [c["id"] for c in (r.get("contacts") or {}).get("contacts", [])],
                         multi=True)
    if name == "teammate_ids":
        return FieldSpec(name, "string",
                         lambda r: [t["id"] for t in ((r.get("teammates") or {}).get("teammates") or [])], multi=True)
    if name == "source.body":
        return FieldSpec(name, "string", _path_getter(path), words=True)
    if name in _CONVERSATION_STRINGS or name.startswith("statistics.") or name.startswith("ai_agent."):
        return FieldSpec(name, "string", _path_getter(path))
    if name.startswith("custom_attributes.") and len(name) > len("custom_attributes."):
        return FieldSpec(name, "custom", _path_getter(name))
    raise SearchError("parameter_invalid", f"'{name}' is not a searchable conversation field")


# Compiled nodes ---------------------------------------------------------------------------
class Node:
    def matches(self, record: dict[str, Any]) -> bool:
        raise NotImplementedError

    def time_ranges(self, field: str) -> tuple[Ranges, bool]:
        """(seconds of `field` this node can match, whether that is the whole condition)."""
        raise NotImplementedError


_TAG_RE = re.compile(r"<[^>]+>")


@dataclass
class Filter(Node):
    spec: FieldSpec
    operator: str
    value: Any
    ranges: Ranges | None = None
    """For date filters: the matching seconds (day-truncated for contacts)."""

    def matches(self, record: dict[str, Any]) -> bool:
        actual = self.spec.get(record)
        if self.ranges is not None:
            return actual is not None and _in_ranges(actual, self.ranges)
        if self.spec.multi:
            values = actual or []
            positive = self.operator in ("=", "IN", "~", "^", "$", "<", ">", "<=", ">=")
            hits = any(_compare(v, self.operator if positive else _NEGATED[self.operator], self.value) for v in values)
            return hits if positive else not hits
        if self.spec.words and isinstance(actual, str) and self.operator in ("=", "!=", "IN", "NIN"):
            words = _TAG_RE.sub(" ", actual).replace(".", " ").replace(",", " ").split()
            positive = self.operator in ("=", "IN")
            wanted = self.value if isinstance(self.value, list) else [self.value]
            hit = any(str(w) in words for w in wanted)
            return hit if positive else not hit
        return _compare(actual, self.operator, self.value)

    def time_ranges(self, field: str) -> tuple[Ranges, bool]:
        if self.spec.name == field and self.ranges is not None:
            return self.ranges, True
        return [(NEG_INF, POS_INF)], False


_NEGATED = {"!=": "=", "NIN": "IN", "!~": "~"}


@dataclass
class Group(Node):
    operator: str
    children: list[Node]

    def matches(self, record: dict[str, Any]) -> bool:
        if self.operator == "AND":
            return all(c.matches(record) for c in self.children)
        return any(c.matches(record) for c in self.children)

    def time_ranges(self, field: str) -> tuple[Ranges, bool]:
        parts = [c.time_ranges(field) for c in self.children]
        exact = all(e for _, e in parts)
        if self.operator == "AND":
            ranges: Ranges = [(NEG_INF, POS_INF)]
            for r, _ in parts:
                ranges = intersect_ranges(ranges, r)
            return ranges, exact
        merged: Ranges = []
        for r, _ in parts:
            merged = _union(merged, r)
        return merged, exact


def _compare(actual: Any, op: str, value: Any) -> bool:
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    if op == "IN":
        return actual in value
    if op == "NIN":
        return actual not in value
    if op in ("<", ">", "<=", ">="):
        if actual is None or isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return False
        if op == "<":
            return actual < value
        if op == ">":
            return actual > value
        if op == "<=":
            return actual <= value
        return actual >= value
    text = "" if actual is None else str(actual)
    needle = str(value)
    if op == "~":
        return actual is not None and needle in text
    if op == "!~":
        return needle not in text
    if op == "^":
        return actual is not None and text.startswith(needle)
    if op == "$":
        return actual is not None and text.endswith(needle)
    return False


def _in_ranges(t: int, ranges: Ranges) -> bool:
    return any(a <= t < b for a, b in ranges)


def intersect_ranges(a: Ranges, b: Ranges) -> Ranges:
    out: Ranges = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if s < e:
                out.append((s, e))
    return _normalise(out)


def _union(a: Ranges, b: Ranges) -> Ranges:
    return _normalise(a + b)


def _normalise(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for s, e in sorted(r for r in ranges if r[0] < r[1]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    cursor = NEG_INF
    for s, e in _normalise(ranges):
        if cursor < s:
            out.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < POS_INF:
        out.append((cursor, POS_INF))
    return out


# Compilation ------------------------------------------------------------------------------
class QueryCompiler:
    """Validates a query body and compiles it for one model ("contact" or "conversation")."""

    def __init__(self, model: str, tz: ZoneInfo) -> None:
        self.model = model
        self.tz = tz
        self._field = contact_field if model == "contact" else conversation_field

    def compile(self, query: Any) -> Node:
        if query is None:
            raise SearchError("parameter_not_found", "query is required")
        return self._node(query, depth=0)

    def _node(self, query: Any, depth: int) -> Node:
        if not isinstance(query, dict):
            raise SearchError("parameter_invalid", "query must be an object")
        if "field" in query:
            return self._filter(query)
        operator = query.get("operator")
        if operator not in ("AND", "OR"):
            raise SearchError("parameter_invalid", f"unsupported operator {operator!r}; groups use AND or OR")
        if depth >= SEARCH_MAX_NESTING:
            raise SearchError("parameter_invalid", f"queries can be nested at most {SEARCH_MAX_NESTING} levels deep")
        children = query.get("value")
        if not isinstance(children, list) or not children:
            raise SearchError("parameter_invalid", f"{operator} needs a non-empty list of filters in 'value'")
        if len(children) > SEARCH_MAX_GROUP_SIZE:
            raise SearchError("parameter_invalid",
                              f"at most {SEARCH_MAX_GROUP_SIZE} filters are allowed in one {operator} group")
        return Group(operator, [self._node(c, depth + 1) for c in children])

    def _filter(self, query: dict[str, Any]) -> Filter:
        name, operator, value = query.get("field"), query.get("operator"), query.get("value")
        if not isinstance(name, str):
            raise SearchError("parameter_invalid", "field must be a string")
        if operator not in OPERATORS:
            raise SearchError("parameter_invalid", f"operator {operator!r} is not supported")
        spec = self._field(name)
        if operator in ("IN", "NIN"):
            if not isinstance(value, list):
                raise SearchError("parameter_invalid", f"operator {operator} needs an array value")
        elif isinstance(value, (list, dict)):
            raise SearchError("parameter_invalid", f"operator {operator} needs a single value")
        kind = spec.kind
        if kind == "date":
            return self._date_filter(spec, operator, value)
        if kind == "tag" and operator not in ("=", "!="):
            raise SearchError("parameter_invalid", "tag_id supports only the = and != operators")
        if kind == "integer":
            if operator in ("~", "!~", "^", "$"):
                raise SearchError("parameter_invalid", f"operator {operator} is not supported for integer field {name}")
            value = [_as_int(name, v) for v in value] if isinstance(value, list) else _as_int(name, value)
        elif kind == "boolean":
            if operator not in ("=", "!=", "IN", "NIN"):
                raise SearchError("parameter_invalid", f"operator {operator} is not supported for boolean field {name}")
            value = [_as_bool(name, v) for v in value] if isinstance(value, list) else _as_bool(name, value)
        elif kind in ("string", "tag"):
            if operator in ("<", ">", "<=", ">="):
                raise SearchError("parameter_invalid", f"operator {operator} is not supported for string field {name}")
            value = [_as_str(v) for v in value] if isinstance(value, list) else _as_str(value)
        return Filter(spec, operator, value)

    def _date_filter(self, spec: FieldSpec, operator: str, value: Any) -> Filter:
        if operator in ("~", "!~", "^", "$"):
            raise SearchError("parameter_invalid", f"operator {operator} is not supported for date field {spec.name}")
        if self.model == "contact":
            # docs/intercom-api.md#search-semantics: contact dates are day-granular in the workspace time zone; only
            # = < >.
            if operator not in ("=", "<", ">"):
                raise SearchError("parameter_invalid",
                                  f"operator {operator} is not supported for date field {spec.name}; use =, < or >")
            t = _as_int(spec.name, value)
            start, stop = local_day_start(t, self.tz), next_local_midnight(t, self.tz)
            ranges = {"=": [(start, stop)], ">": [(stop, POS_INF)], "<": [(NEG_INF, start)]}[operator]
            return Filter(spec, operator, t, ranges)
        # Conversations: > and < are "greater/lower (or equal)" (spec operator table), to the second.
        if operator in ("IN", "NIN"):
            points = sorted({_as_int(spec.name, v) for v in value})
            ranges = _normalise([(p, p + 1) for p in points])
            return Filter(spec, operator, points, ranges if operator == "IN" else _complement(ranges))
        t = _as_int(spec.name, value)
        ranges = {
            "=": [(t, t + 1)], "!=": _complement([(t, t + 1)]),
            ">": [(t, POS_INF)], ">=": [(t, POS_INF)], "<": [(NEG_INF, t + 1)], "<=": [(NEG_INF, t + 1)],
        }[operator]
        return Filter(spec, operator, t, ranges)


def _as_int(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise SearchError("type_mismatch", f"{field} expects an integer timestamp or number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    raise SearchError("type_mismatch", f"{field} expects an integer, got {value!r}")


def _as_bool(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SearchError("type_mismatch", f"{field} expects a boolean, got {value!r}")


def _as_str(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    return str(value) if isinstance(value, (int, float)) else value


@dataclass(frozen=True)
class SortSpec:
    field: str
    descending: bool
    get: Callable[[dict[str, Any]], Any]


def parse_sort(sort: Any, model: str) -> SortSpec | None:
    """`sort: {field, order}`; order must be ascending|descending (400 invalid_sort_order)."""
    if sort is None:
        return None
    if not isinstance(sort, dict) or not isinstance(sort.get("field"), str):
        raise SearchError("parameter_invalid", "sort must be an object with a field")
    order = sort.get("order", "descending")
    if order not in ("ascending", "descending"):
        raise SearchError("invalid_sort_order", f"Invalid sort order '{order}'. Must be one of: ascending, descending")
    spec = (contact_field if model == "contact" else conversation_field)(sort["field"])
    return SortSpec(sort["field"], order == "descending", spec.get)
