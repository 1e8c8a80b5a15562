"""The bundled fake Intercom behaves like Intercom 2.16 as described in the API notes.

Everything goes over real loopback HTTP with httpx. Module-scoped fakes serve read-only
tests; tests that mutate data or inject faults build their own small fake.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from iru_pipeline.fake_intercom import MESSAGE_BODY_MARKER, FakeIntercom, FaultConfig, build_arg_parser
from iru_pipeline.fake_intercom import scenario as sc

NOW = 1_760_000_000.0  # fixed clock: 2025-10-09T08:53:20Z
DAY = 86_400


class Clock:
    """A clock tests can move."""

    def __init__(self, start: float = NOW) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def client(fake: FakeIntercom, region: str = "us", *, version: str = "2.16", token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or fake.token(region)}", "Accept": "application/json",
               "Intercom-Version": version}
    return httpx.Client(base_url=fake.base_url(region), headers=headers, timeout=30)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeIntercom]:
    with FakeIntercom(seed=7, contacts=900, conversations=500, activity_logs=300, now=lambda: NOW) as f:
        yield f


@pytest.fixture()
def small() -> Iterator[FakeIntercom]:
    clock = Clock()
    with FakeIntercom(seed=3, contacts=120, conversations=80, activity_logs=60, now=clock) as f:
        f.test_clock = clock  # type: ignore[attr-defined]
        yield f


def walk_list(c: httpx.Client, path: str, per_page: int, key: str,
              extra: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow `pages.next.starting_after` to the end; returns (items, pages objects)."""
    items, pages = [], []
    cursor = None
    for _ in range(10_000):
        params: dict[str, Any] = {"per_page": per_page, **(extra or {})}
        if cursor:
            params["starting_after"] = cursor
        body = c.get(path, params=params).raise_for_status().json()
        items += body[key]
        pages.append(body["pages"])
        nxt = body["pages"].get("next")
        if not nxt:
            return items, pages
        cursor = nxt["starting_after"]
    raise AssertionError("pagination did not end")


def walk_search(c: httpx.Client, path: str, query: dict[str, Any], per_page: int | None, key: str,
                sort: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    items, bodies = [], []
    cursor = None
    for _ in range(10_000):
        pagination: dict[str, Any] = {} if per_page is None else {"per_page": per_page}
        if cursor:
            pagination["starting_after"] = cursor
        body: dict[str, Any] = {"query": query, "pagination": pagination}
        if sort:
            body["sort"] = sort
        data = c.post(path, json=body).raise_for_status().json()
        items += data[key]
        bodies.append(data)
        nxt = data["pages"].get("next")
        if not nxt:
            return items, bodies
        cursor = nxt["starting_after"]
    raise AssertionError("search pagination did not end")


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["type"] == "error.list"
    return body["errors"][0]["code"]


# --- /me, admins, teams, tags, attributes ---------------------------------------------------
@pytest.mark.parametrize(("region", "label", "tz"), [("us", "US", "America/Los_Angeles"),
                                                      ("eu", "EU", "Europe/Dublin"),
                                                      ("au", "AU", "Australia/Sydney")])
def test_me_reports_the_workspace_region_and_timezone(fake: FakeIntercom, region: str, label: str, tz: str) -> None:
    with client(fake, region) as c:
        me = c.get("/me").json()
    assert me["type"] == "admin" and isinstance(me["id"], str)
    assert me["app"]["region"] == label and me["app"]["timezone"] == tz
    assert me["app"]["id_code"] == fake.workspace(region).workspace_id
    assert me["avatar"]["type"] == "avatar"
    assert {"identity_verification", "secure", "created_at", "name"} <= set(me["app"])


def test_admins_omit_avatar_unless_requested_and_use_mixed_id_types(fake: FakeIntercom) -> None:
    with client(fake) as c:
        plain = c.get("/admins").json()
        with_avatar = c.get("/admins", params={"display_avatar": "true"}).json()
        teams = c.get("/teams").json()
    assert plain["type"] == "admin.list" and "pages" not in plain
    assert all("avatar" not in a for a in plain["admins"])
    assert all("avatar" in a for a in with_avatar["admins"])
    assert any("role" in a for a in plain["admins"]) and any("role" not in a for a in plain["admins"])
    assert all(a["role"]["type"] == "role" for a in plain["admins"] if "role" in a)
    assert all(isinstance(a["id"], str) and all(isinstance(t, int) for t in a["team_ids"]) for a in plain["admins"])
    assert teams["type"] == "team.list" and all(isinstance(t["id"], str) for t in teams["teams"])
    members = {(str(admin_id), t["id"]) for t in teams["teams"] for admin_id in t["admin_ids"]}
    memberships = {(a["id"], str(team_id)) for a in plain["admins"] for team_id in a["team_ids"]}
    assert members == memberships and members


def test_tags_and_attribute_lists_are_full_lists(fake: FakeIntercom) -> None:
    with client(fake) as c:
        tags = c.get("/tags").json()
        contact_attrs = c.get("/data_attributes", params={"model": "contact"}).json()
        archived = c.get("/data_attributes", params={"model": "contact", "include_archived": "true"}).json()
        conv_attrs = c.get("/conversations/attributes").json()
        refused = c.get("/data_attributes", params={"model": "conversation"})
    assert tags["type"] == "list" and {"dsar", "security"} <= {t["name"] for t in tags["data"]}
    assert any(not t["name"].isascii() for t in tags["data"])
    assert contact_attrs["type"] == "list" and "pages" not in contact_attrs
    assert len(archived["data"]) == len(contact_attrs["data"]) + 1
    assert conv_attrs["type"] == "list" and {a["data_type"] for a in conv_attrs["data"]} >= {"list", "string", "integer"}
    assert refused.status_code == 422 and error_code(refused) == "parameter_invalid"


def test_216_only_endpoints_refuse_older_versions(fake: FakeIntercom) -> None:
    with client(fake, version="2.15") as old, client(fake, version="9.9") as unknown:
        for path in ("/conversations/deleted", "/conversations/attributes"):
            r = old.get(path)
            assert r.status_code == 400 and error_code(r) == "intercom_version_invalid"
        assert old.get("/contacts").status_code == 200
        r = unknown.get("/me")
        assert r.status_code == 400 and error_code(r) == "intercom_version_invalid"


def test_older_versions_get_pre_216_shapes(fake: FakeIntercom) -> None:
    with client(fake, version="2.15") as old, client(fake) as new:
        old_convs = old.get("/conversations", params={"per_page": 150}).json()["conversations"]
        new_convs = new.get("/conversations", params={"per_page": 150}).json()["conversations"]
        old_contacts = old.get("/contacts", params={"per_page": 150}).json()["data"]
    assert {c["priority"] for c in old_convs} <= {"priority", "not_priority"}
    assert any(c["admin_assignee_id"] is None for c in old_convs)
    assert 0 in {c["admin_assignee_id"] for c in new_convs}, "2.16 uses 0 for unassigned"
    assert any(isinstance(c["owner_id"], int) for c in old_contacts)


# --- cursor pagination ----------------------------------------------------------------------
@pytest.mark.parametrize("per_page", [150, 7])
def test_contact_list_pages_return_every_contact_once(fake: FakeIntercom, per_page: int) -> None:
    ws = fake.workspace("us")
    with client(fake) as c:
        items, pages = walk_list(c, "/contacts", per_page, "data")
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids))
    assert ids == [r["id"] for r in ws.contacts()]
    assert [p["page"] for p in pages] == list(range(1, len(pages) + 1))
    assert all(p["per_page"] == per_page and p["total_pages"] == len(pages) for p in pages)
    assert "next" not in pages[-1] and all(p["next"]["per_page"] == per_page for p in pages[:-1])


