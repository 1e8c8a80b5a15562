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
from iru_pipeline_tests.helpers import (
    COMPARED,
    FAST,
    api_totals,
    assert_matches_fake,
    assert_nothing_leaked,
    assert_values_match_fake,
    db_ids,
    fake_ids,
    ingestion_run_ids,
    latest_materialization_metadata,
    on_nth_request,
    pipeline_env,
    query,
    run_with_env,
    small_fake,
    sync_results,
)

# --------------------------------------------------------------------------- clocks of the fake


def parked_before_window_end() -> Callable[[], float]:
    """A fake clock half a second before a rate-limit window ends, hardly moving: every 429's
    Retry-After is 1 s, and its X-RateLimit-Reset is never ahead of the real clock."""
    real0 = time.time()
    parked = (real0 // 10) * 10 - 0.5
    return lambda: parked + (time.time() - real0) / 1000


class WindowEndsSoon:
    """Real time, shifted by `arm()` so that the fake's rate-limit window ends `seconds` later.
    Armed when the run asks its first question (GET /me); its first search follows well
    within those seconds."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds, self.offset = seconds, 0.0

    def arm(self) -> None:
        now = time.time()
        self.offset = (10 - now % 10) - self.seconds

    def __call__(self) -> float:
        return time.time() + self.offset


# --------------------------------------------------------------------------- transient faults


@dataclass(frozen=True)
class Transient:
    name: str
    faults: dict[str, Any]
    injected: Callable[[dict[str, Any]], int]
    """How many faults the fake injected (from its stats)."""
    counter: str | None
    """The sync_results total that must equal it (None: no single counter)."""
    clock: Callable[[], Callable[[], float]] | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    seen: tuple[str, ...] = ()
    """Fault kinds the fake must have injected (e.g. an HTML 502 among random 5xx)."""
    retried: bool = True
    """Each injected fault costs exactly one retry (a slow body costs none)."""
    logged: str = ""
    """A progress line the run must have printed (e.g. that the sync was split into windows)."""


def _rate_limited(stats: dict[str, Any]) -> int:
    return stats["rate_limited"]


def _server_errors(stats: dict[str, Any]) -> int:
    return stats["server_errors"]


def _fault(kind: str) -> Callable[[dict[str, Any]], int]:
    return lambda stats: stats["faults"].get(kind, 0)


TRANSIENT = [
    Transient("429_every_8th_with_retry_after", {"rate_429_every": 8, "retry_after": True},
              _rate_limited, "api_429s", clock=parked_before_window_end),
    Transient("429_every_4th_without_retry_after", {"rate_429_every": 4, "retry_after": False},
              _rate_limited, "api_429s", clock=parked_before_window_end),
    Transient("429_held_until_the_window_resets",
              {"rate_429_burst": 1, "hold_429_until_reset": True, "fault_paths": ("/contacts/search",)},
              _rate_limited, "api_429s", clock=WindowEndsSoon),
    Transient("5_percent_5xx_including_html_502",
              {"error_rate": 0.05, "seed": 15, "error_statuses": (500, 502, 503, 504)},
              _server_errors, "api_5xx", sizes={"contacts": 600, "conversations": 400}, seen=("server_error_502",)),
    Transient("truncated_body_every_4th", {"truncate_every": 4}, _fault("truncated_body"), "api_transport_errors"),
    Transient("dropped_connection_every_4th", {"drop_every": 4}, _fault("dropped_connection"),
              "api_transport_errors"),
    Transient("slow_body_every_3rd", {"slow_body_every": 3, "slow_body_delay_ms": 150}, _fault("slow_body"), None,
              retried=False),
]
SOAK = [
    Transient("html_502_every_4th", {"error_every": 4, "error_statuses": (502,)}, _server_errors, "api_5xx"),
    Transient("everything_at_once_on_parallel_windows",
              {"error_rate": 0.03, "seed": 4, "drop_every": 13, "truncate_every": 17, "rate_429_every": 11, "retry_after": False,
                   "slow_body_every": 19, "slow_body_delay_ms": 100},
              lambda stats: stats["rate_limited"] + stats["server_errors"] + stats["faults"].get("dropped_connection", 0)
              + stats["faults"].get("truncated_body", 0), None, clock=parked_before_window_end,
              sizes={"contacts": 4000, "conversations": 3500}, logged="windows, fetched"),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in TRANSIENT]
                         + [pytest.param(c, id=c.name, marks=pytest.mark.slow) for c in SOAK])
def test_transient_faults_are_retried_counted_and_lose_nothing(case: Transient, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    clock = case.clock() if case.clock else None
    with small_fake(now=clock, **case.sizes) as fake:
        fake.faults("us").update(**case.faults)
        env = pipeline_env(fake, tmp_path)
        if isinstance(clock, WindowEndsSoon):
            on_nth_request(fake, "us", "GET /me", 1, clock.arm)
        settings, result = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert result.exit_code == 0, [o.error for o in result.outcomes]
        db = settings.duckdb_path
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)

        stats = fake.stats("us")
        injected = case.injected(stats)
        assert injected >= 1, f"the fault never fired: {stats}"
        assert set(case.seen) <= set(stats["faults"]), stats["faults"]
        assert case.logged in caplog.text
        if isinstance(clock, WindowEndsSoon):
            assert injected == 1, "the client waited for the window to reset instead of retrying into the hold"
        totals = api_totals(sync_results(db, ingestion_run_ids(result)))
        # Every request the fake saw is one counted call; every injected fault one counted retry.
        assert totals["api_calls"] == stats["total_requests"], (totals, stats)
        if case.counter:
            assert totals[case.counter] == injected, (totals, stats)
        assert totals["api_retries"] == totals["api_429s"] + totals["api_5xx"] + totals["api_transport_errors"]
        assert totals["api_retries"] == (injected if case.retried else 0), (totals, stats)
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


@pytest.mark.slow
def test_a_server_clock_an_hour_ahead_does_not_stall_the_client_for_an_hour() -> None:
    """The rate-limit window is announced in the server's clock (X-RateLimit-Reset). When that
    clock runs ahead of ours, the client may wait one window, not until the announced reset."""
    import threading

    with FakeIntercom(seed=3, contacts=60, conversations=10, regions=("us",), rate_limit_per_window=4,
                      now=lambda: time.time() + 3600) as fake:
        ids: list[str] = []
        retry = RetryPolicy(max_retries=2, backoff_base=0.01)
        with IntercomClient("us", fake.base_url("us"), fake.token("us"), retry=retry) as client:
            walk = threading.Thread(target=lambda: ids.extend(
                str(i["id"]) for page in client.iter_cursor("/contacts", "data", per_page=10) for i in page.items),
                daemon=True)
            walk.start()
            walk.join(timeout=60)  # six pages at four requests per 10-second window: about 20 s
            assert not walk.is_alive(), "the client is waiting for the server's reset, an hour away"
        assert len(ids) == 60


# --------------------------------------------------------------------------- persistent faults


PERSISTENT = [
    pytest.param({"error_every": 1, "fault_paths": ("/tags",)}, "kept answering", 6 + 1, id="5xx_forever"),
    pytest.param({"drop_every": 1, "fault_paths": ("/tags",)}, "could not get a complete response", 6 + 1,
                 id="dropped_forever", marks=pytest.mark.slow),
    pytest.param({"rate_429_every": 1, "retry_after": False, "fault_paths": ("/tags",)}, "still rate limited", 12 + 1,
                 id="429_forever", marks=pytest.mark.slow),
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
        tags_before = _tags_state(tmp_path)
        ws = fake.workspace("us")
        ws.update_contacts(count=40)
        created = ws.create_contacts(10)

        fake.faults("us").update(**faults)
        fake.reset_stats("us")
        _, partial = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert not partial.failed and partial.exit_code == 3, [o.error for o in partial.outcomes]
        # Bounded: the first attempt plus the configured retries (or rate-limit waits), no more.
        assert fake.stats("us")["by_route"]["GET /tags"] == tag_calls
        rows = {r["resource"]: r for r in partial.sync_rows}
        error = rows["tags"]["reason"]
        assert rows["tags"]["status"] == "failed"
        assert "\n" not in error and error.startswith("[us] server trouble: ") and message in error, error
        assert "GET /tags" in error
        assert {n for n, r in rows.items() if r["status"] != "ok"} == {"tags"}, "the other resources loaded"
        assert _tags_state(tmp_path) == tags_before, "the failed resource's state did not move"
        assert set(created) <= set(db_ids(db, "contacts", "us")), "contacts loaded despite the failing tags"

        fake.clear_faults()
        _, third = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert third.exit_code == 0, [o.error for o in third.outcomes]
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)
        assert_nothing_leaked(tmp_path, fake, caplog.text)


def _tags_state(data_dir: Path) -> Any:
    import dlt

    pipeline = dlt.attach(pipeline_name="intercom_us", pipelines_dir=str(data_dir / ".dlt_pipelines"))
    return pipeline.state["sources"]["intercom"]["resources"].get("tags")


# --------------------------------------------------------------------------- permissions


# The fake forbids a path and everything under it: "/admins" also covers /admins/activity_logs,
# "/conversations" also /conversations/deleted and /conversations/attributes.
# Three of them run in the soak set only (time budget); every kind of refusal stays in both.
FORBIDDEN = [
    pytest.param("/admins", "scope", {"admins", "activity_logs"}, id="admins-403"),
    pytest.param("/teams", "plan", {"teams", "team_memberships"}, id="teams-plan", marks=pytest.mark.slow),
    pytest.param("/tags", "scope_401", {"tags"}, id="tags-401-token_unauthorized", marks=pytest.mark.slow),
    pytest.param("/data_attributes", "scope", {"data_attributes"}, id="data_attributes-403", marks=pytest.mark.slow),
    pytest.param("/contacts", "plan", {"contacts"}, id="contacts-plan"),
    pytest.param("/conversations", "scope_401", {"conversations", "deleted_conversations", "data_attributes"},
                 id="conversations-401-token_unauthorized"),
    pytest.param("/admins/activity_logs", "plan", {"activity_logs"}, id="activity_logs-plan"),
]


@pytest.mark.parametrize(("path", "kind", "skipped"), FORBIDDEN)
def test_a_forbidden_resource_is_skipped_with_its_reason_and_the_others_load(
        path: str, kind: str, skipped: set[str], tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    with small_fake() as fake:
        fake.faults("us").update(forbidden_paths=(path,), forbidden_kind=kind)
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, intercom_options=FAST)
        assert not result.failed, [o.error for o in result.outcomes]
        assert result.partial and result.exit_code == 3
        rows = {r["resource"]: r for r in result.sync_rows}
        assert {name for name, r in rows.items() if r["status"] == "skipped"} == skipped
        assert {r["status"] for name, r in rows.items() if name not in skipped} == {"ok"}
        for name in skipped:
            reason = rows[name]["reason"]
            assert "\n" not in reason and "[us]" in reason
            assert ("plan" in reason) if kind == "plan" else ("may not read" in reason and "permission" in reason)
        db = settings.duckdb_path
        loaded = [t for t in COMPARED if t not in skipped]
        for table in loaded:
            assert db_ids(db, table, "us") == fake_ids(fake.workspace("us"), table), table
        assert_values_match_fake(db, fake, tables=tuple(t for t in ("contacts", "conversations", "activity_logs",
                                                                    "admins", "teams", "tags", "deleted_conversations")
                                                        if t not in skipped))
        for table in skipped & set(COMPARED):
            present = query(db, "select count(*) from information_schema.tables where table_schema = 'intercom' "
                                "and table_name = ?", [table])[0][0]
            if present:
                assert db_ids(db, table, "us") == [], f"{table} was skipped but has rows"
        assert_nothing_leaked(tmp_path, fake, caplog.text)


def test_a_token_revoked_mid_run_stops_that_region_and_names_it(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    with small_fake(regions=("us", "eu")) as fake:
        fake.faults("eu").update(revoke_token_after=6)
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, intercom_options=FAST)
        assert result.failed and result.exit_code == 1
        (outcome,) = result.outcomes  # one run loads both workspaces; it fails naming eu only
        error = outcome.error
        assert error.startswith("1 of 2 workspaces not loaded (the others were): [eu] "), error
        assert "\n" not in error and "[us]" not in error and "rejected the access token" in error, error
        assert fake.base_url("eu").split("//")[1] in error and "INTERCOM_ACCESS_TOKEN_EU" in error
        # A 401 is not retried: one request met the revoked token and the region stopped there.
        assert fake.stats("eu")["by_status"].get("401") == 1
        db = settings.duckdb_path
        assert_matches_fake(db, fake, regions=("us",))
        assert_values_match_fake(db, fake, regions=("us",))
        assert query(db, "select count(*) from intercom.contacts where region = 'eu'")[0][0] == 0
        eu_rows = [r for r in result.sync_rows if r["region"] == "eu"]
        assert eu_rows and {r["status"] for r in eu_rows} == {"failed"}

        fake.clear_faults()  # a new token for the same workspace
        _, again = run_with_env(pipeline_env(fake, tmp_path, regions=("eu",)), with_evidence=False,
                                intercom_options=FAST)
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
    """`iru-pipeline run` through 5xx (an HTML 502 among them), truncations, 429s, dropped
    connections, a missing scope and a revoked token, then `iru-pipeline export`: no token,
    PII key, message body or clear contact e-mail/phone in DuckDB, the dlt pipelines dir,
    Dagster storage and logs, the exports, or the terminal. (Bodies of the wrong shape, non-JSON
    bodies and repeating cursors are scanned in test_bad_input, every fault case here too.)"""
    caplog.set_level(logging.DEBUG)
    with small_fake(regions=("us", "eu"), now=parked_before_window_end()) as fake:
        for key, value in pipeline_env(fake, tmp_path).items():
            monkeypatch.setenv(key, value)
        fake.faults("us").update(error_every=5, error_statuses=(502, 500), truncate_every=7, rate_429_every=9,
                                 retry_after=False, drop_every=11)
        fake.faults("eu").update(forbidden_paths=("/tags",), forbidden_kind="scope", revoke_token_after=9)
        codes = [main(["run"]), main(["export"])]
        captured = capsys.readouterr()
        terminal = captured.out + captured.err + caplog.text
        assert codes == [1, 0], (codes, terminal[-3000:])
        assert "Traceback" not in captured.err
        assert "rejected the access token" in terminal and "may not read tags" in terminal
        assert fake.stats("us")["faults"].keys() >= {"server_error_502", "truncated_body", "rate_limit_429",
                                                     "dropped_connection"}
        assert len(list((tmp_path / "exports").iterdir())) >= 1
        assert_nothing_leaked(tmp_path, fake, terminal)
