"""Local state is disposable: a region's dlt working dir whose `state.json` cannot be read is
discarded with a one-line notice and rebuilt from DuckDB (cursors included, so the run stays
quiet); a state row in DuckDB that cannot be read stops that region, before any request for
data, with one line naming the table, the pipeline and the fix, and the fix works."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import duckdb
import pytest

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


@pytest.mark.parametrize("content", [
    pytest.param(b"", id="empty"),
    pytest.param(b'{"_state_version": 3, "sources": {"intercom"', id="truncated-json"),
    pytest.param(b"[1, 2, 3]", id="json-of-another-shape"),
    pytest.param(bytes(range(256)), id="binary-garbage"),
])
def test_an_unreadable_state_json_is_discarded_and_the_cursors_come_back_from_duckdb(
    content: bytes, tmp_path: Path, caplog
) -> None:
    with small_fake(contacts=200, conversations=100) as fake:
        env = pipeline_env(fake, tmp_path)
        settings, first = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert first.exit_code == 0, [o.error for o in first.outcomes]
        db = settings.duckdb_path
        cursors = committed_cursors(db, "us")
        state_file = settings.pipelines_dir / "intercom_us" / "state.json"
        assert state_file.is_file()
        state_file.write_bytes(content)

        caplog.clear()
        caplog.set_level(logging.WARNING)
        _, second = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert second.exit_code == 0, [o.error for o in second.outcomes]
        notices = [r.getMessage() for r in caplog.records if str(state_file) in r.getMessage()]
        assert notices and all("\n" not in n and "restored from DuckDB" in n for n in notices), notices
        # Rebuilt from DuckDB: the cursors went on from where they were, so nothing reloads.
        rows = {r["resource"]: r for r in sync_results(db, ingestion_run_ids(second))}
        for resource in ("contacts", "conversations", "activity_logs", "deleted_conversations"):
            assert rows[resource]["rows_loaded"] == 0, rows[resource]
        assert committed_cursors(db, "us") == cursors
        assert_matches_fake(db, fake)


def test_an_unreadable_state_row_in_duckdb_stops_the_region_naming_table_pipeline_and_fix(tmp_path: Path) -> None:
    with small_fake(contacts=200, conversations=100) as fake:
        env = pipeline_env(fake, tmp_path)
        settings, first = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert first.exit_code == 0, [o.error for o in first.outcomes]
        db = settings.duckdb_path
        ws = fake.workspace("us")
        ws.update_contacts(count=10)
        _, second = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert second.exit_code == 0
        con = duckdb.connect(str(db))
        newest = con.execute("select max(_dlt_load_id) from intercom._dlt_pipeline_state "
                             "where pipeline_name = 'intercom_us'").fetchone()[0]
        con.execute("update intercom._dlt_pipeline_state set state = 'not a state' where _dlt_load_id = ?", [newest])
        con.close()

        fake.reset_stats("us")
        _, third = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert third.exit_code == 1
        (error,) = [o.error for o in third.outcomes if o.error]
        assert "\n" not in error
        for named in ("intercom._dlt_pipeline_state", "intercom_us", newest, "DELETE FROM"):
            assert named in error, (named, error)
        assert "not a state" not in error
        data_routes = {k for k, v in fake.stats("us")["by_route"].items() if v and k != "GET /me"}
        assert not data_routes, f"a region with unreadable state asked Intercom for data: {data_routes}"

        # The fix the message names works: the run resumes from the row before it.
        fix = re.search(r"\((DELETE FROM [^)]*)\)", error)
        assert fix, error
        con = duckdb.connect(str(db))
        con.execute(fix.group(1))
        con.close()
        _, fourth = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert fourth.exit_code == 0, [o.error for o in fourth.outcomes]
        assert_matches_fake(db, fake)
