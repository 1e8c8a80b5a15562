"""The fault matrix, end to end: the bundled fake Intercom misbehaving, real Dagster runs, real
DuckDB. Every case ends comparing DuckDB with the fake (ids and values): nothing missing,
nothing duplicated, nothing stale. Transient faults are retried within bounds and counted the
same by the client, `intercom.sync_results` and the Dagster materialisation; persistent ones
fail the region without moving its cursors; a missing permission skips one resource; a
revoked token stops one region. The error paths are scanned for leaked secrets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import IntercomClient, RetryPolicy
from iru_pipeline_tests.conftest import pipeline_env, run_with_env
from iru_pipeline_tests.fault_helpers import (
    FAST,
    api_totals,
    assert_nothing_leaked,
    assert_values_match_fake,
    ingestion_run_ids,
    latest_materialization_metadata,
    on_nth_request,
    small_fake,
    sync_results,
)
from iru_pipeline_tests.helpers import COMPARED, assert_matches_fake, db_ids, query


@pytest.fixture(autouse=True)
def _quiet_progress_handler():
    """`enable_progress` keeps its handler on a module logger; a handler bound to an earlier
    test's captured stderr would hide this test's progress lines from capsys."""
    logger = logging.getLogger("iru_pipeline.progress")
    stale = [h for h in logger.handlers if getattr(h, "_iru_progress", False)]
    for handler in stale:
        logger.removeHandler(handler)
    yield
    for handler in [h for h in logger.handlers if getattr(h, "_iru_progress", False)]:
        logger.removeHandler(handler)


# --------------------------------------------------------------------------- clocks of the fake


def parked_before_window_end() -> Callable[[], float]:
    """A fake clock half a second before a rate-limit window ends, hardly moving: every 429's
    Retry-After is 1 s, and its X-RateLimit-Reset is never ahead of the real clock."""
    real0 = time.time()
    parked = (real0 // 10) * 10 - 0.5
    return lambda: parked + (time.time() - real0) / 1000


def window_ends_in(seconds: float) -> Callable[[], float]:
    """Real time, shifted so that the fake's current rate-limit window ends `seconds` from now."""
    now = time.time()
    offset = (10 - now % 10) - seconds
    return lambda: time.time() + offset


# --------------------------------------------------------------------------- transient faults


@dataclass(frozen=True)
class Transient:
    name: str
    faults: dict[str, Any]
    injected: Callable[[dict[str, Any]], int]
    """How many faults the fake injected (from its stats)."""
    counter: str | None
    """The sync_results total that must equal it (None: nothing to retry)."""
    clock: Callable[[], Callable[[], float]] | None = None
    sizes: dict[str, int] = field(default_factory=dict)


def _rate_limited(stats: dict[str, Any]) -> int:
    return stats["rate_limited"]


def _server_errors(stats: dict[str, Any]) -> int:
    return stats["server_errors"]


def _fault(kind: str) -> Callable[[dict[str, Any]], int]:
    return lambda stats: stats["faults"].get(kind, 0)


TRANSIENT = [
    Transient("429_every_6th_with_retry_after", dict(rate_429_every=6, retry_after=True),
              _rate_limited, "api_429s", clock=parked_before_window_end),
    Transient("429_every_4th_without_retry_after", dict(rate_429_every=4, retry_after=False),
              _rate_limited, "api_429s", clock=parked_before_window_end),
    Transient("429_held_until_the_window_resets",
              dict(rate_429_burst=1, hold_429_until_reset=True, fault_paths=("/contacts/search",)),
              _rate_limited, "api_429s", clock=lambda: window_ends_in(3.0)),
    Transient("5_percent_5xx_including_html_502",
              dict(error_rate=0.05, seed=15, error_statuses=(500, 502, 503, 504)),
              _server_errors, "api_5xx", sizes=dict(contacts=600, conversations=400)),
    Transient("html_502_every_4th", dict(error_every=4, error_statuses=(502,)), _server_errors, "api_5xx"),
    Transient("truncated_body_every_4th", dict(truncate_every=4), _fault("truncated_body"), "api_transport_errors"),
    Transient("dropped_connection_every_4th", dict(drop_every=4), _fault("dropped_connection"),
              "api_transport_errors"),
    Transient("slow_body_every_3rd", dict(slow_body_every=3, slow_body_delay_ms=150), _fault("slow_body"), None),
]


