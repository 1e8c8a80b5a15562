"""The Intercom client over real loopback HTTP against the bundled fake."""

from __future__ import annotations

import logging
import pickle
import sys
import threading
import time
import traceback

import httpx
import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import (
    IntercomAuthError,
    IntercomClient,
    IntercomConnectionError,
    IntercomError,
    IntercomPermissionError,
    IntercomRateLimitError,
    IntercomRequestError,
    IntercomResponseError,
    IntercomServerError,
    IntercomTransportError,
    IntercomVersionError,
    RateLimiter,
    RetryPolicy,
    SearchPage,
)
from iru_pipeline.intercom_client.classify import NOT_JSON, Classifier, is_retryable, unusable_body
from iru_pipeline.intercom_client.errors import KIND_WORDS
from iru_pipeline.intercom_client.page import records_of, search_decoder

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


@pytest.mark.parametrize("ahead", [2, 4, 16])
def test_deleted_conversations_read_ahead_arrive_whole_and_in_order(fresh_fake: FakeIntercom, ahead: int) -> None:
    ws = fresh_fake.workspace("us")
    ws.delete_conversations([c["id"] for c in list(ws.conversations())[:40]])
    with client_for(fresh_fake) as client:
        pages = list(client.iter_numbered("/conversations/deleted", "conversations", {"order": "desc"},
                                          per_page=7, ahead=ahead))
    deleted = [str(d["id"]) for d in ws.deleted_conversations()]  # the 40 and those the data starts with
    assert [p.number for p in pages] == list(range(1, -(-len(deleted) // 7) + 1))
    assert [str(i["id"]) for p in pages for i in p.items] == deleted
    assert fresh_fake.stats("us")["by_route"]["GET /conversations/deleted"] == len(pages)


def test_deleted_conversations_read_ahead_skip_nothing_when_the_list_grows_meanwhile(fresh_fake: FakeIntercom) -> None:
    """Page 3 is answered first; then three more conversations are deleted (the head of the
    newest-first list), then page 2 is answered. Old page 2's last three records now sit on
    page 3, whose answer predates them: page 3 must be read again."""
    ws = fresh_fake.workspace("us")
    ids = [c["id"] for c in ws.conversations()]
    ws.delete_conversations(ids[:30])
    before = [str(d["id"]) for d in ws.deleted_conversations()]
    fresh_fake.advance_clock(60)  # the next deletions are newer: the head of the list
    page_3_answered = threading.Event()
    requested: list[str] = []

    def page(message: httpx.Request | httpx.Response) -> str | None:
        request = message if isinstance(message, httpx.Request) else message.request
        return request.url.params.get("page") if request.url.path.endswith("/conversations/deleted") else None

    def on_request(request: httpx.Request) -> None:
        requested.append(page(request) or "")
        if page(request) == "2" and not page_3_answered.is_set():
            assert page_3_answered.wait(10), "page 3 was never requested alongside page 2"

    def on_response(response: httpx.Response) -> None:
        if page(response) == "3" and not page_3_answered.is_set():
            ws.delete_conversations(ids[30:33])
            page_3_answered.set()

    with client_for(fresh_fake) as client:
        client._http.event_hooks = {"request": [on_request], "response": [on_response]}
        listed = all_ids(client.iter_numbered("/conversations/deleted", "conversations", {"order": "desc"},
                                              per_page=7, ahead=4))
    assert page_3_answered.is_set()
    assert set(before) - set(listed) == set()
    assert requested.count("3") == 2, requested  # answered ahead of page 2, then again after it


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


# --------------------------------------------------------------------------- classify step (unit)

EU = Classifier(region="eu", host="api.eu.intercom.io", base_url="https://api.eu.intercom.io", api_version="2.16",
                token_env="INTERCOM_ACCESS_TOKEN_EU", base_url_env="INTERCOM_BASE_URL_EU",
                permissions={"tags": "Read tags", "contacts": "Read and list users and companies"})


def error_body(code: str | None, message: str | None = None, request_id: str | None = "req-7f3a") -> dict:
    error = {k: v for k, v in (("code", code), ("message", message)) if v is not None}
    return {"type": "error.list", **({"request_id": request_id} if request_id else {}), "errors": [error]}


def assert_one_line(err: IntercomError, kind: type[IntercomError], status: int | None, *fragments: str) -> None:
    line = str(err)
    assert type(err) is kind
    assert "\n" not in line and line.startswith(f"[eu] {KIND_WORDS[kind.kind]}: "), line
    assert err.status == status and (status is None or f"status {status}" in line), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)


@pytest.mark.parametrize(("status", "code", "resource", "kind", "fragments"), [
    (401, "unauthorized", "tags", IntercomAuthError,
     ("api.eu.intercom.io", "INTERCOM_ACCESS_TOKEN_EU", "hosted in the EU region")),
    (401, "token_revoked", None, IntercomAuthError, ("INTERCOM_ACCESS_TOKEN_EU",)),
    (401, "token_unauthorized", "contacts", IntercomPermissionError,
     ("may not read contacts", "'Read and list users and companies'", "Developer Hub")),
    (403, "forbidden", "tags", IntercomPermissionError, ("may not read tags", "'Read tags'")),
    (403, "action_forbidden", "segments", IntercomPermissionError, ("'the matching read permission'",)),
    (403, "api_plan_restricted", "tags", IntercomPermissionError,
     ("tags is not available on this workspace's Intercom plan (Not on your plan)",)),
    (402, None, "tags", IntercomPermissionError, ("not available on this workspace's Intercom plan",)),
    (400, "intercom_version_invalid", "tags", IntercomVersionError, ("tags needs Intercom API version 2.16",)),
    (404, "not_found", None, IntercomRequestError, ("Intercom refused the request: Not on your plan",)),
    (422, None, "tags", IntercomRequestError, ("Intercom refused the request: no detail given",)),
])
def test_each_4xx_family_becomes_its_typed_one_line_error(status: int, code: str | None, resource: str | None,
                                                          kind: type[IntercomError], fragments: tuple[str]) -> None:
    message = "Not on your plan" if code in ("api_plan_restricted", "not_found") else None
    err = EU.status_error(status, error_body(code, message), "GET /tags", resource)
    assert_one_line(err, kind, status, *fragments, "GET /tags", "request_id req-7f3a", *([code] if code else []))
    assert (err.code, err.request_id, err.resource, err.region) == (code, "req-7f3a", resource, "eu")


def test_intercom_words_are_trimmed_to_one_line_and_an_error_without_request_id_still_reads() -> None:
    err = EU.status_error(400, error_body("parameter_invalid", "bad\nsort\r\n  order", request_id=None),
                          "POST /contacts/search", "contacts")
    assert_one_line(err, IntercomRequestError, 400, "Intercom refused the request: bad sort order")
    assert err.request_id is None and "request_id" not in str(err)
    long_id = EU.status_error(404, error_body("not_found", request_id="r" * 500), "GET /tags", None)
    assert long_id.request_id == "r" * 64
    not_json = EU.status_error(500, NOT_JSON, "GET /tags", None)
    assert not_json.request_id is None and not_json.code is None


@pytest.mark.parametrize(("status", "retried"), [
    (408, True), (500, True), (502, True), (503, True), (504, True), (599, True),
    (400, False), (401, False), (403, False), (404, False), (410, False), (422, False), (429, False), (302, False),
])
def test_only_timeouts_and_server_errors_are_retried(status: int, retried: bool) -> None:
    assert is_retryable(status) is retried


def test_a_redirect_names_the_base_url_setting_and_never_shows_the_query() -> None:
    err = EU.redirect_error(302, "https://login.example.com/sso?session=s3cr3t", "GET /me", "workspaces")
    assert_one_line(err, IntercomResponseError, 302, "redirected to https://login.example.com/sso",
                    "set INTERCOM_BASE_URL_EU")
    assert "s3cr3t" not in str(err) and "?" not in str(err)
    assert "nowhere (no Location header)" in str(EU.redirect_error(301, None, "GET /me", None))


def test_exhausted_waits_and_retries_are_server_trouble_with_counts() -> None:
    limited = EU.rate_limit_error(12, error_body("rate_limit_exceeded"), "GET /contacts", "contacts")
    assert_one_line(limited, IntercomRateLimitError, 429, "still rate limited after 12 waits", "rate_limit_exceeded",
                    "request_id req-7f3a")
    down = EU.server_error(503, 7, NOT_JSON, "GET /contacts", "contacts")
    assert_one_line(down, IntercomServerError, 503, "kept answering 503 from api.eu.intercom.io after 7 attempts",
                    "status.intercom.com")


@pytest.mark.parametrize(("exc", "kind", "words"), [
    (httpx.ConnectError("[Errno 111] Connection refused: https://u:pw@proxy.example"), IntercomConnectionError,
     "connection refused or host unreachable"),
    (httpx.ConnectError("[Errno -2] Name or service not known: https://u:pw@proxy.example"), IntercomConnectionError,
     "host name not found"),
    (httpx.ReadTimeout("read of https://u:pw@proxy.example"), IntercomTransportError, "(timed out)"),
    (httpx.RemoteProtocolError("peer closed https://u:pw@proxy.example"), IntercomTransportError,
     "(connection dropped or response truncated)"),
])
def test_transport_failures_say_unreachable_or_incomplete(exc: httpx.TransportError, kind: type[IntercomError],
                                                          words: str) -> None:
    err = EU.transport_error(exc, 7, "GET /admins", "admins")
    assert_one_line(err, kind, None, words, "7 attempts", "GET /admins")
    assert "pw@" not in str(err) and "proxy.example" not in str(err), "the exception's own text may hold a URL"


def test_an_unusable_200_body_is_a_bad_answer_naming_its_content_type() -> None:
    assert unusable_body(NOT_JSON) == "a non-JSON body"
    assert unusable_body([{"id": "1"}]) == "JSON that is not an object (list)"
    assert unusable_body({"type": "list"}) is None
    err = EU.body_error("a non-JSON body", 200, httpx.Headers({"content-type": "text/html", "x-request-id": "abc"}),
                        "GET /teams", "teams")
    assert_one_line(err, IntercomResponseError, 200, "Intercom returned a non-JSON body (content-type 'text/html')",
                    "request_id abc")


# --------------------------------------------------------------------------- the typed search result (unit)


def test_a_search_answer_decodes_to_a_typed_page_with_its_records_still_json() -> None:
    records = b'[{"id":"1","type":"contact"}, 7, {"id":"2","type":"contact"}]'
    answer = (b'{"type":"list","data":' + records + b',"total_count":2,'
              b'"pages":{"type":"pages","page":1,"per_page":2,"total_pages":1,"next":{"page":2,"starting_after":"Wz"}}}')
    page = search_decoder("data")(answer)
    assert isinstance(page, SearchPage)
    assert (page.records_json, page.total_count, page.next_cursor) == (records, 2, "Wz")
    assert page.envelope() == {"total_count": 2, "pages": page.pages} and page.pages["total_pages"] == 1
    assert records_of(page.records_json) == [{"id": "1", "type": "contact"}, {"id": "2", "type": "contact"}]


def test_a_search_answer_falls_back_to_data_and_other_shapes_to_the_full_decoder() -> None:
    conversations = search_decoder("conversations")
    in_data = conversations(b'{"data":[{"id":"9"}],"total_count":true,"pages":{"next":null}}')
    assert isinstance(in_data, SearchPage)
    assert (in_data.records_json, in_data.total_count, in_data.next_cursor) == (b'[{"id":"9"}]', None, None)
    assert conversations(b'{"conversations":{"id":"9"},"total_count":1}') == {"conversations": {"id": "9"},
                                                                             "total_count": 1}
    assert conversations(b'{"type":"error.list","errors":[]}') == {"type": "error.list", "errors": []}
    assert conversations(b'{"conversations":[{"id":"9"}') is NOT_JSON
    assert conversations(b"<html>502</html>") is NOT_JSON


def test_closing_the_client_mid_flight_ends_every_caller_and_frees_every_slot() -> None:
    """What a stop does to the window threads: the client is closed while requests are out
    and more wait for a slot. Every caller ends with an error, and no request keeps a
    rate-limiter slot (a slot kept by a failed request made later callers wait for it forever,
    and the process never exited). A read already blocked on its socket is not woken by the
    close: it ends with its answer or at the read timeout, short here."""
    callers, outcomes = 40, []
    with FakeIntercom(seed=5, regions=("us",), contacts=50, conversations=5, latency_ms=300) as fake:
        client = client_for(fake, retry=RetryPolicy(max_retries=2, backoff_base=0.05, backoff_cap=0.1),
                            timeout=httpx.Timeout(3.0, connect=2.0))

        def call() -> None:
            try:
                client.get("/admins", resource="admins")
                outcomes.append("answered")
            except Exception as exc:  # noqa: BLE001 - any error ends the caller; which one is not the point
                outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=call, daemon=True) for _ in range(callers)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while client.limiter.peak_in_flight < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
        client.close()
        deadline = time.monotonic() + 30  # the read timeout, a retry and a loaded machine
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        frames = sys._current_frames()
        waiting = ["".join(traceback.format_stack(frames[t.ident])[-3:]) for t in threads if t.is_alive() and t.ident]
        assert not waiting, f"{len(outcomes)} of {callers} callers ended; still waiting:\n" + "\n".join(waiting[:3])
        assert len(outcomes) == callers
        assert client.limiter._in_flight == 0, "a failed request kept its slot"
