"""The Intercom client over real loopback HTTP against the bundled fake."""

from __future__ import annotations

import logging
import pickle

import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import (
    IntercomAuthError,
    IntercomClient,
    IntercomConnectionError,
    IntercomError,
    IntercomPermissionError,
    IntercomResponseError,
    IntercomServerError,
    RateLimiter,
    RetryPolicy,
)

FAST = RetryPolicy(max_retries=5, backoff_base=0.01, backoff_cap=0.05)


def client_for(fake: FakeIntercom, region: str = "us", **kwargs) -> IntercomClient:
    kwargs.setdefault("retry", FAST)
    return IntercomClient(region, fake.base_url(region), fake.token(region), **kwargs)


def all_ids(pages) -> list[str]:
    return [str(item["id"]) for page in pages for item in page.items]


# --------------------------------------------------------------------------- pagination


@pytest.mark.parametrize("per_page", [150, 7])
def test_cursor_list_reaches_the_last_page_with_every_id_once(fake: FakeIntercom, per_page: int) -> None:
    with client_for(fake) as client:
        ids = all_ids(client.iter_cursor("/contacts", "data", per_page=per_page, resource="contacts"))
    want = [str(c["id"]) for c in fake.workspace("us").contacts()]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(want)


@pytest.mark.parametrize("per_page", [150, 7])
def test_contact_search_paginates_in_the_body(fake: FakeIntercom, per_page: int) -> None:
    query = {"field": "updated_at", "operator": ">", "value": 0}
    with client_for(fake) as client:
        pages = list(client.iter_search("/contacts/search", "data", query, per_page=per_page,
                                        sort={"field": "updated_at", "order": "ascending"}))
    ids = all_ids(pages)
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(str(c["id"]) for c in fake.workspace("us").contacts())
    stamps = [c["updated_at"] for p in pages for c in p.items]
    assert stamps == sorted(stamps), "ascending sort by updated_at"
    if per_page == 7:
        assert len(pages) > 50


@pytest.mark.parametrize("per_page", [150, 7])
def test_conversation_search_reaches_every_conversation(fake: FakeIntercom, per_page: int) -> None:
    query = {"field": "updated_at", "operator": ">", "value": 0}
    with client_for(fake, "eu") as client:
        ids = all_ids(client.iter_search("/conversations/search", "conversations", query, per_page=per_page,
                                         sort={"field": "updated_at", "order": "ascending"}))
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(str(c["id"]) for c in fake.workspace("eu").conversations())


