"""A value the code cannot read never moves a cursor.

Every record whose cursor field (`updated_at` of contacts and conversations, `created_at` of
activity logs, `deleted_at` of deleted conversations) is missing, null, not a time, negative
or after the run's start is loaded; the resource ends `partial` naming the record, the field
and the value's type (never the value); no paging decision stops on it; and the committed
cursor stays where every earlier record is known loaded. The fake serves such values with
`malformed_cursor_values` while its store keeps the true ones (search sorts by them).
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.fake_intercom.faults import MISSING
from iru_pipeline.intercom_client import IntercomClient, RetryPolicy
from iru_pipeline.intercom_source import DATASET_NAME, SyncReport, intercom_source
from iru_pipeline.storage import duckdb_destination
from iru_pipeline_tests.helpers import (
    FAST,
    TEST_PII_KEY,
    assert_matches_fake,
    committed_cursors,
    db_ids,
    fake_ids,
    fresh_progress_handler,  # noqa: F401 (autouse fixture)
    ingestion_run_ids,
    pipeline_env,
    query,
    run_with_env,
    small_fake,
    sync_results,
)

RESOURCES = ("contacts", "conversations", "deleted_conversations", "activity_logs")
CLIENT_RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_cap=0.05)
FAR_FUTURE = 9_999_999_999  # 2286: a readable time, but after any run's start
UNREADABLE = [
    pytest.param("yesterday", id="string"),
    pytest.param(-1_700_000_000, id="negative"),
    pytest.param(86_400.5, id="float-in-1970"),
    pytest.param(None, id="null"),
    pytest.param(MISSING, id="missing"),
    pytest.param(FAR_FUTURE, id="far-future"),
    pytest.param({"seconds": 5}, id="object"),
]


def _newest_first(records: Any, field: str) -> list[str]:
    return [str(r["id"]) for r in sorted(records, key=lambda r: (-r[field], str(r["id"])))]


@pytest.mark.parametrize("value", UNREADABLE)
def test_a_contact_with_an_unreadable_updated_at_at_a_page_end_stops_nothing(value: Any, tmp_path: Path) -> None:
    """Contacts are read newest first, 150 a page; the records around the first page's end
    carry the bad value. Before the fix the sync stopped after that page, reported `ok` and
    moved the cursor to the newest record: 150 of 600 contacts, never the rest."""
    with small_fake(contacts=600, conversations=50) as fake:
        ws = fake.workspace("us")
        around_page_end = _newest_first(ws.contacts(), "updated_at")[140:160]
        fake.faults("us").update(malformed_cursor_values=[(cid, value) for cid in around_page_end])
        env = pipeline_env(fake, tmp_path)
        settings, result = run_with_env(env, with_evidence=False, intercom_options=FAST)
        db = settings.duckdb_path
        assert sorted(db_ids(db, "contacts", "us")) == fake_ids(ws, "contacts")
        rows = {r["resource"]: r for r in sync_results(db, ingestion_run_ids(result))}
        contacts = rows["contacts"]
        assert contacts["status"] == "partial", contacts
        assert result.exit_code == 3
        reason = contacts["reason"]
        assert f"{len(around_page_end)} record(s)" in reason and "updated_at" in reason, reason
        assert any(f"id {cid}," in reason for cid in around_page_end), reason
        assert ws.workspace_id in reason and "(us)" in reason
        if isinstance(value, str) and value != MISSING:
            assert value not in reason  # the type, never the value
        # The cursor is the newest readable value served, not the bad one.
        served = [c["updated_at"] for c in ws.contacts() if str(c["id"]) not in around_page_end]
        assert committed_cursors(db, "us")["contacts"] == datetime.fromtimestamp(max(served), UTC)

        # A clean follow-up run loads nothing new and says ok.
        fake.clear_faults()
        _, clean = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert clean.exit_code == 0, [o.error for o in clean.outcomes]
        assert_matches_fake(db, fake)


@pytest.mark.parametrize("value", [pytest.param("not a time", id="string"), pytest.param(MISSING, id="missing"),
                                   pytest.param(FAR_FUTURE, id="far-future")])
def test_unreadable_cursor_values_in_every_resource_lose_nothing_and_hold_the_cursors(
    value: Any, tmp_path: Path, caplog
) -> None:
    """After a first clean run, new and changed records of every incremental resource arrive
    with bad cursor values (the newest deletions among them, so the deleted listing's first
    page ends on one): every id is loaded, each resource is `partial`, no cursor passes the
    run's start, and a clean run after it leaves DuckDB equal to the fake."""
    caplog.set_level(logging.WARNING)
    clock = {"t": time.time() - 2 * 86400}  # the fake's changes land before the run's start
    with small_fake(contacts=400, conversations=300, now=lambda: clock["t"]) as fake:
        ws = fake.workspace("us")
        env = pipeline_env(fake, tmp_path)
        settings, first = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert first.exit_code == 0, [o.error for o in first.outcomes]
        db = settings.duckdb_path

        clock["t"] += 3600
        contacts = ws.update_contacts(count=40) + ws.create_contacts(10)
        conversations = ws.update_conversations(count=30) + ws.create_conversations(10)
        doomed = [str(c["id"]) for c in list(ws.conversations())[:70]]
        ws.delete_conversations(doomed)
        logs = ws.add_activity_logs(20)
        deleted_newest = [str(d["id"]) for d in ws.deleted_conversations()][:70]
        bad = contacts[::3] + conversations[::3] + logs[::3] + deleted_newest[50:70]
        fake.faults("us").update(malformed_cursor_values=[(i, value) for i in bad])
        _, second = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert second.exit_code == 3, [o.error for o in second.outcomes]
        rows = {r["resource"]: r for r in sync_results(db, ingestion_run_ids(second))}
        for resource in ("contacts", "conversations", "activity_logs", "deleted_conversations"):
            assert rows[resource]["status"] == "partial", rows[resource]
            if resource != "conversations":  # deleted ones have left conversations
                assert set(fake_ids(ws, resource)) <= set(db_ids(db, resource, "us")), resource
        started = datetime.now(UTC)
        for resource, cursor in committed_cursors(db, "us").items():
            assert cursor is None or cursor <= started, (resource, cursor)
        assert "partial" in caplog.text

        fake.clear_faults()
        _, clean = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert clean.exit_code == 0, [o.error for o in clean.outcomes]
        assert_matches_fake(db, fake)