@pytest.mark.parametrize("case", TRANSIENT, ids=lambda c: c.name)
def test_transient_faults_are_retried_counted_and_lose_nothing(case: Transient, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    clock = case.clock() if case.clock else None
    with small_fake(now=clock, **case.sizes) as fake:
        fake.faults("us").update(**case.faults)
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, intercom_options=FAST)
        assert result.exit_code == 0, [o.error for o in result.outcomes]
        db = settings.duckdb_path
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)

        stats = fake.stats("us")
        injected = case.injected(stats)
        assert injected >= 1, f"the fault never fired: {stats}"
        totals = api_totals(sync_results(db, ingestion_run_ids(result)))
        # Every request the fake saw is one counted call; every injected fault one counted retry.
        assert totals["api_calls"] == stats["total_requests"], (totals, stats)
        if case.counter:
            assert totals[case.counter] == injected, (totals, stats)
        assert totals["api_retries"] == totals["api_429s"] + totals["api_5xx"] + totals["api_transport_errors"]
        assert totals["api_retries"] == (injected if case.counter else 0), (totals, stats)
        # The Dagster materialisation shows the same counts as the run's sync_results.
        shown = latest_materialization_metadata(settings.dagster_home, ["intercom", "contacts"], "us")
        assert (shown["api_retries"], shown["api_429s"]) == (totals["api_retries"], totals["api_429s"])
        assert_nothing_leaked(tmp_path, fake, caplog.text)


def test_timeouts_are_retried_and_counted(fresh_fake: FakeIntercom) -> None:
    """A response slower than the client's read timeout is abandoned and asked again.
    (Client level: the pipeline's timeout is 60 s, see the slow end-to-end variant.)"""
    fresh_fake.faults("us").update(slow_body_every=3, slow_body_delay_ms=800, fault_paths=("/contacts",))
    retry = RetryPolicy(max_retries=4, backoff_base=0.01, backoff_cap=0.05)
    with IntercomClient("us", fresh_fake.base_url("us"), fresh_fake.token("us"), retry=retry,
                        timeout=httpx.Timeout(0.3)) as client:
        ids = [str(i["id"]) for page in client.iter_cursor("/contacts", "data", per_page=100, resource="contacts")
               for i in page.items]
        stats = client.stats()["GET /contacts"]
    assert sorted(ids) == sorted(str(c["id"]) for c in fresh_fake.workspace("us").contacts())
    slow = fresh_fake.stats("us")["faults"]["slow_body"]
    assert slow >= 2
    assert stats["transport_errors"] == stats["retries"] == slow


@pytest.mark.slow
def test_a_response_slower_than_the_pipeline_timeout_is_retried_end_to_end(tmp_path: Path) -> None:
    """One /tags response stalls for longer than the client's 60 s read timeout."""
    with small_fake() as fake:
        # /teams is matching request 1, /tags request 2 (slow), the /tags retry request 3.
        fake.faults("us").update(slow_body_every=2, slow_body_delay_ms=65_000, fault_paths=("/teams", "/tags"))
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, intercom_options=FAST)
        assert result.exit_code == 0, [o.error for o in result.outcomes]
        assert_matches_fake(settings.duckdb_path, fake)
        assert_values_match_fake(settings.duckdb_path, fake)
        totals = api_totals(sync_results(settings.duckdb_path, ingestion_run_ids(result)))
        assert totals["api_transport_errors"] == totals["api_retries"] == fake.stats("us")["faults"]["slow_body"] >= 1


# --------------------------------------------------------------------------- persistent faults


PERSISTENT = [
    pytest.param(dict(error_every=1, fault_paths=("/tags",)), "kept answering 500", 6 + 1, id="5xx_forever"),
    pytest.param(dict(drop_every=1, fault_paths=("/tags",)), "could not get a complete response", 6 + 1,
                 id="dropped_forever"),
    pytest.param(dict(rate_429_every=1, retry_after=False, fault_paths=("/tags",)), "still rate limited", 12 + 1,
                 id="429_forever"),
]


@pytest.mark.parametrize(("faults", "message", "tag_calls"), PERSISTENT)
def test_a_fault_that_never_clears_gives_up_at_the_bound_and_keeps_the_cursors(
        faults: dict[str, Any], message: str, tag_calls: int, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    with small_fake(now=parked_before_window_end()) as fake:
        env = pipeline_env(fake, tmp_path)
        settings, first = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert first.exit_code == 0
        db = settings.duckdb_path
        cursors_before = query(db, "select version, state from intercom._dlt_pipeline_state "
                                   "where pipeline_name = 'intercom_us' order by version")
        ws = fake.workspace("us")
        ws.update_contacts(count=40)
        created = ws.create_contacts(10)

        fake.faults("us").update(**faults)
        fake.reset_stats("us")
        _, failed = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert failed.failed and failed.exit_code == 1
        error = failed.outcomes[0].error
        assert "\n" not in error and "[us]" in error and message in error and "GET /tags" in error, error
        # Bounded: the first attempt plus the configured retries (or rate-limit waits), no more.
        assert fake.stats("us")["by_route"]["GET /tags"] == tag_calls
        rows = {r["resource"]: r for r in failed.sync_rows}
        assert rows["tags"]["status"] == "failed" and message in rows["tags"]["reason"]
        assert {r["status"] for r in failed.sync_rows} == {"failed"}, "one load package per region: nothing committed"
        # No cursor moved past data that was not loaded.
        assert query(db, "select version, state from intercom._dlt_pipeline_state "
                         "where pipeline_name = 'intercom_us' order by version") == cursors_before
        assert not set(created) & set(db_ids(db, "contacts", "us"))

        fake.clear_faults()
        _, third = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert third.exit_code == 0, [o.error for o in third.outcomes]
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)
        assert_nothing_leaked(tmp_path, fake, caplog.text)


