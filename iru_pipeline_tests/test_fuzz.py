"""Property-based tests: arbitrary JSON of roughly the right shape.

(a) The resource transforms (dict rows, and the Arrow pages of contacts and conversations,
    whose column-wise fast paths equal the value-by-value path) and the overlap filter's
    content hash take any record JSON can express and never raise.
(b) The client, fed arbitrary status codes, headers and bodies through `httpx.MockTransport`
    (the one mock in the suite: a real server cannot conveniently send arbitrary bytes), ends
    every pagination kind normally or with one of its own documented errors (`IntercomError`
    subclasses), in one line without the token.

Examples are derandomised and few (a few seconds in all); `--hypothesis-seed` or a profile can
widen them locally.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from iru_pipeline.intercom_client import (
    IntercomClient,
    IntercomError,
    RateLimiter,
    RetryPolicy,
)
from iru_pipeline.intercom_records.pii import Pseudonymizer
from iru_pipeline.intercom_records.tables import CONTACTS, CONVERSATIONS, contacts_table, conversations_table
from iru_pipeline.intercom_records.transforms import (
    activity_log_row,
    admin_row,
    content_hash,
    conversation_tombstone,
    data_attribute_row,
    deleted_conversation_row,
    tag_row,
    team_membership_rows,
    team_row,
    workspace_row,
)
from iru_pipeline.intercom_source.helpers import OverlapFilter
from iru_pipeline_tests.helpers import TEST_PII_KEY

FUZZ = settings(max_examples=150, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_CLIENT = settings(FUZZ, max_examples=80)
"""Six pagination kinds: fewer examples each."""
TOKEN = "fuzz-token-3b9c1e"

# --------------------------------------------------------------------------- JSON values

# What a JSON decoder (orjson, as the client uses) can hand over: no NaN or infinity, integers
# within 64 bits (larger ones arrive as floats), strings with any code point.
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "1700000000", "1e5", "2024-02-30", "2024-01-01T00:00:00Z", "٣", "²",
                     "a@b.co", "+1 (415) 555-0100", " \n ", "null", "true"]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=15)


def timestamp() -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(min_value=-10, max_value=2**40), st.floats(allow_nan=False, allow_infinity=False),
                     st.sampled_from([0, 1_700_000_000, 32503680000, 32503680001]), json_values)


def ident() -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(min_value=-(2**63), max_value=2**64 - 1), st.text(max_size=30),
                     st.floats(allow_nan=False, allow_infinity=False), json_values)


def record(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A record whose known fields are each absent, plausible or any JSON value, plus unknown
    fields Intercom might add."""
    optional = {name: st.one_of(strategy, json_values) for name, strategy in fields.items()}
    return st.builds(lambda known, extra: {**extra, **known},
                     st.fixed_dictionaries({}, optional=optional),
                     st.dictionaries(st.text(max_size=12), json_values, max_size=3))


def id_objects(key: str = "id") -> st.SearchStrategy[Any]:
    return st.lists(st.one_of(st.fixed_dictionaries({key: ident()}), json_values), max_size=4)


emails = st.one_of(st.emails(), st.text(max_size=30), st.sampled_from(["Test+qa@Example-Corp.com", "@", "a@", "x@y"]))