@pytest.mark.parametrize("per_page", [150, 7])
def test_conversation_list_pages_return_every_conversation_once(fake: FakeIntercom, per_page: int) -> None:
    ws = fake.workspace("eu")
    with client(fake, "eu") as c:
        items, _ = walk_list(c, "/conversations", per_page, "conversations")
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) == sum(1 for _ in ws.conversations())
    assert items == list(ws.conversations())


def test_page_size_defaults_and_cap(fake: FakeIntercom) -> None:
    with client(fake) as c:
        assert len(c.get("/contacts").json()["data"]) == 10
        assert len(c.get("/conversations").json()["conversations"]) == 20
        capped = c.get("/contacts", params={"per_page": 1000}).json()
        assert len(capped["data"]) == 150 and capped["pages"]["per_page"] == 150
        assert capped["total_count"] == sum(1 for _ in fake.workspace("us").contacts())


def test_cursors_are_opaque_and_tampering_is_a_400(fake: FakeIntercom) -> None:
    with client(fake) as c:
        cursor = c.get("/contacts", params={"per_page": 5}).json()["pages"]["next"]["starting_after"]
        assert not cursor.isdigit()
        base64.b64decode(cursor, validate=True)
        forged = base64.b64encode(base64.b64decode(cursor).replace(b",4,", b",9,")).decode()
        for bad in (cursor[:-6] + "AAAAAA", forged, "100", "not-base64!"):
            r = c.get("/contacts", params={"per_page": 5, "starting_after": bad})
            assert r.status_code == 400 and error_code(r) == "client_error", bad


# --- search ---------------------------------------------------------------------------------
@pytest.mark.parametrize("per_page", [150, 7])
def test_contact_search_by_updated_at_returns_every_match_once_in_order(fake: FakeIntercom, per_page: int) -> None:
    ws = fake.workspace("us")
    since = int(NOW) - 400 * DAY
    with client(fake) as c:
        items, bodies = walk_search(c, "/contacts/search", {"field": "updated_at", "operator": ">", "value": since},
                                    per_page, "data", sort={"field": "updated_at", "order": "ascending"})
    keys = [(i["updated_at"], i["id"]) for i in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    day_start = _local_midnight(since, ws.timezone, next_day=True)
    expected = {r["id"] for r in ws.contacts() if r["updated_at"] >= day_start}
    assert {i["id"] for i in items} == expected
    assert all(b["total_count"] == len(expected) for b in bodies)


def test_descending_search_is_the_reverse_with_id_tie_breaker(fake: FakeIntercom) -> None:
    query = {"field": "updated_at", "operator": ">", "value": 0}
    with client(fake) as c:
        down, _ = walk_search(c, "/contacts/search", query, 150, "data", sort={"field": "updated_at", "order": "descending"})
        default_order, _ = walk_search(c, "/contacts/search", query, 150, "data", sort={"field": "updated_at"})
        up, _ = walk_search(c, "/contacts/search", query, 150, "data", sort={"field": "updated_at", "order": "ascending"})
        bad = c.post("/contacts/search", json={"query": query, "sort": {"field": "updated_at", "order": "desc"}})
    assert [i["id"] for i in down] == [i["id"] for i in reversed(up)]
    assert [i["id"] for i in default_order] == [i["id"] for i in down], "contacts sort descending by default"
    assert bad.status_code == 400 and error_code(bad) == "invalid_sort_order"


def test_search_sorted_by_another_field_uses_id_as_tie_breaker(fake: FakeIntercom) -> None:
    with client(fake) as c:
        items, _ = walk_search(c, "/contacts/search", {"field": "role", "operator": "=", "value": "lead"}, 40, "data",
                               sort={"field": "created_at", "order": "ascending"})
    keys = [(i["created_at"], i["id"]) for i in items]
    assert keys == sorted(keys)
    assert len(items) == sum(1 for r in fake.workspace("us").contacts() if r["role"] == "lead")


def test_search_pagination_comes_only_from_the_body(fake: FakeIntercom) -> None:
    query = {"field": "updated_at", "operator": ">", "value": 0}
    with client(fake) as c:
        first = c.post("/contacts/search", json={"query": query, "pagination": {"per_page": 5}}).json()
        cursor = first["pages"]["next"]["starting_after"]
        via_query = c.post("/contacts/search", params={"starting_after": cursor},
                           json={"query": query, "pagination": {"per_page": 5}}).json()
        via_page = c.post("/contacts/search", json={"query": query, "pagination": {"per_page": 5, "page": 3}}).json()
        via_body = c.post("/contacts/search", json={"query": query,
                                                     "pagination": {"per_page": 5, "starting_after": cursor}}).json()
    assert via_query["data"] == first["data"], "query-string starting_after is ignored: page 1 again"
    assert via_page["data"] == first["data"], "pagination.page is ignored"
    assert via_body["pages"]["page"] == 2 and via_body["data"] != first["data"]


def test_search_page_size_defaults_and_cap(fake: FakeIntercom) -> None:
    query = {"field": "updated_at", "operator": ">", "value": 0}
    with client(fake) as c:
        assert len(c.post("/contacts/search", json={"query": query}).json()["data"]) == 50
        assert len(c.post("/conversations/search", json={"query": query}).json()["conversations"]) == 20
        big = c.post("/conversations/search", json={"query": query, "pagination": {"per_page": 999}}).json()
    assert big["pages"]["per_page"] == 150 and len(big["conversations"]) == 150


def _local_midnight(ts: int, tz: str, *, next_day: bool = False) -> int:
    d = datetime.fromtimestamp(ts, ZoneInfo(tz)).date() + timedelta(days=1 if next_day else 0)
    return int(datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).timestamp())