# --------------------------------------------------------------------------- property

BAD_VALUES = st.one_of(
    st.text(max_size=12), st.integers(max_value=0), st.integers(min_value=10**10, max_value=10**18),
    st.floats(allow_nan=True, allow_infinity=True), st.none(), st.just(MISSING), st.booleans(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.lists(st.integers(), max_size=2),
)


def _load(fake: FakeIntercom, data: Path) -> SyncReport:
    """One run of the region's dlt source into DuckDB (dlt and DuckDB for real; no Dagster,
    to keep examples cheap)."""
    report = SyncReport("us")
    with IntercomClient("us", fake.base_url("us"), fake.token("us"), retry=CLIENT_RETRY) as client:
        source = intercom_source(region="us", client=client, pii_key=TEST_PII_KEY, report=report, reconcile=False)
        pipeline = dlt.pipeline(pipeline_name="intercom_us", pipelines_dir=str(data / ".dlt_pipelines"),
                                destination=duckdb_destination(data / "iru.duckdb"), dataset_name=DATASET_NAME,
                                progress=None)
        pipeline.run(source, loader_file_format="parquet")
    return report


@settings(max_examples=8, derandomize=True, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(contacts=st.integers(1, 400), conversations=st.integers(1, 200), deleted=st.integers(0, 80),
       logs=st.integers(0, 200), picks=st.lists(st.tuples(st.sampled_from(("contacts", "conversations",
       "deleted_conversations", "activity_logs")), st.floats(0, 1, exclude_max=True), BAD_VALUES), max_size=40))
def test_any_malformed_cursor_values_then_a_clean_run_load_exactly_the_servers_ids(
    contacts: int, conversations: int, deleted: int, logs: int, picks: list[tuple[str, float, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            FakeIntercom(seed=contacts + conversations, regions=("us",), contacts=contacts,
                         conversations=conversations) as fake:
        data = Path(tmp)
        ws = fake.workspace("us")
        ws.delete_conversations([str(c["id"]) for c in list(ws.conversations())[:min(deleted, conversations - 1)]])
        ws.add_activity_logs(logs)
        ids = {resource: fake_ids(ws, resource) for resource in RESOURCES}
        bad = [(ids[resource][int(where * len(ids[resource]))], value)
               for resource, where, value in picks if ids[resource]]
        fake.faults("us").update(malformed_cursor_values=bad)
        _load(fake, data)
        fake.clear_faults()
        _load(fake, data)
        db = data / "iru.duckdb"
        tables = {r[0] for r in query(db, "select table_name from information_schema.tables "
                                          "where table_schema = 'intercom'")}
        for resource in RESOURCES:
            stored = sorted(db_ids(db, resource, "us")) if resource in tables else []
            assert stored == fake_ids(ws, resource), resource