contact = record({
    "type": st.just("contact"), "id": ident(), "workspace_id": st.text(max_size=10), "external_id": ident(),
    "role": st.sampled_from(["user", "lead", "visitor_v2"]), "email": emails, "email_domain": st.text(max_size=20),
    "phone": st.one_of(st.text(max_size=20), st.integers()), "name": st.text(max_size=20), "owner_id": ident(),
    "created_at": timestamp(), "updated_at": timestamp(), "signed_up_at": timestamp(), "last_seen_at": timestamp(),
    "last_replied_at": timestamp(), "last_contacted_at": timestamp(), "last_email_opened_at": timestamp(),
    "last_email_clicked_at": timestamp(), "has_hard_bounced": json_values, "marked_email_as_spam": json_values,
    "unsubscribed_from_emails": json_values,
    "location": record({"country": st.text(max_size=20), "country_code": st.text(max_size=3)}),
    "tags": record({"data": id_objects(), "has_more": json_values}),
    "companies": record({"data": id_objects()}),
    "custom_attributes": st.dictionaries(st.text(max_size=10), json_values, max_size=4),
})
conversation = record({
    "type": st.just("conversation"), "id": ident(), "created_at": timestamp(), "updated_at": timestamp(),
    "waiting_since": timestamp(), "snoozed_until": timestamp(),
    "state": st.sampled_from(["open", "closed", "snoozed", "escalated_to_legal"]), "open": json_values,
    "read": json_values, "priority": st.sampled_from(["priority", "not_priority", "p0"]),
    "admin_assignee_id": ident(), "team_assignee_id": ident(),
    "tags": record({"tags": id_objects()}), "contacts": record({"contacts": id_objects()}),
    "teammates": record({"teammates": id_objects()}), "company": record({"id": ident()}),
    "source": record({"type": st.text(max_size=10), "delivered_as": st.text(max_size=10), "body": st.text(),
                      "author": record({"type": st.text(max_size=8), "id": ident(), "email": emails})}),
    "statistics": record({k: st.one_of(timestamp(), st.integers()) for k in (
        "time_to_assignment", "time_to_admin_reply", "time_to_first_close", "time_to_last_close",
        "median_time_to_reply", "first_admin_reply_at", "first_assignment_at", "first_close_at", "last_close_at",
        "last_admin_reply_at", "last_contact_reply_at", "last_closed_by_id", "count_reopens",
        "count_assignments", "count_conversation_parts")}),
    "conversation_rating": record({"rating": json_values, "created_at": timestamp(), "teammate": record({"id": ident()})}),
    "sla_applied": record({"sla_name": st.text(max_size=10), "sla_status": st.text(max_size=10)}),
    "ai_agent": record({"resolution_state": st.text(max_size=10), "rating": json_values}),
    "ai_agent_participated": json_values, "channel": record({"initial": st.text(max_size=8)}),
    "custom_attributes": st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    "first_contact_reply": record({"created_at": timestamp()}),
})
admin = record({
    "type": st.just("admin"), "id": ident(), "name": st.text(max_size=20), "email": emails,
    "job_title": st.text(max_size=10), "away_mode_enabled": json_values, "away_mode_reassign": json_values,
    "away_status_reason_id": ident(), "has_inbox_seat": json_values,
    "team_ids": st.lists(ident(), max_size=4), "role": record({"id": ident(), "name": st.text(max_size=10)}),
    "team_priority_level": record({"primary_team_ids": st.lists(ident(), max_size=3),
                                   "secondary_team_ids": st.lists(ident(), max_size=3)}),
})
team = record({"type": st.just("team"), "id": ident(), "name": st.text(max_size=20),
               "admin_ids": st.lists(ident(), max_size=5), "assignment_limit": json_values,
               "distribution_method": st.text(max_size=10)})
tag = record({"type": st.just("tag"), "id": ident(), "name": st.text(max_size=20)})
data_attribute = record({"type": st.just("data_attribute"), "id": ident(), "name": st.text(max_size=20),
                         "full_name": st.text(max_size=20), "label": st.text(max_size=10),
                         "model": st.sampled_from(["contact", "company", "conversation"]),
                         "data_type": st.text(max_size=8), "custom": json_values, "archived": json_values,
                         "created_at": timestamp(), "updated_at": timestamp(), "admin_id": ident()})
activity_log = record({
    "id": ident(), "created_at": timestamp(), "activity_type": st.text(max_size=30),
    "activity_description": st.one_of(st.text(max_size=200), st.sampled_from([
        "Ana changed jo.smith+vip@gmail.com's phone to +44 20 7946 0958", "Called 555-0100 then 0800 123 4567"])),
    "performed_by": record({"type": st.just("admin"), "id": ident(), "email": emails, "ip": st.text(max_size=15)}),
    "metadata": json_values,
})
me = record({"type": st.just("admin"), "id": ident(), "email": emails,
             "app": record({"id_code": ident(), "name": st.text(max_size=20), "region": st.text(max_size=4),
                            "timezone": st.text(max_size=20), "identity_verification": json_values,
                            "secure": json_values, "created_at": timestamp()})})
