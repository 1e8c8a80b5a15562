"""Every loop has a bound: a server that answers every page with a new cursor is stopped,
for every paging kind, after as many pages as its own first page's counts allow (twice the
pages, plus `SLACK_PAGES`), with a one-line reason; a real run then fails that region
without moving a cursor, and a clean run completes it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import IntercomClient, IntercomResponseError, RetryPolicy
from iru_pipeline.intercom_client.page_bound import SLACK_PAGES
from iru_pipeline_tests.helpers import (
    FAST,
    assert_matches_fake,
    committed_cursors,
    fresh_progress_handler,  # noqa: F401 (autouse fixture)
    ingestion_run_ids,
    pipeline_env,
    run_with_env,
    small_fake,
    sync_results,
)

RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_cap=0.05)
LOG_WINDOW_S = 400 * 86400


def _search(path: str, key: str) -> Callable[[IntercomClient], Iterator[Any]]:
    query = {"field": "updated_at", "operator": ">", "value": 0}
    return lambda c: c.iter_search(path, key, query, sort={"field": "updated_at", "order": "ascending"})


# (id, faulted path, next style of activity logs, listing, route, records the listing holds)
KINDS: list[Any] = [
    pytest.param("/contacts/search", "url", _search("/contacts/search", "data"), "POST /contacts/search",
                 lambda ws: len(list(ws.contacts())), 150, id="search"),
    pytest.param("/contacts", "url", lambda c: c.iter_cursor("/contacts", "data", per_page=150), "GET /contacts",
                 lambda ws: len(list(ws.contacts())), 150, id="cursor-list"),
    pytest.param("/admins/activity_logs", "url",
                 lambda c: c.iter_activity_logs(int(c_now()) - LOG_WINDOW_S, per_page=150),
                 "GET /admins/activity_logs", lambda ws: len(ws.activity_logs(int(c_now()) - LOG_WINDOW_S)), 150,
                 id="activity-logs-next-url"),
    pytest.param("/admins/activity_logs", "cursor",
                 lambda c: c.iter_activity_logs(int(c_now()) - LOG_WINDOW_S, per_page=150),
                 "GET /admins/activity_logs", lambda ws: len(ws.activity_logs(int(c_now()) - LOG_WINDOW_S)), 150,
                 id="activity-logs-next-cursor"),
    pytest.param("/conversations/deleted", "url",
                 lambda c: c.iter_numbered("/conversations/deleted", "conversations", per_page=60),
                 "GET /conversations/deleted", lambda ws: len(ws.deleted_conversations()), 60, id="page-numbers"),
]


def c_now() -> float:
    import time

    return time.time()


@pytest.mark.parametrize(("path", "style", "listing", "route", "records", "per_page"), KINDS)
def test_a_server_answering_every_page_with_a_new_cursor_is_stopped_at_its_counts_bound(
    path: str, style: str, listing: Callable[[IntercomClient], Iterator[Any]], route: str,
    records: Callable[[Any], int], per_page: int,
) -> None:
    with FakeIntercom(seed=3, regions=("us",), contacts=500, conversations=300,
                      activity_logs_next_style=style) as fake:
        ws = fake.workspace("us")
        if path == "/conversations/deleted":
            ws.delete_conversations([str(c["id"]) for c in list(ws.conversations())[:90]])
        count = records(ws)
        assert count > 0, "the listing must hold records for its count to mean anything"
        fake.faults("us").update(fresh_cursor_paths=[path])
        bound = 2 * math.ceil(count / per_page) + SLACK_PAGES
        pages = 0
        with IntercomClient("us", fake.base_url("us"), fake.token("us"), retry=RETRY) as client:
            with pytest.raises(IntercomResponseError) as caught:
                for _ in listing(client):
                    pages += 1
        assert pages == bound
        assert fake.stats("us")["by_route"][route] == bound
        message = str(caught.value)
        assert "pagination did not end" in message and f"at most {bound}" in message
        assert "\n" not in message


def test_a_run_against_endless_contact_pages_fails_that_resource_in_one_line_and_moves_no_cursor_of_it(
    tmp_path: Path,
) -> None:
    with small_fake(contacts=300, conversations=100) as fake:
        env = pipeline_env(fake, tmp_path)
        settings, first = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert first.exit_code == 0, [o.error for o in first.outcomes]
        db = settings.duckdb_path
        before = committed_cursors(db, "us")
        ws = fake.workspace("us")
        ws.update_contacts(count=20)
        fake.faults("us").update(fresh_cursor_paths=["/contacts/search"])
        fake.reset_stats("us")
        _, second = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert second.exit_code == 3, "partial: the contacts resource failed alone, the others loaded"
        rows = {r["resource"]: r for r in sync_results(db, ingestion_run_ids(second))}
        assert rows["contacts"]["status"] == "failed"
        assert "pagination did not end" in rows["contacts"]["reason"]
        assert "\n" not in rows["contacts"]["reason"]
        # Twice the pages of what the first page counted, plus the slack: all contacts of
        # the cursor's day at most (the quiet run's search re-reads that day).
        assert fake.stats("us")["by_route"]["POST /contacts/search"] <= 2 * math.ceil(300 / 150) + SLACK_PAGES
        after = committed_cursors(db, "us") or {}
        assert after.get("contacts") == (before or {}).get("contacts"), "the failed resource's cursor did not move"
        assert all(r["status"] in ("ok", "partial") for name, r in rows.items() if name != "contacts"), rows

        fake.clear_faults()
        _, clean = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert clean.exit_code == 0, [o.error for o in clean.outcomes]
        assert_matches_fake(db, fake)
