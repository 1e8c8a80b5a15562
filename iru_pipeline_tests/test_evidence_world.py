"""Tests that the hand-made evidence world (data/evidence/world.sql; built by
`helpers.build_world_db`) has the raw shape the evidence SQL expects."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from iru_pipeline import evidence
from iru_pipeline.evidence.raw import RAW_COLUMNS, create_raw_views
from iru_pipeline_tests.helpers import build_world_db

# ------------------------------------------------------------------------------------ tests


def _tables_the_evidence_sql_reads() -> set[str]:
    sql = " ".join(f.read_text(encoding="utf-8") for f in (Path(evidence.__file__).parent / "sql").glob("*.sql"))
    return {name for name in RAW_COLUMNS if re.search(rf"\braw_{name}\b", sql)}


def test_world_has_every_column_the_evidence_sql_reads(tmp_path: Path) -> None:
    db = build_world_db(tmp_path / "w.duckdb")
    con = duckdb.connect(str(db))
    read = _tables_the_evidence_sql_reads()
    assert {"admins", "activity_logs", "conversations", "sync_results"} <= read
    for table, columns in RAW_COLUMNS.items():
        if table not in read:  # declared for a view (e.g. an optional resource), read by no SQL yet
            continue
        present = {r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'intercom' and table_name = ?",
            [table]).fetchall()}
        wanted = {c.split(" ", 1)[0] for c in columns}
        # email_verified is the one optional field Intercom may not send on list items
        # (docs/intercom-api.md#record-shapes-worth-knowing).
        assert wanted - present <= {"email_verified"}, (table, wanted - present)


def test_raw_views_give_missing_tables_and_columns_a_fixed_shape(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    con.execute("create schema intercom; create table intercom.admins (region varchar, id varchar, team_ids json)")
    con.execute("insert into intercom.admins values ('us', '1', '[\"t1\",\"t2\"]')")
    create_raw_views(con)
    assert con.execute("select team_ids, role_name, email from raw_admins").fetchall() == [(["t1", "t2"], None, None)]
    assert con.execute("select count(*) from raw_activity_logs").fetchone() == (0,)
    types = dict(con.execute("select column_name, column_type from (describe raw_activity_logs)").fetchall())
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE" and types["metadata"] == "JSON"