deleted_item = record({"type": st.just("conversation"), "id": ident(), "deleted_at": timestamp(),
                       "metrics_retained": json_values})

PSEUDO = Pseudonymizer(TEST_PII_KEY, "ws_fuzz", internal_domains=("example-corp.com",),
                       known_clear_emails=("owner@example-corp.com",))


def assert_row(row: dict[str, Any], region: str = "us") -> None:
    assert row["region"] == region
    assert row["id"] is None or isinstance(row["id"], str)
    for value in row.values():
        if isinstance(value, datetime):
            assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0
    orjson.dumps(row, default=str)  # JSON-serialisable, as dlt needs


def assert_page(table: Any, reference: Any, items: list[dict[str, Any]]) -> None:
    """An Arrow page: one row per record, valid rows, and the same table as the value-by-value path."""
    assert table.num_rows == len(items)
    assert table.equals(reference), table.to_pylist()[:1] + reference.to_pylist()[:1]
    for row in table.to_pylist():
        assert_row(row)


# --------------------------------------------------------------------------- (a) transforms


@FUZZ
@given(items=st.lists(contact, max_size=4))
@example(items=[{"id": 1, "updated_at": 1e300, "tags": {"data": [{"id": 2**64 - 1}]}, "owner_id": -1.5}])
def test_contacts_never_raise(items: list[dict[str, Any]]) -> None:
    reference = contacts_table(items, "us", "ws_fuzz", PSEUDO, vectorized=False)
    assert_page(contacts_table(items, "us", "ws_fuzz", PSEUDO), reference, items)
    assert_page(CONTACTS.table_of(CONTACTS.decode(msgspec.json.encode(items), PSEUDO), "us", "ws_fuzz"), reference, items)
    OverlapFilter({}, "updated_at", 900).keep(items)
    for item in items:
        content_hash(item)


@FUZZ
@given(items=st.lists(conversation, max_size=4))
@example(items=[{"id": "1", "statistics": {"time_to_assignment": 1.2e21, "count_reopens": 2**63}}])
def test_conversations_never_raise(items: list[dict[str, Any]]) -> None:
    for item in items:
        assert_row(conversation_tombstone(item, "us", "ws_fuzz"))
    reference = conversations_table(items, "us", "ws_fuzz", vectorized=False)
    assert_page(conversations_table(items, "us", "ws_fuzz"), reference, items)
    assert_page(CONVERSATIONS.table_of(CONVERSATIONS.decode(msgspec.json.encode(items)), "us", "ws_fuzz"), reference, items)
    OverlapFilter({}, "updated_at", 900).keep(items)
    for item in items:
        content_hash(item)


@FUZZ
@given(admin=admin, team=team, tag=tag, attribute=data_attribute, deleted=deleted_item, me=me)
def test_snapshots_and_deletions_never_raise(admin: dict, team: dict, tag: dict, attribute: dict, deleted: dict,
                                            me: dict) -> None:
    assert_row(admin_row(admin, "eu", "ws_fuzz"), "eu")
    assert_row(team_row(team, "eu", "ws_fuzz"), "eu")
    for membership in team_membership_rows(team, "eu", "ws_fuzz"):
        assert_row(membership, "eu")
    assert_row(tag_row(tag, "eu", "ws_fuzz"), "eu")
    for model in ("contact", "company", "conversation"):
        assert_row(data_attribute_row(attribute, "eu", "ws_fuzz", model), "eu")
    assert_row(deleted_conversation_row(deleted, "eu", "ws_fuzz"), "eu")
    assert_row(workspace_row(me, "eu", "api.eu.intercom.io", "2.16"), "eu")


@FUZZ
@given(entry=activity_log)
@example(entry={"id": "x", "metadata": {"note": "a@b.co"}, "activity_description": "a@b.co " * 400})
def test_activity_logs_never_raise_and_never_keep_a_contact_email(entry: dict[str, Any]) -> None:
    row = activity_log_row(entry, "au", "ws_fuzz", PSEUDO)
    assert_row(row, "au")
    assert "jo.smith+vip@gmail.com" not in str(row["activity_description"]) + str(row["metadata"])