@pytest.mark.parametrize("region", ["us", "au"])
def test_contact_dates_match_whole_days_in_the_workspace_timezone(fake: FakeIntercom, region: str) -> None:
    ws = fake.workspace(region)
    contacts = list(ws.contacts())
    pivot = sorted(r["updated_at"] for r in contacts)[len(contacts) // 2]
    start, stop = _local_midnight(pivot, ws.timezone), _local_midnight(pivot, ws.timezone, next_day=True)
    # The pivot's own second is mid-day in the workspace zone, so day truncation matters.
    with client(fake, region) as c:
        def ids(op: str) -> set[str]:
            items, _ = walk_search(c, "/contacts/search", {"field": "updated_at", "operator": op, "value": pivot},
                                   150, "data")
            return {i["id"] for i in items}
        equal, greater, less = ids("="), ids(">"), ids("<")
    assert equal == {r["id"] for r in contacts if start <= r["updated_at"] < stop} and equal
    assert greater == {r["id"] for r in contacts if r["updated_at"] >= stop}
    assert less == {r["id"] for r in contacts if r["updated_at"] < start}
    assert not any(r["updated_at"] > pivot for r in contacts if r["id"] in equal and r["id"] in greater)


def test_midnight_straddling_contacts_exist(fake: FakeIntercom) -> None:
    ws = fake.workspace("us")
    stamps = {r["updated_at"] for r in ws.contacts()}
    midnights = [t for t in stamps if t == _local_midnight(t, ws.timezone)]
    assert any(m - 1 in stamps for m in midnights), "records one second before and at local midnight"


@pytest.mark.parametrize("operator", ["!=", "<=", ">=", "IN", "NIN"])
def test_contact_dates_reject_unsupported_operators(fake: FakeIntercom, operator: str) -> None:
    value: Any = [1, 2] if operator in ("IN", "NIN") else 1
    with client(fake) as c:
        r = c.post("/contacts/search", json={"query": {"field": "created_at", "operator": operator, "value": value}})
    assert r.status_code == 400 and r.json()["type"] == "error.list"


def test_conversation_date_bounds_are_inclusive_to_the_second(fake: FakeIntercom) -> None:
    convs = list(fake.workspace("us").conversations())
    pivot = convs[len(convs) // 2]["updated_at"]
    with client(fake) as c:
        def ids(op: str) -> set[str]:
            items, _ = walk_search(c, "/conversations/search", {"field": "updated_at", "operator": op, "value": pivot},
                                   150, "conversations")
            return {i["id"] for i in items}
        greater, less, equal = ids(">"), ids("<"), ids("=")
    assert greater == {r["id"] for r in convs if r["updated_at"] >= pivot}
    assert less == {r["id"] for r in convs if r["updated_at"] <= pivot}
    assert equal == {r["id"] for r in convs if r["updated_at"] == pivot} and equal <= greater & less


def test_conversation_search_without_sort_is_a_stable_relevance_order(fake: FakeIntercom) -> None:
    query = {"field": "updated_at", "operator": ">", "value": 0}
    with client(fake) as c:
        first, _ = walk_search(c, "/conversations/search", query, 33, "conversations")
        again, _ = walk_search(c, "/conversations/search", query, 150, "conversations")
        ordered, _ = walk_search(c, "/conversations/search", query, 150, "conversations",
                                 sort={"field": "updated_at", "order": "ascending"})
    assert [i["id"] for i in first] == [i["id"] for i in again]
    stamps = [i["updated_at"] for i in first]
    assert stamps != sorted(stamps) and stamps != sorted(stamps, reverse=True)
    assert sorted(i["id"] for i in first) == sorted(i["id"] for i in ordered)
    assert [i["updated_at"] for i in ordered] == sorted(stamps)


def test_nested_groups_and_string_operators_match_a_brute_force_filter(fake: FakeIntercom) -> None:
    contacts = list(fake.workspace("us").contacts())
    query = {"operator": "AND", "value": [
        {"operator": "OR", "value": [{"field": "email_domain", "operator": "$", "value": ".com"},
                                     {"field": "email", "operator": "~", "value": "+test"}]},
        {"field": "role", "operator": "IN", "value": ["user"]},
        {"field": "name", "operator": "!~", "value": "Müller"},
    ]}
    with client(fake) as c:
        items, _ = walk_search(c, "/contacts/search", query, 150, "data")
    expected = {r["id"] for r in contacts
                if (r["email_domain"].endswith(".com") or "+test" in r["email"]) and r["role"] == "user"
                and "Müller" not in (r["name"] or "")}
    assert {i["id"] for i in items} == expected and expected


def test_query_limits_are_enforced(fake: FakeIntercom) -> None:
    leaf = {"field": "role", "operator": "=", "value": "user"}
    with client(fake) as c:
        ok = c.post("/contacts/search", json={"query": {"operator": "OR", "value": [leaf] * 15}})
        too_many = c.post("/contacts/search", json={"query": {"operator": "OR", "value": [leaf] * 16}})
        two_levels = c.post("/contacts/search", json={"query": {"operator": "AND", "value": [
            {"operator": "OR", "value": [leaf, leaf]}]}})
        three_levels = c.post("/contacts/search", json={"query": {"operator": "AND", "value": [
            {"operator": "OR", "value": [{"operator": "AND", "value": [leaf]}]}]}})
        tag_gt = c.post("/contacts/search", json={"query": {"field": "tag_id", "operator": "~", "value": "1"}})
        not_json = c.post("/contacts/search", content=b"{nope", headers={"Content-Type": "application/json"})
    assert ok.status_code == 200 and two_levels.status_code == 200
    for r in (too_many, three_levels, tag_gt, not_json):
        assert r.status_code == 400 and r.json()["type"] == "error.list"


# --- record shapes and adversarial data -------------------------------------------------------
def test_hundreds_of_records_share_one_updated_at_second(fake: FakeIntercom) -> None:
    ws = fake.workspace("us")
    assert Counter(r["updated_at"] for r in ws.contacts()).most_common(1)[0][1] >= 100
    assert Counter(r["updated_at"] for r in ws.conversations()).most_common(1)[0][1] >= 100
    big = FakeIntercom(seed=1, contacts=5000, conversations=1500, regions=("eu",), now=lambda: NOW)
    assert Counter(r["updated_at"] for r in big.workspace("eu").contacts()).most_common(1)[0][1] >= 300
    assert Counter(r["updated_at"] for r in big.workspace("eu").conversations()).most_common(1)[0][1] >= 200


def test_inline_tag_lists_are_capped_at_ten_and_search_sees_all_tags(fake: FakeIntercom) -> None:
    contacts = list(fake.workspace("us").contacts())
    crowded = [r for r in contacts if r["tags"]["has_more"]]
    assert crowded and all(len(r["tags"]["data"]) == 10 < r["tags"]["total_count"] for r in crowded)
    assert all(r["tags"]["url"] == f"/contacts/{r['id']}/tags" for r in contacts[:20])
    hidden_tag = crowded[0].get("tags")
    all_ids = [t["id"] for t in hidden_tag.all_items]  # type: ignore[attr-defined]
    beyond = all_ids[10]
    with client(fake) as c:
        items, _ = walk_search(c, "/contacts/search", {"field": "tag_id", "operator": "=", "value": beyond}, 150, "data")
    assert crowded[0]["id"] in {i["id"] for i in items}


def test_ids_collide_across_regions_but_types_follow_the_spec(fake: FakeIntercom) -> None:
    us, eu = fake.workspace("us"), fake.workspace("eu")
    assert {r["id"] for r in us.contacts()} & {r["id"] for r in eu.contacts()}
    assert {r["id"] for r in us.conversations()} & {r["id"] for r in eu.conversations()}
    assert {a["id"] for a in us.admins()} & {a["id"] for a in eu.admins()}
    convs = list(us.conversations())
    assert all(isinstance(c["id"], str) and isinstance(c["admin_assignee_id"], int)
               and isinstance(c["team_assignee_id"], int) for c in convs)
    assert any(c["team_assignee_id"] == 0 for c in convs)
    assert all(isinstance(r["owner_id"], (str, type(None))) for r in us.contacts())


def test_content_carries_the_marker_a_pipeline_must_drop(fake: FakeIntercom) -> None:
    with client(fake) as c:
        convs, _ = walk_list(c, "/conversations", 150, "conversations")
    blob = json.dumps(convs, ensure_ascii=False)
    assert MESSAGE_BODY_MARKER in blob
    assert all(MESSAGE_BODY_MARKER in c["source"]["body"] for c in convs)
    assert any(c["title"] and MESSAGE_BODY_MARKER in c["title"] for c in convs)
    assert any(c["source"]["subject"] and MESSAGE_BODY_MARKER in c["source"]["subject"] for c in convs)
    assert any(c["conversation_rating"] and MESSAGE_BODY_MARKER in c["conversation_rating"]["remark"] for c in convs)
    assert any(MESSAGE_BODY_MARKER in a["name"] for c in convs for a in c["source"]["attachments"])
    assert any(MESSAGE_BODY_MARKER in str(c["custom_attributes"]) for c in convs)
    assert any(c["source"]["author"].get("email") for c in convs)
    contacts = list(fake.workspace("us").contacts())
    assert any(MESSAGE_BODY_MARKER in str(r["custom_attributes"]) for r in contacts)


def test_contacts_are_realistic_and_adversarial(fake: FakeIntercom) -> None:
    contacts = list(fake.workspace("us").contacts())
    emails = [r["email"] for r in contacts]
    assert any("+test" in e for e in emails) and any(e.endswith("@example-corp.com") for e in emails)
    assert any(e.startswith("qa.user") for e in emails) and any(e == "" for e in emails)
    assert any(r["name"] is None for r in contacts) and any(r["phone"] is None for r in contacts)
    names = [r["name"] or "" for r in contacts]
    assert any(any("\u0590" <= ch <= "\u06ff" for ch in n) for n in names), "right-to-left names"
    assert any(any(ord(ch) > 0xFFFF for ch in n) for n in names), "emoji in names"
    assert {r["role"] for r in contacts} == {"user", "lead"}


def test_single_conversation_adds_parts_with_bodies(fake: FakeIntercom) -> None:
    conv = next(iter(fake.workspace("us").conversations()))
    with client(fake) as c:
        full = c.get(f"/conversations/{conv['id']}").json()
        missing = c.get("/conversations/999999999999")
    parts = full["conversation_parts"]
    assert parts["type"] == "conversation_part.list" and parts["total_count"] == len(parts["conversation_parts"])
    assert any(MESSAGE_BODY_MARKER in (p["body"] or "") for p in parts["conversation_parts"])
    assert {k: v for k, v in full.items() if k != "conversation_parts"} == conv
    assert missing.status_code == 404


# --- deleted conversations and activity logs ---------------------------------------------------
def test_deleted_conversations_use_page_numbers_and_next_urls(fake: FakeIntercom) -> None:
    ws = fake.workspace("us")
    with client(fake) as c:
        first = c.get("/conversations/deleted", params={"per_page": 4}).json()
        assert first["type"] == "conversations.list" and first["pages"]["page"] == 1
        items, url = list(first["conversations"]), first["pages"]["next"]
        assert url.startswith(fake.base_url("us") + "/conversations/deleted?") and "page=2" in url
        while url:
            body = c.get(url).json()
            items += body["conversations"]
            url = body["pages"]["next"]
        asc = c.get("/conversations/deleted", params={"per_page": 100, "order": "asc"}).json()
    assert body["pages"]["next"] is None
    assert items == ws.deleted_conversations() and len(items) == first["total_count"] > 0
    assert [i["deleted_at"] for i in items] == sorted((i["deleted_at"] for i in items), reverse=True)
    assert asc["pages"]["per_page"] == 60 and asc["conversations"] == items[::-1][:60]
    live = {r["id"] for r in ws.conversations()}
    assert not live & {i["id"] for i in items}


def test_activity_logs_need_created_at_after_and_follow_absolute_next_urls(fake: FakeIntercom) -> None:
    ws = fake.workspace("us")
    with client(fake) as c:
        missing = c.get("/admins/activity_logs")
        first = c.get("/admins/activity_logs", params={"created_at_after": 0}).json()
        items, url = list(first["activity_logs"]), first["pages"]["next"]
        assert url.startswith(fake.base_url("us") + "/admins/activity_logs?") and "page=2" in url
        while url:
            body = c.get(url).json()
            items += body["activity_logs"]
            url = body["pages"]["next"]
        wide = c.get("/admins/activity_logs", params={"created_at_after": 0, "per_page": 250}).json()
        window = c.get("/admins/activity_logs", params={"created_at_after": int(NOW) - 30 * DAY,
                                                        "created_at_before": int(NOW) - 10 * DAY,
                                                        "per_page": 250}).json()
    assert missing.status_code == 400
    assert first["pages"]["per_page"] == 20 and len(first["activity_logs"]) == 20
    assert len(wide["activity_logs"]) == 250
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) and items == ws.activity_logs()
    stamps = [i["created_at"] for i in items]
    assert stamps == sorted(stamps, reverse=True)
    assert window["activity_logs"] and all(NOW - 30 * DAY <= i["created_at"] <= NOW - 10 * DAY
                                           for i in window["activity_logs"])


def test_activity_log_next_can_be_the_spec_cursor_object() -> None:
    with FakeIntercom(seed=2, contacts=20, conversations=20, activity_logs=70, regions=("au",),
                      activity_logs_next_style="cursor", now=lambda: NOW) as f, client(f, "au") as c:
        items, pages = walk_list(c, "/admins/activity_logs", 25, "activity_logs", {"created_at_after": 0})
        assert len(pages) > 2 and all(isinstance(p["next"], dict) for p in pages[:-1]) and pages[-1]["next"] is None
        assert items == f.workspace("au").activity_logs()


def test_activity_logs_mix_types_and_leak_contact_details_in_descriptions(fake: FakeIntercom) -> None:
    logs = fake.workspace("us").activity_logs()
    types = Counter(entry["activity_type"] for entry in logs)
    assert {"admin_login_success", "admin_login_failure", "app_data_export", "admin_permission_change"} <= set(types)
    assert len(types) >= 12
    logins = [e for e in logs if e["activity_type"] == "admin_login_success"]
    assert all("sign_in_method" in e["metadata"] for e in logins)
    assert all(set(e["performed_by"]) == {"type", "id", "email", "ip"} for e in logs)
    emails = {r["email"] for r in fake.workspace("us").contacts() if r["email"]}
    leaking = [e for e in logs if any(m in e["activity_description"] for m in emails)]
    assert leaking and any("+" in e["activity_description"].split("(")[-1] for e in leaking)


# --- auth and rate limits -----------------------------------------------------------------------
def test_bad_tokens_get_401_without_rate_limit_headers(fake: FakeIntercom) -> None:
    for token in ("wrong", fake.token("eu")):
        with client(fake, "us", token=token) as c:
            r = c.get("/contacts")
        assert r.status_code == 401 and error_code(r) == "unauthorized"
        assert r.json()["errors"][0]["message"] == "Access Token Invalid"
        assert not any(k.lower().startswith("x-ratelimit") for k in r.headers)
    no_auth = httpx.get(fake.base_url("us") + "/me")
    assert no_auth.status_code == 401
    with client(fake) as c:
        ok = c.get("/me")
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(ok.headers)
    rid = r.json().get("request_id")
    assert rid and "-" not in rid and len(rid) < 36, "request ids are short and not UUIDs"


def test_rate_limit_window_headers_and_429(small: FakeIntercom) -> None:
    clock: Clock = small.test_clock  # type: ignore[attr-defined]
    small.set_rate_limit("us", 5)
    with client(small) as c:
        answers = [c.get("/tags") for _ in range(7)]
        assert [r.status_code for r in answers] == [200] * 5 + [429] * 2
        assert [int(r.headers["X-RateLimit-Remaining"]) for r in answers[:5]] == [4, 3, 2, 1, 0]
        limited = answers[5]
        assert error_code(limited) == "rate_limit_exceeded"
        assert limited.json()["errors"][0]["message"] == "Exceeded rate limit of 5 in 10_seconds"
        reset = int(limited.headers["X-RateLimit-Reset"])
        assert reset == (int(clock.t) // 10 + 1) * 10 and int(limited.headers["Retry-After"]) >= 1
        clock.t = reset + 0.5
        assert c.get("/tags").status_code == 200
    assert small.stats("us")["rate_limited"] == 2


# --- fault injection ------------------------------------------------------------------------------
def test_429_every_nth_with_and_without_retry_after(small: FakeIntercom) -> None:
    small.faults("us").update(rate_429_every=3, retry_after=False)
    with client(small) as c:
        codes = [c.get("/tags") for _ in range(6)]
        assert [r.status_code for r in codes] == [200, 200, 429, 200, 200, 429]
        assert "Retry-After" not in codes[2].headers and codes[2].headers["X-RateLimit-Remaining"] == "0"
        small.faults("us").update(retry_after=True)
        assert [c.get("/tags").status_code for _ in range(3)] == [200, 200, 429]
        small.set_faults("us", FaultConfig(rate_429_burst=2))
        burst = [c.get("/tags").status_code for _ in range(3)]
    assert burst == [429, 429, 200]
    assert small.stats("us")["faults"]["rate_limit_429"] == 5


def test_429_can_hold_until_the_window_resets(small: FakeIntercom) -> None:
    clock: Clock = small.test_clock  # type: ignore[attr-defined]
    small.faults("us").update(rate_429_burst=1, hold_429_until_reset=True)
    with client(small) as c:
        first = c.get("/tags")
        held = [c.get("/tags").status_code for _ in range(3)]
        clock.t = int(first.headers["X-RateLimit-Reset"]) + 1
        after = c.get("/tags").status_code
    assert first.status_code == 429 and held == [429, 429, 429] and after == 200


def test_server_errors_every_nth_include_an_html_502(small: FakeIntercom) -> None:
    small.faults("us").update(error_every=2, error_statuses=(500, 502, 503, 504))
    with client(small) as c:
        answers = [c.get("/teams") for _ in range(8)]
    assert [r.status_code for r in answers] == [200, 500, 200, 502, 200, 503, 200, 504]
    assert answers[3].headers["content-type"].startswith("text/html") and b"Bad Gateway" in answers[3].content
    assert error_code(answers[1]) == "server_error" and "request_id" not in answers[5].json()
    assert small.stats("us")["server_errors"] == 4


def test_random_error_rate_is_reproducible_from_its_seed() -> None:
    def run() -> list[int]:
        with FakeIntercom(seed=5, contacts=10, conversations=10, regions=("eu",), now=lambda: NOW,
                          faults=FaultConfig(error_rate=0.3, seed=42)) as f, client(f, "eu") as c:
            return [c.get("/tags").status_code for _ in range(30)]
    first = run()
    assert first == run() and 200 in first and any(code >= 500 for code in first)


def test_connection_faults_truncate_drop_and_slow_bodies(small: FakeIntercom) -> None:
    url = small.base_url("us") + "/contacts"
    headers = {"Authorization": f"Bearer {small.token('us')}"}
    small.faults("us").update(truncate_every=1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, headers=headers)
    small.faults("us").reset().update(drop_every=1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, headers=headers)
    small.faults("us").reset().update(slow_body_every=1, slow_body_delay_ms=300)
    started = time.monotonic()
    assert httpx.get(url, headers=headers).json()["type"] == "list"
    assert time.monotonic() - started >= 0.25
    small.faults("us").reset().update(latency_ms=200)
    started = time.monotonic()
    assert httpx.get(url, headers=headers).status_code == 200
    assert time.monotonic() - started >= 0.18
    faults = small.stats("us")["faults"]
    assert faults["truncated_body"] == 1 and faults["dropped_connection"] == 1 and faults["slow_body"] == 1


def test_faults_can_be_limited_to_paths(small: FakeIntercom) -> None:
    small.faults("us").update(error_every=1, fault_paths=("/conversations",))
    with client(small) as c:
        assert c.get("/contacts").status_code == 200
        assert c.get("/conversations").status_code == 500
        assert c.post("/conversations/search", json={"query": {"field": "open", "operator": "=", "value": True}}).status_code == 502


@pytest.mark.parametrize(("kind", "status", "code"), [("scope", 403, "forbidden"), ("plan", 403, "api_plan_restricted"),
                                                      ("scope_401", 401, "token_unauthorized")])
def test_forbidden_resources(small: FakeIntercom, kind: str, status: int, code: str) -> None:
    small.faults("us").update(forbidden_paths=("/conversations",), forbidden_kind=kind)
    with client(small) as c:
        blocked = [c.get("/conversations"), c.get("/conversations/deleted"),
                   c.post("/conversations/search", json={"query": {"field": "open", "operator": "=", "value": True}})]
        assert c.get("/contacts").status_code == 200
    assert all(r.status_code == status and error_code(r) == code for r in blocked)
    if kind == "scope":
        assert "read_conversations" in blocked[0].json()["errors"][0]["message"]


def test_token_revoked_mid_run(small: FakeIntercom) -> None:
    small.faults("us").update(revoke_token_after=3)
    with client(small) as c:
        codes = [c.get("/tags").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 401, 401]


def test_repeating_cursor_fault_loops_a_naive_client(small: FakeIntercom) -> None:
    small.faults("us").update(repeat_cursor_paths=("/contacts",))
    with client(small) as c:
        first = c.get("/contacts", params={"per_page": 10}).json()["pages"]["next"]["starting_after"]
        second = c.get("/contacts", params={"per_page": 10, "starting_after": first}).json()
        third = c.get("/contacts", params={"per_page": 10, "starting_after": second["pages"]["next"]["starting_after"]}).json()
    assert second["pages"]["next"]["starting_after"] == first
    assert third["data"] == second["data"]


def test_malformed_bodies_and_lying_counts(small: FakeIntercom) -> None:
    with client(small) as c:
        honest = c.get("/contacts").json()["total_count"]
        small.faults("us").update(total_count_offset=25)
        assert c.get("/contacts").json()["total_count"] == honest + 25
        small.faults("us").reset().update(malformed_paths=("/tags",))
        shaped = c.get("/tags").json()
        assert "data" not in shaped and shaped["_data"]
        small.faults("us").update(malformed_kind="not_json")
        r = c.get("/tags")
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            r.json()


def test_search_index_lag_hides_fresh_records_from_search_only(small: FakeIntercom) -> None:
    clock: Clock = small.test_clock  # type: ignore[attr-defined]
    ws = small.workspace("us")
    clock.t += 3600
    created = set(ws.create_contacts(3))
    small.faults("us").update(search_index_lag_seconds=120)
    query = {"field": "updated_at", "operator": ">", "value": 0}
    with client(small) as c:
        listed = {i["id"] for i in walk_list(c, "/contacts", 150, "data")[0]}
        searched = {i["id"] for i in walk_search(c, "/contacts/search", query, 150, "data")[0]}
        clock.t += 121
        later = {i["id"] for i in walk_search(c, "/contacts/search", query, 150, "data")[0]}
    assert created <= listed and not created & searched and created <= later


# --- mutations ------------------------------------------------------------------------------------
def test_same_second_updates_are_found_by_day_granular_search(small: FakeIntercom) -> None:
    clock: Clock = small.test_clock  # type: ignore[attr-defined]
    clock.t += 7200
    ws = small.workspace("us")
    touched = ws.update_contacts(count=40, same_second=True)
    now = int(clock.t)
    with client(small) as c:
        items, _ = walk_search(c, "/contacts/search", {"field": "updated_at", "operator": "=", "value": now},
                               150, "data", sort={"field": "updated_at", "order": "ascending"})
    found = [i for i in items if i["id"] in set(touched)]
    assert len(found) == 40 and {i["updated_at"] for i in found} == {now}
    assert len({i["id"] for i in items}) == len(items)


def test_created_deleted_and_merged_contacts(small: FakeIntercom) -> None:
    ws = small.workspace("us")
    before = {r["id"] for r in ws.contacts()}
    created = ws.create_contacts(2)
    victims = sorted(before)[:3]
    ws.delete_contacts(victims[:1])
    ws.merge_contact(victims[1], victims[2])
    with client(small) as c:
        listed = [i["id"] for i in walk_list(c, "/contacts", 50, "data")[0]]
        gone = c.get(f"/contacts/{victims[1]}")
        survivor = c.get(f"/contacts/{victims[2]}", params={"include_merge_history": "true"}).json()
        deleted = c.get(f"/contacts/{victims[0]}")
    assert set(listed) == (before | set(created)) - set(victims[:2])
    assert gone.status_code == 410 and error_code(gone) == "contact_merged"
    assert gone.headers["Link"] == f'</contacts/{victims[2]}>; rel="canonical"'
    assert deleted.status_code == 404
    if survivor["role"] == "user":
        assert survivor["merge_history"][0]["source_contact_id"] == victims[1]


def test_conversation_updates_and_deletions(small: FakeIntercom) -> None:
    clock: Clock = small.test_clock  # type: ignore[attr-defined]
    clock.t += 60
    ws = small.workspace("us")
    touched = ws.update_conversations(count=5)
    doomed = touched[:2]
    ws.delete_conversations(doomed)
    with client(small) as c:
        recent, _ = walk_search(c, "/conversations/search",
                                {"field": "updated_at", "operator": ">", "value": int(clock.t)}, 150, "conversations")
        deleted = c.get("/conversations/deleted", params={"per_page": 60}).json()["conversations"]
    assert {i["id"] for i in recent} == set(touched) - set(doomed)
    assert {d["id"]: d["deleted_at"] for d in deleted[:2]} == {i: int(clock.t) for i in doomed}


def test_admin_team_and_activity_mutations_are_served(small: FakeIntercom) -> None:
    ws = small.workspace("eu")
    team_id = ws.teams()[0]["id"]
    new = ws.add_admin("Ünal Test", "unal@example-corp.com", team_ids=[team_id])
    removed = ws.admins()[3]["id"]
    ws.remove_admin(removed)
    log_ids = ws.add_activity_logs(2, "admin_deletion")
    with client(small, "eu") as c:
        admins = c.get("/admins").json()["admins"]
        teams = c.get("/teams").json()["teams"]
        newest = c.get("/admins/activity_logs", params={"created_at_after": 0}).json()["activity_logs"]
    assert new["id"] in {a["id"] for a in admins} and removed not in {a["id"] for a in admins}
    assert int(new["id"]) in teams[0]["admin_ids"] and all(int(removed) not in t["admin_ids"] for t in teams)
    assert {e["id"] for e in newest[:2]} == set(log_ids)
    ws.set_team_members(team_id, [new["id"]])
    with client(small, "eu") as c:
        assert c.get("/teams").json()["teams"][0]["admin_ids"] == [int(new["id"])]


# --- control API, stats, determinism, scale ----------------------------------------------------------
def test_http_control_api_needs_no_token_and_is_not_counted(small: FakeIntercom) -> None:
    base = small.base_url("au")
    small.reset_stats()
    assert httpx.get(base + "/_fake/info").json()["token"] == small.token("au")
    httpx.post(base + "/_fake/faults", json={"rate_429_every": 1}).raise_for_status()
    with client(small, "au") as c:
        assert c.get("/tags").status_code == 429
        httpx.post(base + "/_fake/faults", json={"reset": True}).raise_for_status()
        assert c.get("/tags").status_code == 200
        result = httpx.post(base + "/_fake/mutate", json={"action": "create_contacts", "n": 2}).json()["result"]
        assert len(result) == 2 and all(c.get(f"/contacts/{i}").status_code == 200 for i in result)
    bad = httpx.post(base + "/_fake/mutate", json={"action": "drop_tables"})
    assert bad.status_code == 400
    stats = httpx.get(base + "/_fake/stats").json()
    assert stats["total_requests"] == 4 and stats["by_route"]["GET /contacts/{id}"] == 2
    assert stats["by_status"] == {"429": 1, "200": 3}
    httpx.post(base + "/_fake/reset_stats").raise_for_status()
    assert small.stats("au")["total_requests"] == 0


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    def bodies(seed: int) -> list[bytes]:
        with FakeIntercom(seed=seed, contacts=300, conversations=200, now=lambda: NOW) as f, client(f, "eu") as c:
            cursor = c.get("/contacts", params={"per_page": 50}).json()["pages"]["next"]["starting_after"]
            return [c.get("/contacts", params={"per_page": 50, "starting_after": cursor}).content,
                    c.get("/conversations", params={"per_page": 50}).content,
                    c.post("/conversations/search", json={"query": {"field": "open", "operator": "=", "value": True}}).content,
                    c.get("/admins/activity_logs", params={"created_at_after": 0, "per_page": 250}).content
                    .replace(f.base_url("eu").encode(), b"BASE")]
    first = bodies(9)
    assert first == bodies(9)
    assert all(a != b for a, b in zip(first, bodies(10)))


def test_a_million_contacts_are_cheap_to_build_and_page() -> None:
    tracemalloc.start()
    try:
        fake = FakeIntercom(seed=1, contacts=1_000_000, conversations=200_000, regions=("us",), now=lambda: NOW)
        with fake, client(fake) as c:
            page = c.get("/contacts", params={"per_page": 150}).json()
            cursor = page["pages"]["next"]["starting_after"]
            page2 = c.get("/contacts", params={"per_page": 150, "starting_after": cursor}).json()
            recent = c.post("/contacts/search", json={
                "query": {"field": "updated_at", "operator": ">", "value": int(NOW) - 3 * DAY},
                "sort": {"field": "updated_at", "order": "ascending"}, "pagination": {"per_page": 150}}).json()
            convs = c.get("/conversations", params={"per_page": 150}).json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert page["total_count"] == 1_000_000 and len(page2["data"]) == 150
    assert convs["total_count"] > 190_000
    assert 0 < recent["total_count"] < 1_000_000 and len(recent["data"]) == 150
    assert peak < 60 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"


# --- scenario ---------------------------------------------------------------------------------------
def test_compliance_scenario_is_planted_in_the_us_workspace(fake: FakeIntercom) -> None:
    ws = fake.workspace("us")
    facts = ws.scenario
    assert facts is not None and fake.workspace("eu").scenario is None
    now = int(NOW)
    admins = {a["id"]: a for a in ws.admins()}
    assert {sc.STALE_ADMIN.id, sc.NEVER_LOGGED_IN_ADMIN.id, sc.SHARED_ADMIN.id, sc.TERMINATED_ADMIN.id} <= set(admins)
    assert admins[sc.SHARED_ADMIN.id]["email"] == "support@example-corp.com"
    assert not admins[sc.VENDOR_ADMIN.id]["email"].endswith("@example-corp.com")
    logs = ws.activity_logs()
    logins = [e for e in logs if e["activity_type"] == "admin_login_success"]
    last_login = {}
    for e in logins:
        last_login.setdefault(e["performed_by"]["id"], e["created_at"])  # newest first
    assert (now - last_login[sc.STALE_ADMIN.id]) // DAY == sc.STALE_ADMIN_LAST_LOGIN_DAYS_AGO
    assert sc.NEVER_LOGGED_IN_ADMIN.id not in last_login
    assert all(now - t < 120 * DAY for a, t in last_login.items() if a != sc.STALE_ADMIN.id)
    assert last_login[sc.TERMINATED_ADMIN.id] > facts.terminated_at
    shared_ips = {e["performed_by"]["ip"] for e in logins if e["performed_by"]["id"] == sc.SHARED_ADMIN.id
                  and now - e["created_at"] < 30 * DAY}
    assert len(shared_ips) >= 3

    tz = ZoneInfo(ws.timezone)
    exports = [e for e in logs if e["activity_type"] in sc.EXPORT_ACTIVITY_TYPES]
    night = [e for e in exports if not in_office_hours(e["created_at"], tz)]
    assert [e["id"] for e in night] == [facts.activity_log_ids["night_export"]]
    assert datetime.fromtimestamp(night[0]["created_at"], tz).hour == 3 and now - night[0]["created_at"] < 30 * DAY

    failures = sorted(e["created_at"] for e in logs if e["activity_type"] == "admin_login_failure"
                      and e["performed_by"]["id"] == sc.LOGIN_FAILURE_ADMIN.id)
    assert len(failures) == 6 and failures[-1] - failures[0] < 3600

    convs = {c["id"]: c for c in ws.conversations()}
    assert all(now - convs[i]["created_at"] > 800 * DAY for i in facts.retention_conversation_ids)
    tagged = lambda name: [c for c in convs.values() if name in {t["name"] for t in c["tags"]["tags"]}]  # noqa: E731
    (dsar,) = tagged(sc.DSAR_TAG)
    (security,) = tagged(sc.SECURITY_TAG)
    assert dsar["id"] == facts.dsar_conversation_id and security["id"] == facts.security_conversation_id
    assert dsar["statistics"]["first_admin_reply_at"] - dsar["created_at"] == 40 * DAY
    assert security["created_at"] == facts.security_created_at == now - sc.SECURITY_CREATED_DAYS_AGO * DAY
    assert security["statistics"]["first_admin_reply_at"] == facts.security_first_admin_reply_at \
        == security["created_at"] + 2 * 3600
    assert security["statistics"]["time_to_admin_reply"] == sc.SECURITY_REPLY_DELAY_SECONDS


def in_office_hours(ts: int, tz: ZoneInfo) -> bool:
    """Mon-Fri 09:00-17:59 local time, computed here rather than trusting the fake's helper."""
    local = datetime.fromtimestamp(ts, tz)
    return local.isoweekday() <= 5 and 9 <= local.hour < 18


def test_generated_exports_of_every_type_stay_in_office_hours_in_every_region() -> None:
    """Enough generated history that every R3 export type occurs many times: only the planted
    night export falls outside Mon-Fri 09:00-17:59 workspace-local time."""
    f = FakeIntercom(seed=5, contacts=40, conversations=20, activity_logs=12_000, now=lambda: NOW)
    assert set(sc.EXPORT_ACTIVITY_TYPES) == {"app_data_export", "bulk_export", "conversation_pdf_export",
                                             "macro_usage_export"}
    for region in f.regions:
        ws = f.workspace(region)
        tz = ZoneInfo(ws.timezone)
        exports = [e for e in ws.activity_logs() if e["activity_type"] in sc.EXPORT_ACTIVITY_TYPES]
        assert {e["activity_type"] for e in exports} == set(sc.EXPORT_ACTIVITY_TYPES), region
        outside = [e["id"] for e in exports if not in_office_hours(e["created_at"], tz)]
        planted = [ws.scenario.activity_log_ids["night_export"]] if ws.scenario else []
        assert outside == planted, region
        days = Counter(datetime.fromtimestamp(e["created_at"], tz).isoweekday() for e in exports)
        assert set(days) == {1, 2, 3, 4, 5}, region


def test_the_us_workspace_defines_a_sensitive_attribute_with_values_on_some_contacts(fake: FakeIntercom) -> None:
    facts = fake.workspace("us").scenario
    assert facts is not None and facts.sensitive_attribute == sc.SENSITIVE_ATTRIBUTE == "passport_number"
    with client(fake) as c:
        attrs = {a["name"]: a for a in c.get("/data_attributes", params={"model": "contact"}).json()["data"]}
        company = c.get("/data_attributes", params={"model": "company"}).json()["data"]
    passport = attrs[sc.SENSITIVE_ATTRIBUTE]
    assert (passport["custom"], passport["data_type"], passport["model"], passport["archived"]) == (
        True, "string", "contact", False)
    assert passport["full_name"] == "custom_attributes.passport_number" and passport["label"] == "Passport number"
    assert passport["admin_id"] == sc.VENDOR_ADMIN.id
    assert passport["created_at"] == int(NOW) - sc.SENSITIVE_ATTRIBUTE_CREATED_DAYS_AGO * DAY
    assert sc.SENSITIVE_ATTRIBUTE not in {a["name"] for a in company}
    for region in ("eu", "au"):
        with client(fake, region) as c:
            names = {a["name"] for a in c.get("/data_attributes").json()["data"]}
        assert sc.SENSITIVE_ATTRIBUTE not in names and "plan" in names, region
        assert not any(sc.SENSITIVE_ATTRIBUTE in r["custom_attributes"] for r in fake.workspace(region).contacts())

    holders = {r["id"]: r["custom_attributes"][sc.SENSITIVE_ATTRIBUTE] for r in fake.workspace("us").contacts()
               if sc.SENSITIVE_ATTRIBUTE in r["custom_attributes"]}
    assert len(facts.sensitive_attribute_contact_ids) == sc.SENSITIVE_ATTRIBUTE_CONTACT_COUNT
    assert holders == dict(zip(facts.sensitive_attribute_contact_ids, facts.sensitive_attribute_values))
    assert len(set(holders.values())) == len(holders)
    assert all(len(v) == 9 and v[0] == "X" and v[1:].isdigit() for v in holders.values())
    with client(fake) as c:  # served over HTTP too, by GET and by search
        some = facts.sensitive_attribute_contact_ids[3]
        assert c.get(f"/contacts/{some}").json()["custom_attributes"][sc.SENSITIVE_ATTRIBUTE] == holders[some]
        found = c.post("/contacts/search", json={"query": {
            "field": "custom_attributes.passport_number", "operator": "=", "value": holders[some]}}).json()
    assert [r["id"] for r in found["data"]] == [some]


def test_removing_an_admin_logs_an_admin_deletion_by_the_owner(small: FakeIntercom) -> None:
    clock: Clock = small.test_clock  # type: ignore[attr-defined]
    ws = small.workspace("us")
    facts = ws.scenario
    clock.t += 3600
    log_id = ws.remove_admin(facts.terminated_admin_id)
    with client(small) as c:
        admins = c.get("/admins").json()["admins"]
        newest = c.get("/admins/activity_logs", params={"created_at_after": int(clock.t) - 60}).json()["activity_logs"]
    assert facts.terminated_admin_id not in {a["id"] for a in admins}
    assert [e["id"] for e in newest] == [log_id]
    (entry,) = newest
    assert (entry["activity_type"], entry["created_at"]) == ("admin_deletion", int(clock.t))
    assert entry["performed_by"]["id"] == sc.WORKSPACE_OWNER.id
    assert entry["performed_by"]["email"] == sc.WORKSPACE_OWNER.email
    assert entry["metadata"] == {"admin_id": int(facts.terminated_admin_id), "admin_name": sc.TERMINATED_ADMIN.name,
                                 "admin_email": facts.terminated_admin_email,
                                 "update_by": int(sc.WORKSPACE_OWNER.id), "update_by_name": sc.WORKSPACE_OWNER.name}
    assert facts.terminated_admin_email in entry["activity_description"]
    assert ws.activity_logs()[0] == entry
    with pytest.raises(KeyError):
        ws.remove_admin(facts.terminated_admin_id)
    # The owner removed: the next admin logs it.
    clock.t += 1
    ws.remove_admin(sc.WORKSPACE_OWNER.id)
    entry = ws.activity_logs()[0]
    assert entry["performed_by"]["id"] == ws.owner.id != sc.WORKSPACE_OWNER.id
    assert entry["metadata"]["admin_id"] == int(sc.WORKSPACE_OWNER.id)


def test_scenario_ids_do_not_depend_on_the_seed() -> None:
    a = FakeIntercom(seed=1, contacts=50, conversations=300, regions=("us",), now=lambda: NOW).workspace("us").scenario
    b = FakeIntercom(seed=2, contacts=50, conversations=300, regions=("us",), now=lambda: NOW).workspace("us").scenario
    assert a is not None and b is not None
    assert (a.stale_admin_id, a.retention_conversation_ids, a.night_export_at, a.login_failure_times) == \
           (b.stale_admin_id, b.retention_conversation_ids, b.night_export_at, b.login_failure_times)
    assert (a.security_created_at, a.security_first_admin_reply_at) == (b.security_created_at, b.security_first_admin_reply_at)
    assert (a.sensitive_attribute_contact_ids, a.sensitive_attribute_values) == \
           (b.sensitive_attribute_contact_ids, b.sensitive_attribute_values)


# --- command line ---------------------------------------------------------------------------------
def test_arg_parser_defaults() -> None:
    args = build_arg_parser().parse_args([])
    assert (args.port, args.rate_limit, args.regions) == (8000, 1000, "us,eu,au")


def test_module_serves_three_regions_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "iru_pipeline.fake_intercom", "--port", "0", "--contacts", "50",
                             "--conversations", "20"], stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline().split() for _ in range(3)]  # type: ignore[union-attr]
        assert [line[0] for line in lines] == ["us", "eu", "au"]
        for region, url, token in lines:
            me = httpx.get(url + "/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
            assert me["app"]["region"] == region.upper()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_a_cursor_from_a_differently_sorted_search_is_rejected(fake: FakeIntercom) -> None:
    query = {"field": "role", "operator": "=", "value": "user"}
    with client(fake) as c:
        by_created = c.post("/contacts/search", json={"query": query, "pagination": {"per_page": 5},
                                                      "sort": {"field": "created_at", "order": "ascending"}}).json()
        cursor = by_created["pages"]["next"]["starting_after"]
        r = c.post("/contacts/search", json={"query": query, "pagination": {"per_page": 5, "starting_after": cursor},
                                             "sort": {"field": "updated_at", "order": "ascending"}})
    assert r.status_code == 400 and error_code(r) == "client_error"


@pytest.mark.parametrize("sort", [None, {"field": "updated_at", "order": "ascending"},
                                  {"field": "updated_at", "order": "descending"},
                                  {"field": "email", "order": "ascending"}])
def test_search_walks_mix_generated_and_changed_records_exactly_once(small: FakeIntercom, sort: Any) -> None:
    clock: Clock = small.test_clock  # type: ignore[attr-defined]
    ws = small.workspace("us")
    clock.t += 5
    ws.update_contacts(count=15, same_second=True)
    ws.create_contacts(4, same_second=False)
    ws.delete_contacts([next(iter(ws.contacts()))["id"]])
    with client(small) as c:
        items, bodies = walk_search(c, "/contacts/search", {"field": "updated_at", "operator": ">", "value": 0},
                                    7, "data", sort=sort)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) and set(ids) == {r["id"] for r in ws.contacts()}
    assert all(b["total_count"] == len(ids) for b in bodies)
    if sort:
        keys = [(i[sort["field"]], i["id"]) for i in items]
        assert keys == sorted(keys, reverse=sort["order"] == "descending")


def test_contact_search_on_a_million_contacts_pages_by_relevance_cheaply() -> None:
    fake = FakeIntercom(seed=4, contacts=1_000_000, conversations=10, regions=("au",), now=lambda: NOW)
    with fake, client(fake, "au") as c:
        first = c.post("/contacts/search", json={"query": {"field": "updated_at", "operator": ">", "value": 0},
                                                 "pagination": {"per_page": 150}}).json()
        cursor = first["pages"]["next"]["starting_after"]
        second = c.post("/contacts/search", json={"query": {"field": "updated_at", "operator": ">", "value": 0},
                                                  "pagination": {"per_page": 150, "starting_after": cursor}}).json()
    assert first["total_count"] == 1_000_000 and len(second["data"]) == 150
    assert not {i["id"] for i in first["data"]} & {i["id"] for i in second["data"]}