@pytest.mark.parametrize("per_page", [150, 7])
@pytest.mark.parametrize("style", ["url", "cursor"])
def test_activity_logs_follow_next_links_of_both_kinds(per_page: int, style: str) -> None:
    with FakeIntercom(seed=3, contacts=50, conversations=20, activity_logs_next_style=style) as fake:
        with client_for(fake) as client:
            ids = all_ids(client.iter_activity_logs(0, None, per_page=per_page))
        want = [str(e["id"]) for e in fake.workspace("us").activity_logs(0)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(want)


@pytest.mark.parametrize("per_page", [60, 7])
def test_deleted_conversations_are_page_numbered(fresh_fake: FakeIntercom, per_page: int) -> None:
    ws = fresh_fake.workspace("us")
    ws.delete_conversations([c["id"] for c in list(ws.conversations())[:40]])
    with client_for(fresh_fake) as client:
        ids = all_ids(client.iter_numbered("/conversations/deleted", "conversations", per_page=per_page))
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(str(d["id"]) for d in ws.deleted_conversations())


def test_full_lists_arrive_in_one_page(fake: FakeIntercom) -> None:
    with client_for(fake) as client:
        pages = list(client.iter_full("/admins", "admins", resource="admins"))
        tags = list(client.iter_full("/tags", "data", resource="tags"))
    assert len(pages) == 1 and len(pages[0].items) == len(fake.workspace("us").admins())
    assert len(tags[0].items) == len(fake.workspace("us").tags())


def test_every_request_sends_version_and_bearer(fake: FakeIntercom) -> None:
    with client_for(fake) as client:
        headers = client._http.headers
        assert headers["Intercom-Version"] == "2.16"
        assert headers["Accept"] == "application/json"
        assert headers["Authorization"].startswith("Bearer ")


# --------------------------------------------------------------------------- rate limits and retries


def test_429_is_waited_out_and_counted(fresh_fake: FakeIntercom) -> None:
    fresh_fake.set_rate_limit("us", 1000, window_seconds=1)  # short windows keep the waits short
    fresh_fake.faults("us").update(rate_429_every=3, retry_after=True)
    with client_for(fresh_fake) as client:
        ids = all_ids(client.iter_cursor("/contacts", "data", per_page=50, resource="contacts"))
        stats = client.stats()["GET /contacts"]
    assert len(ids) == len(set(ids)) == sum(1 for _ in fresh_fake.workspace("us").contacts())
    assert stats["rate_limited"] == fresh_fake.stats("us")["rate_limited"] > 0
    assert stats["retries"] >= stats["rate_limited"]


def test_429_without_retry_after_uses_the_reset_header(fresh_fake: FakeIntercom) -> None:
    fresh_fake.set_rate_limit("us", 1000, window_seconds=2)
    fresh_fake.faults("us").update(rate_429_burst=2, retry_after=False)
    with client_for(fresh_fake) as client:
        body = client.get("/admins", resource="admins")
        stats = client.stats()["GET /admins"]
    assert body["type"] == "admin.list"
    assert stats["rate_limited"] == 2 and stats["calls"] == 3


def test_pacing_by_headers_avoids_429s() -> None:
    with FakeIntercom(seed=3, contacts=300, conversations=10, rate_limit_per_window=4) as fake:
        fake.set_rate_limit("us", 4, window_seconds=1)  # 4 calls a second
        limiter = RateLimiter()
        with client_for(fake, limiter=limiter) as client:
            ids = all_ids(client.iter_cursor("/contacts", "data", per_page=20, resource="contacts"))
            stats = client.stats()["GET /contacts"]
    assert len(ids) == 300
    assert stats["calls"] == 15
    assert stats["rate_limited"] == 0, "the limiter waits for the window instead of earning a 429"
    assert stats["min_remaining"] == 0
    assert limiter.waits > 0


def test_5xx_including_html_502_is_retried_and_counted(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(error_every=2, error_statuses=(502, 500, 503, 504))
    with client_for(fresh_fake) as client:
        ids = all_ids(client.iter_cursor("/contacts", "data", per_page=100, resource="contacts"))
        stats = client.stats()["GET /contacts"]
    assert sorted(ids) == sorted(str(c["id"]) for c in fresh_fake.workspace("us").contacts())
    assert stats["server_errors"] == fresh_fake.stats("us")["server_errors"] > 0
    assert stats["retries"] == stats["server_errors"]


def test_persistent_5xx_gives_up_with_a_clear_error(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(error_rate=1.0, error_statuses=(503,))
    with client_for(fresh_fake) as client, pytest.raises(IntercomServerError) as info:
        client.get("/admins", resource="admins")
    assert "503" in str(info.value) and "after 6 attempts" in str(info.value)
    assert client.stats()["GET /admins"]["retries"] == FAST.max_retries


def test_dropped_and_truncated_responses_are_retried(fresh_fake: FakeIntercom) -> None:
    """Every 3rd request is dropped, every 4th (not dropped) answered with a truncated body:
    each is retried, counted once as a transport error, and no page is lost."""
    drop_every, truncate_every, per_page = 3, 4, 40
    fresh_fake.faults("us").update(drop_every=drop_every, truncate_every=truncate_every)
    with client_for(fresh_fake) as client:
        ids = all_ids(client.iter_cursor("/contacts", "data", per_page=per_page, resource="contacts"))
        stats = client.stats()["GET /contacts"]
    want = sorted(str(c["id"]) for c in fresh_fake.workspace("us").contacts())
    assert sorted(ids) == want
    served = fresh_fake.stats("us")
    requests = served["total_requests"]
    dropped = requests // drop_every
    truncated = sum(1 for n in range(1, requests + 1) if n % truncate_every == 0 and n % drop_every != 0)
    assert dropped > 0 and truncated > 0
    assert served["faults"] == {"dropped_connection": dropped, "truncated_body": truncated}
    assert requests - dropped - truncated == -(-len(want) // per_page), "one complete answer per page"
    assert stats["calls"] == requests
    assert stats["transport_errors"] == stats["retries"] == dropped + truncated


def test_closed_port_is_a_connection_error_naming_the_setting() -> None:
    client = IntercomClient("eu", "http://127.0.0.1:9", "t0k3n-value", retry=RetryPolicy(max_retries=1, backoff_base=0.01))
    with client, pytest.raises(IntercomConnectionError) as info:
        client.get("/me")
    assert "INTERCOM_BASE_URL_EU" in str(info.value)


# --------------------------------------------------------------------------- errors


def test_401_names_region_host_and_the_regional_token(fake: FakeIntercom) -> None:
    client = IntercomClient("eu", fake.base_url("eu"), fake.token("us"), retry=FAST)
    with client, pytest.raises(IntercomAuthError) as info:
        client.get("/me")
    msg = str(info.value)
    assert msg.startswith("[eu]") and "127.0.0.1" in msg and "INTERCOM_ACCESS_TOKEN_EU" in msg
    assert "hosted in the EU region" in msg and "status 401" in msg
    assert info.value.status == 401 and info.value.region == "eu" and info.value.endpoint == "GET /me"


def test_403_names_the_resource_and_the_permission(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(forbidden_paths=("/conversations",), forbidden_kind="scope")
    with client_for(fresh_fake) as client, pytest.raises(IntercomPermissionError) as info:
        client.post("/conversations/search", {"query": {"field": "id", "operator": "=", "value": "1"}},
                    resource="conversations")
    assert "'Read conversations'" in str(info.value) and "status 403" in str(info.value)


def test_plan_restriction_says_so(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(forbidden_paths=("/conversations",), forbidden_kind="plan")
    with client_for(fresh_fake) as client, pytest.raises(IntercomPermissionError) as info:
        client.get("/conversations/deleted", resource="deleted_conversations")
    assert "plan" in str(info.value) and "api_plan_restricted" in str(info.value)


def test_missing_scope_as_401_token_unauthorized_is_a_permission_error(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(forbidden_paths=("/tags",), forbidden_kind="scope_401")
    with client_for(fresh_fake) as client, pytest.raises(IntercomPermissionError) as info:
        client.get("/tags", resource="tags")
    assert "'Read tags'" in str(info.value)


def test_non_json_200_is_reported_with_status(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(malformed_paths=("/teams",), malformed_kind="not_json")
    with client_for(fresh_fake) as client, pytest.raises(IntercomResponseError) as info:
        client.get("/teams", resource="teams")
    assert "non-JSON" in str(info.value) and "status 200" in str(info.value)


def test_wrong_shape_is_reported(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(malformed_paths=("/admins",), malformed_kind="wrong_shape")
    with client_for(fresh_fake) as client, pytest.raises(IntercomResponseError) as info:
        list(client.iter_full("/admins", "admins", resource="admins"))
    assert "no 'admins' list" in str(info.value)


def test_repeating_cursor_stops_instead_of_looping(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(repeat_cursor_paths=("/contacts",))
    with client_for(fresh_fake) as client, pytest.raises(IntercomResponseError) as info:
        list(client.iter_cursor("/contacts", "data", per_page=10, resource="contacts"))
    assert "already returned" in str(info.value)
    assert client.stats()["GET /contacts"]["calls"] <= 3


def test_the_token_never_appears_in_errors_or_logs(fresh_fake: FakeIntercom, caplog: pytest.LogCaptureFixture) -> None:
    token = fresh_fake.token("us")
    fresh_fake.faults("us").update(error_every=2, revoke_token_after=6)
    caplog.set_level(logging.DEBUG)
    errors: list[IntercomError] = []
    with client_for(fresh_fake) as client:
        assert token not in repr(client)
        try:
            list(client.iter_cursor("/contacts", "data", per_page=10, resource="contacts"))
        except IntercomError as exc:
            errors.append(exc)
    assert errors and isinstance(errors[0], IntercomAuthError)
    for exc in errors:
        for text in (str(exc), repr(exc), repr(exc.__dict__), repr(pickle.loads(pickle.dumps(exc)).__dict__)):
            assert token not in text
        assert exc.__cause__ is None and exc.__context__ is None or token not in repr(exc.__context__)
    assert token not in caplog.text
    assert "retrying" in caplog.text


def test_page_bodies_are_freed_without_the_cyclic_collector() -> None:
    """A sync keeps the cyclic GC mostly off (fewer_gc_passes); a page body held by a
    reference cycle (httpx's Response and its stream) would then pile up, hundreds of MB per
    million contacts. Bodies must go as soon as their page is dropped."""
    import gc
    import tracemalloc

    with FakeIntercom(seed=3, contacts=1500, conversations=10) as fake:
        client = IntercomClient("us", fake.base_url("us"), fake.token("us"))
        query = {"field": "updated_at", "operator": ">", "value": 0}
        next(client.iter_search("/contacts/search", "data", query, per_page=150))  # warm up the connection
        gc.collect()
        gc.disable()
        tracemalloc.start(12)  # the fake serves from this process: count the client's allocations only
        try:
            pages = 0
            for page in client.iter_search("/contacts/search", "data", query, per_page=150):
                pages += 1
                assert len(page.records_json or b"") > 100_000
            del page
            ours = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(True, "*/intercom_client/*", all_frames=True)])
            held = sum(stat.size for stat in ours.statistics("filename"))
        finally:
            tracemalloc.stop()
            gc.enable()
            client.close()
    assert pages == 10
    assert held < 1_000_000, f"{held:,} bytes of {pages} pages still held"