DEPTH = 1000
"""orjson (the client's decoder) accepts JSON nested up to 1024 levels."""


def deep_record(key: str) -> dict[str, Any]:
    body = b'{"id": "1", "updated_at": 1700000000, "' + key.encode() + b'": ' + b'[' * DEPTH + b'"x@y.co"' \
        + b']' * DEPTH + b'}'
    return orjson.loads(body)


@pytest.mark.parametrize("transform", [
    pytest.param(lambda: content_hash(deep_record("custom_attributes")), id="overlap-filter-content-hash"),
    pytest.param(lambda: OverlapFilter({"overlap_hashes": {"1": [0, "x"]}}, "updated_at", 900)
                 .keep([deep_record("custom_attributes")]), id="overlap-filter-seen-before"),
    pytest.param(lambda: contacts_table([deep_record("custom_attributes")], "us", "ws", PSEUDO), id="contacts-page"),
    pytest.param(lambda: conversations_table([deep_record("custom_attributes")], "us", "ws"),
                 id="conversations-page"),
    pytest.param(lambda: activity_log_row(deep_record("metadata"), "us", "ws", PSEUDO), id="activity-log"),
    pytest.param(lambda: admin_row(deep_record("team_ids"), "us", "ws"), id="admin"),
])
def test_json_nested_as_deep_as_the_client_accepts_never_breaks_a_transform(transform: Any) -> None:
    transform()


# --------------------------------------------------------------------------- (b) the client

STATUSES = [200] * 8 + [201, 204, 301, 400, 401, 402, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504, 599]
ITEM_KEYS = ["data", "admins", "teams", "conversations", "activity_logs", "contacts"]
ERROR_CODES = ["unauthorized", "token_unauthorized", "forbidden", "api_plan_restricted", "intercom_version_invalid",
               "rate_limit_exceeded", "server_error", "parameter_invalid", "not_found"]

next_links = st.one_of(
    st.none(), json_values,
    st.fixed_dictionaries({"starting_after": st.one_of(st.text(max_size=12), json_values)},
                          optional={"per_page": json_values}),
    st.sampled_from(["https://api.intercom.io/admins/activity_logs?created_at_after=0&page=2",
                     "https://evil.example/admins/activity_logs?page=2", "http://[::1/x", "//api.intercom.io/x",
                     "https://api.intercom.io:bad/x", "/admins/activity_logs?page=3&page=4", "not a url at all"]),
)
pages = st.one_of(json_values, st.fixed_dictionaries({}, optional={
    "type": st.just("pages"), "next": next_links, "page": json_values, "per_page": json_values,
    "total_pages": st.one_of(st.integers(min_value=-3, max_value=5), json_values)}))
listing_items = st.lists(st.one_of(contact, conversation, admin, activity_log, json_values), max_size=3)
listing_bodies = st.builds(
    lambda key, items, pg, total, extra: {**extra, "type": "list", key: items, "pages": pg, "total_count": total},
    st.sampled_from(ITEM_KEYS), listing_items, pages, json_values,
    st.dictionaries(st.text(max_size=8), json_values, max_size=2))
error_bodies = st.fixed_dictionaries({"type": st.just("error.list"), "request_id": json_values,
                                      "errors": st.lists(st.fixed_dictionaries(
                                          {"code": st.one_of(st.sampled_from(ERROR_CODES), json_values),
                                           "message": json_values}), max_size=2)})
bodies = st.one_of(
    st.binary(max_size=120),
    json_values.map(lambda v: json.dumps(v).encode()),
    listing_bodies.map(lambda v: json.dumps(v).encode()),
    error_bodies.map(lambda v: json.dumps(v).encode()),
    st.just(b"[" * 2000 + b"]" * 2000),
    st.just(b"<html><body>502 Bad Gateway</body></html>"),
)
headers = st.fixed_dictionaries({}, optional={
    "content-type": st.sampled_from(["application/json", "text/html", "application/json; charset=utf-8", ""]),
    "retry-after": st.one_of(st.integers(min_value=0, max_value=10**6).map(str),
                             st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
                             st.just("Wed, 21 Oct 2015 07:28:00 GMT")),
    "x-request-id": st.text(alphabet="abcdef0123456789", max_size=8),
})
responses = st.lists(st.tuples(st.sampled_from(STATUSES), bodies, headers), min_size=1, max_size=6)