# --------------------------------------------------------------------------- permissions


# The fake forbids a path and everything under it: "/admins" also covers /admins/activity_logs,
# "/conversations" also /conversations/deleted and /conversations/attributes.
FORBIDDEN = [
    pytest.param("/admins", "scope", {"admins", "activity_logs"}, id="admins-403"),
    pytest.param("/teams", "plan", {"teams", "team_memberships"}, id="teams-plan"),
    pytest.param("/tags", "scope_401", {"tags"}, id="tags-401-token_unauthorized"),
    pytest.param("/data_attributes", "scope", {"data_attributes"}, id="data_attributes-403"),
    pytest.param("/contacts", "plan", {"contacts"}, id="contacts-plan"),
    pytest.param("/conversations", "scope_401", {"conversations", "deleted_conversations", "data_attributes"},
                 id="conversations-401-token_unauthorized"),
    pytest.param("/admins/activity_logs", "plan", {"activity_logs"}, id="activity_logs-plan"),
]
# Tables compared per resource (team_memberships follows teams).
TABLES_OF = {"teams": {"teams", "team_memberships"}}


@pytest.mark.parametrize(("path", "kind", "skipped"), FORBIDDEN)
def test_a_forbidden_resource_is_skipped_with_its_reason_and_the_others_load(
        path: str, kind: str, skipped: set[str], tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    with small_fake() as fake:
        fake.faults("us").update(forbidden_paths=(path,), forbidden_kind=kind)
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, intercom_options=FAST)
        assert not result.failed, [o.error for o in result.outcomes]
        assert result.partial and result.exit_code == 2
        rows = {r["resource"]: r for r in result.sync_rows}
        assert {name for name, r in rows.items() if r["status"] == "skipped"} == skipped
        assert {r["status"] for name, r in rows.items() if name not in skipped} == {"ok"}
        for name in skipped:
            reason = rows[name]["reason"]
            assert "\n" not in reason and "[us]" in reason
            assert ("plan" in reason) if kind == "plan" else ("may not read" in reason and "permission" in reason)
        db = settings.duckdb_path
        loaded = [t for t in COMPARED if t not in skipped and not (t == "team_memberships" and "teams" in skipped)]
        for table in loaded:
            assert db_ids(db, table, "us") == _fake_ids(fake, table), table
        assert_values_match_fake(db, fake, tables=tuple(t for t in ("contacts", "conversations", "activity_logs",
                                                                    "admins", "teams", "tags", "deleted_conversations")
                                                        if t not in skipped))
        for table in skipped & set(COMPARED):
            present = query(db, "select count(*) from information_schema.tables where table_schema = 'intercom' "
                                "and table_name = ?", [table])[0][0]
            if present:
                assert db_ids(db, table, "us") == [], f"{table} was skipped but has rows"
        assert_nothing_leaked(tmp_path, fake, caplog.text)


def _fake_ids(fake: FakeIntercom, table: str) -> list[str]:
    from iru_pipeline_tests.helpers import fake_ids

    return fake_ids(fake.workspace("us"), table)


def test_a_token_revoked_mid_run_stops_that_region_and_names_it(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    with small_fake(regions=("us", "eu", "au")) as fake:
        fake.faults("eu").update(revoke_token_after=6)
        env = pipeline_env(fake, tmp_path)
        settings, result = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert result.failed and result.exit_code == 1
        outcome = {o.label: o for o in result.outcomes}
        assert outcome["ingest us"].success and outcome["ingest au"].success
        error = outcome["ingest eu"].error
        assert "\n" not in error and "[eu]" in error and "rejected the access token" in error, error
        assert fake.base_url("eu").split("//")[1] in error and "INTERCOM_ACCESS_TOKEN_EU" in error
        # The 401 is not retried: the requests after the revocation are the one that failed.
        assert fake.stats("eu")["by_status"].get("401") == 1
        db = settings.duckdb_path
        assert_matches_fake(db, fake, regions=("us", "au"))
        assert_values_match_fake(db, fake, regions=("us", "au"))
        assert query(db, "select count(*) from intercom.contacts where region = 'eu'")[0][0] == 0
        eu_rows = [r for r in result.sync_rows if r["region"] == "eu"]
        assert eu_rows and {r["status"] for r in eu_rows} == {"failed"}

        fake.clear_faults()  # a new token for the same workspace
        _, again = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert again.exit_code == 0, [o.error for o in again.outcomes]
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)
        assert_nothing_leaked(tmp_path, fake, caplog.text)


