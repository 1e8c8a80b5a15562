"""`intercom.sync_results` counts: `rows_loaded` is the rows that landed; deletion markers
(`rows_deleted`) and records the API sent more than once (`duplicates_skipped`) are counted
apart. A table written by the previous version is upgraded in place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from iru_pipeline.intercom_source.helpers import SyncReport
from iru_pipeline.sync_results import Collected, upgrade_timestamps, write_sync_results
from iru_pipeline_tests.helpers import (  # noqa: F401
    fresh_progress_handler,
    on_nth_request,
    pipeline_env,
    query,
    run_with_env,
    small_fake,
)

# The table as the previous version created it (no duplicates_skipped).
PREVIOUS_DDL = """
create schema if not exists intercom;
create table intercom.sync_results (
    run_id varchar not null, region varchar not null, resource varchar not null, status varchar not null,
    reason varchar, rows_loaded bigint, unchanged_rows_skipped bigint, rows_deleted bigint, pages bigint,
    cursor_before varchar, cursor_after varchar, window_start varchar, window_end varchar, api_host varchar,
    api_version varchar, api_calls bigint, api_retries bigint, api_429s bigint, api_5xx bigint,
    api_transport_errors bigint, lowest_ratelimit_remaining bigint, error_code varchar, http_status integer,
    request_id varchar, fields_dropped varchar[], reconciled boolean, started_at timestamptz,
    finished_at timestamptz
);
"""


def test_a_table_the_previous_version_wrote_is_upgraded_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(PREVIOUS_DDL)
    con.execute("insert into intercom.sync_results (run_id, region, resource, status, rows_loaded, api_calls) "
                "values ('old-run', 'us', 'tags', 'ok', 25, 1), ('old-run', 'eu', 'tags', 'ok', 3, 1)")
    # The `us` name was bound to its workspace by that version; `eu` never was (no id known).
    con.execute("create schema iru_meta; create table iru_meta.workspace_bindings (name varchar primary key, "
                "region varchar not null, workspace_id varchar not null, workspace_name varchar, "
                "bound_at timestamptz not null); insert into iru_meta.workspace_bindings "
                "values ('us', 'us', 'ws-old', 'Old', now())")
    con.close()

    report = SyncReport("us", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    tags = report.resource("tags")
    tags.status, tags.rows, tags.pages = "ok", 7, 1
    write_sync_results(db, "new-run", Collected("acme", "us", "ws-new"), None, report, None,
                       loaded_rows={"tags": 7}, selected=["tags"])

    rows = query(db, "select run_id, workspace, workspace_id, region, resource, status, rows_loaded, api_calls, "
                     "duplicates_skipped from intercom.sync_results order by run_id desc, region")
    assert rows == [("old-run", "eu", None, "eu", "tags", "ok", 3, 1, None),
                    ("old-run", "us", "ws-old", "us", "tags", "ok", 25, 1, None),
                    ("new-run", "acme", "ws-new", "us", "tags", "ok", 7, 0, 0)]


# The table as the version before typed windows created it: windows as ISO 8601 text.
TEXT_WINDOWS_DDL = PREVIOUS_DDL.replace("finished_at timestamptz\n",
                                        "finished_at timestamptz, duplicates_skipped bigint\n")


def test_text_windows_of_the_previous_version_become_timestamps_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(TEXT_WINDOWS_DDL)
    con.execute("insert into intercom.sync_results (run_id, region, resource, status, window_start, window_end, "
                "started_at, finished_at) values "
                "('old-run', 'us', 'activity_logs', 'ok', '2023-12-05T10:37:25+00:00', '2026-12-04T10:37:25.5+00:00', "
                "'2026-12-04T10:37:20+00:00', '2026-12-04T10:37:27+00:00'), "
                "('old-run', 'us', 'tags', 'ok', null, null, null, null)")
    con.close()

    report = SyncReport("us", started_at=datetime(2026, 12, 5, 3, tzinfo=UTC))
    logs = report.resource("activity_logs")
    logs.status, logs.rows = "ok", 4
    logs.window_start, logs.window_end = "2026-12-04T10:37:25+00:00", "2026-12-05T03:00:01.250000+00:00"
    write_sync_results(db, "new-run", Collected("us", "us", "ws-us"), None, report, None, loaded_rows={"activity_logs": 4},
                       selected=["activity_logs"])

    types = dict(query(db, "select column_name, data_type from information_schema.columns "
                           "where table_schema = 'intercom' and table_name = 'sync_results'"))
    assert {types[c] for c in ("window_start", "window_end", "started_at", "finished_at")} == {
        "TIMESTAMP WITH TIME ZONE"}
    rows = query(db, "select run_id, resource, window_start, window_end from intercom.sync_results "
                     "order by run_id desc, resource")
    assert rows == [
        ("old-run", "activity_logs", datetime(2023, 12, 5, 10, 37, 25, tzinfo=UTC),
         datetime(2026, 12, 4, 10, 37, 25, 500000, tzinfo=UTC)),
        ("old-run", "tags", None, None),
        ("new-run", "activity_logs", datetime(2026, 12, 4, 10, 37, 25, tzinfo=UTC),
         datetime(2026, 12, 5, 3, 0, 1, 250000, tzinfo=UTC)),
    ]
    # A second write by the new version finds nothing left to convert.
    con = duckdb.connect(str(db))
    try:
        assert upgrade_timestamps(con) == []
    finally:
        con.close()


def test_rows_loaded_counts_landed_rows_apart_from_tombstones_and_repeats(tmp_path: Path) -> None:
    with small_fake(conversations=200) as fake:
        ws = fake.workspace("us")
        deleted = [str(c["id"]) for c in list(ws.conversations())[:3]]
        ws.delete_conversations(deleted)
        live = sorted(str(c["id"]) for c in ws.conversations())
        first_page = sorted(live, key=lambda i: (ws.conversation(i)["updated_at"], i))[:150]
        # After the first page, five of its conversations change: they come again on the last page.
        again = first_page[:5]
        on_nth_request(fake, "us", "POST /conversations/search", 1, lambda: ws.update_conversations(again))
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False)
        assert result.exit_code == 0, [o.error for o in result.outcomes]
        rows = {r["resource"]: r for r in result.sync_rows}
        stored = query(settings.duckdb_path, "select count(*) from intercom.conversations where region = 'us'")[0][0]
        assert stored == len(live)
        assert rows["conversations"]["rows_loaded"] == len(live)
        tombstones = ws.deleted_conversations()  # the three, and those the fake was born with
        assert set(deleted) <= {str(d["id"]) for d in tombstones}
        assert rows["conversations"]["rows_deleted"] == len(tombstones)
        full = query(settings.duckdb_path, "select duplicates_skipped from intercom.sync_results "
                                           "where resource = 'conversations'")
        assert full == [(len(again),)]
        contacts = rows["contacts"]["rows_loaded"]
        assert contacts == sum(1 for _ in ws.contacts())