# Ends every pagination kind: an empty list, no next page.
LAST = json.dumps({"type": "list", **{k: [] for k in ITEM_KEYS}, "pages": {"type": "pages", "next": None}}).encode()

# No waiting between attempts: the fuzz checks outcomes, not pacing.
NO_WAIT = RetryPolicy(max_retries=2, max_rate_limit_waits=2, backoff_base=0.0, backoff_cap=0.0, max_wait=0.0)


def fuzzed_client(script: list[tuple[int, bytes, dict[str, str]]]) -> tuple[IntercomClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []
    queue = list(script)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if queue:
            status, body, hdrs = queue.pop(0)
            return httpx.Response(status, content=body, headers=hdrs)
        return httpx.Response(200, content=LAST, headers={"content-type": "application/json"})

    client = IntercomClient("us", "https://api.intercom.io", TOKEN, retry=NO_WAIT, limiter=RateLimiter(),
                            transport=httpx.MockTransport(handler))
    return client, sent


def consume(call: Any) -> None:
    try:
        result = call()
        if not isinstance(result, dict):
            for page in result:
                assert isinstance(page.items, list) and all(isinstance(i, dict) for i in page.items)
    except IntercomError as exc:
        text = str(exc)
        assert "\n" not in text and TOKEN not in text and TOKEN not in repr(exc.__dict__)
        assert exc.region == "us"


CALLS = {
    "get": lambda c: c.get("/me", resource="workspaces"),
    "full": lambda c: c.iter_full("/admins", "admins", resource="admins"),
    "cursor": lambda c: c.iter_cursor("/contacts", "data", per_page=2, resource="contacts"),
    "search": lambda c: c.iter_search("/contacts/search", "data", {"field": "updated_at", "operator": ">", "value": 0},
                                      sort={"field": "updated_at", "order": "ascending"}, per_page=2,
                                      resource="contacts"),
    "activity_logs": lambda c: c.iter_activity_logs(0, 1_800_000_000, per_page=2),
    "numbered": lambda c: c.iter_numbered("/conversations/deleted", "conversations", {"order": "desc"}, per_page=2,
                                          resource="deleted_conversations"),
    "numbered_ahead": lambda c: c.iter_numbered("/conversations/deleted", "conversations", {"order": "desc"},
                                                per_page=2, resource="deleted_conversations", ahead=3),
}


@pytest.mark.parametrize("kind", list(CALLS))
@FUZZ_CLIENT
@given(script=responses)
@example(script=[(200, json.dumps({"activity_logs": [], "conversations": [], "data": [], "pages": "x"}).encode(), {})])
@example(script=[(200, json.dumps({"activity_logs": [], "data": [], "conversations": [],
                                   "pages": {"next": "http://[::1/x", "total_pages": 9}}).encode(), {})])
@example(script=[(200, json.dumps({"activity_logs": [{"id": 1}], "data": [{"id": 1}], "conversations": [{"id": 1}],
                                   "pages": {"next": {"starting_after": {"a": [1]}}, "total_pages": 9}}).encode(), {})])
def test_the_client_ends_or_raises_only_its_own_errors(kind: str, script: list) -> None:
    client, sent = fuzzed_client(script)
    with client:
        consume(lambda: CALLS[kind](client))
    # Bounded: every answer was asked for at most once more than the script holds, plus the
    # retries the policy allows for the final empty page (a pagination loop would show here).
    assert len(sent) <= len(script) * (NO_WAIT.max_rate_limit_waits + NO_WAIT.max_retries + 2) + 3
    for request in sent:
        assert request.url.host == "api.intercom.io", "the token only ever goes to the configured host"


def test_fuzz_inputs_are_what_the_client_decodes() -> None:
    """The strategies stay within what orjson hands the transforms (sanity of the harness)."""
    assert orjson.loads(orjson.dumps({"a": 2**64 - 1})) == {"a": 2**64 - 1}
    assert isinstance(orjson.loads(b"123456789012345678901234567890"), float)
    assert datetime.now(UTC).tzinfo is UTC