# --------------------------------------------------------------------------- records changing mid-sync


def test_records_changing_between_pages_are_all_there_after_the_next_run(tmp_path: Path) -> None:
    """Between two pages of each search the fake updates records already read and records not
    yet read, creates some and deletes some: the next run leaves DuckDB equal to the fake."""
    with small_fake(contacts=600, conversations=450) as fake:
        ws = fake.workspace("us")
        by_cursor = sorted(ws.contacts(), key=lambda c: (c["updated_at"], c["id"]))
        read, unread = [c["id"] for c in by_cursor[:300]], [c["id"] for c in by_cursor[300:]]
        conv_order = sorted(ws.conversations(), key=lambda c: (c["updated_at"], c["id"]))
        conv_read, conv_unread = [c["id"] for c in conv_order[:150]], [c["id"] for c in conv_order[150:]]

        def change_contacts() -> dict[str, list[str]]:
            touched = ws.update_contacts(ids=read[:30] + unread[:30])
            created = ws.create_contacts(20)
            ws.delete_contacts(read[40:50] + unread[40:50])
            return {"touched": touched, "created": created}

        def change_conversations() -> dict[str, list[str]]:
            touched = ws.update_conversations(ids=conv_read[:25] + conv_unread[:25])
            created = ws.create_conversations(15)
            ws.delete_conversations(conv_read[30:35] + conv_unread[30:35])
            return {"touched": touched, "created": created}

        contacts_changed = on_nth_request(fake, "us", "POST /contacts/search", 2, change_contacts)
        conversations_changed = on_nth_request(fake, "us", "POST /conversations/search", 1, change_conversations)
        env = pipeline_env(fake, tmp_path)
        settings, first = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert first.exit_code == 0, [o.error for o in first.outcomes]
        assert contacts_changed and conversations_changed, "the mutations ran mid-sync"

        _, second = run_with_env(env, with_evidence=False, reconcile=True, intercom_options=FAST)
        assert second.exit_code == 0, [o.error for o in second.outcomes]
        db = settings.duckdb_path
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)


# --------------------------------------------------------------------------- secrets on error paths


def test_error_paths_write_no_secret_anywhere(tmp_path: Path, monkeypatch, capsys, caplog) -> None:
    """`iru-pipeline run` through 5xx, HTML 502, truncations, drops, 429s, a missing scope,
    bodies of the wrong shape, a repeating cursor and a revoked token, then `iru-pipeline
    export`: no token,
    PII key, message body or clear contact e-mail/phone in DuckDB, the dlt pipelines dir,
    Dagster storage and logs, the exports, or the terminal."""
    caplog.set_level(logging.DEBUG)
    with small_fake(regions=("us", "eu", "au"), now=parked_before_window_end()) as fake:
        for key, value in pipeline_env(fake, tmp_path).items():
            monkeypatch.setenv(key, value)
        fake.faults("us").update(error_every=5, error_statuses=(502, 500), truncate_every=7, rate_429_every=9,
                                 retry_after=False)
        fake.faults("eu").update(drop_every=6, forbidden_paths=("/tags",), forbidden_kind="scope")
        fake.faults("au").update(malformed_paths=("/admins",), malformed_kind="wrong_shape")
        codes = [main(["run"])]
        fake.clear_faults()
        fake.workspace("us").update_contacts(count=30)
        fake.faults("us").update(repeat_cursor_paths=("/contacts",))
        fake.faults("eu").update(revoke_token_after=3)
        fake.faults("au").update(malformed_paths=("/conversations/search",), malformed_kind="wrong_shape")
        codes.append(main(["run", "--reconcile"]))
        codes.append(main(["export"]))
        captured = capsys.readouterr()
        terminal = captured.out + captured.err + caplog.text
        assert codes == [1, 1, 0], (codes, terminal[-3000:])
        assert "Traceback" not in captured.err
        assert "rejected the access token" in terminal and "may not read tags" in terminal
        assert len(list((tmp_path / "exports").iterdir())) >= 1
        assert_nothing_leaked(tmp_path, fake, terminal)
