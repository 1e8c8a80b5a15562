"""DuckDB compared with the fake Intercom: ids, field values, the run's record and cursors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_records.registry import LOADED_RESOURCES, RESOURCES

SNAPSHOT_TABLES = tuple(r.name for r in RESOURCES if r.keeps_history)
"""Tables with scd2 history: their current rows are those with `_dlt_valid_to IS NULL`."""


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def execute_utc(db: Path, sql: str, params: list[Any] | None = None) -> None:
    """Run `sql` (statements changing the file) on a connection whose time zone is UTC."""
    con = duckdb.connect(str(db))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(sql, params or [])
    finally:
        con.close()


def query_dicts(db: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """`query`, each row as a dict by column name."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def db_ids(db: Path, table: str, region: str) -> list[str]:
    """Ids of the current rows of a table for a region (history tables: `_dlt_valid_to IS NULL`)."""
    current = " and _dlt_valid_to is null" if table in SNAPSHOT_TABLES else ""
    return sorted(r[0] for r in query(db, f"select id from intercom.{table} where region = ?{current}", [region]))


def fake_ids(ws: Any, resource: str) -> list[str]:
    if resource == "contacts":
        return sorted(str(c["id"]) for c in ws.contacts())
    if resource == "conversations":
        return sorted(str(c["id"]) for c in ws.conversations())
    if resource == "admins":
        return sorted(str(a["id"]) for a in ws.admins())
    if resource == "teams":
        return sorted(str(t["id"]) for t in ws.teams())
    if resource == "tags":
        return sorted(str(t["id"]) for t in ws.tags())
    if resource == "team_memberships":
        return sorted(f"{t['id']}:{a}" for t in ws.teams() for a in t.get("admin_ids", []))
    if resource == "activity_logs":
        return sorted(str(e["id"]) for e in ws.activity_logs(0))
    if resource == "deleted_conversations":
        return sorted(str(d["id"]) for d in ws.deleted_conversations())
    if resource in ("workspaces", "ip_allowlist"):
        return [ws.workspace_id]
    raise KeyError(resource)


COMPARED = tuple(r.name for r in LOADED_RESOURCES if r.name != "data_attributes")
"""Every resource a run loads but data attributes, whose ids the pipeline builds from model and name
(built-in attributes have none): tests compare those by value."""


def assert_matches_fake(db: Path, fake: Any, regions: tuple[str, ...] | None = None) -> None:
    """Every compared resource of every region: the same ids, each exactly once."""
    for region in regions or fake.regions:
        ws = fake.workspace(region)
        for resource in COMPARED:
            got, want = db_ids(db, resource, region), fake_ids(ws, resource)
            assert len(got) == len(set(got)), f"{region}/{resource}: duplicated ids"
            missing, extra = set(want) - set(got), set(got) - set(want)
            assert not missing and not extra, (
                f"{region}/{resource}: {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
                f"{len(extra)} unexpected (e.g. {sorted(extra)[:3]})")


def contact_updated_at(db: Path, region: str) -> dict[str, int]:
    return {r[0]: r[1] for r in query(
        db, "select id, epoch(updated_at)::bigint from intercom.contacts where region = ?", [region])}


def table_fingerprint(db: Path, table: str) -> tuple[int, int]:
    """(row count including history, load ids seen): unchanged when a run loads nothing new."""
    return query(db, f"select count(*), count(distinct _dlt_load_id) from intercom.{table}")[0]


# --------------------------------------------------------------------------- values


def _epoch(value: Any) -> int | None:
    if value in (None, 0) or isinstance(value, bool):
        return None
    return int(value)


def _id(value: Any) -> str | None:
    return None if value in (None, 0, "0", "") else str(value)


def _expected(ws: Any, table: str) -> dict[str, tuple]:
    if table == "contacts":
        return {str(c["id"]): (_epoch(c.get("updated_at")), _epoch(c.get("last_seen_at")), c.get("role"))
                for c in ws.contacts()}
    if table == "conversations":
        return {str(c["id"]): (_epoch(c.get("updated_at")), c.get("state"), c.get("open"),
                               _id(c.get("admin_assignee_id")))
                for c in ws.conversations()}
    if table == "activity_logs":
        return {str(e["id"]): (_epoch(e.get("created_at")), e.get("activity_type")) for e in ws.activity_logs(0)}
    if table == "admins":
        return {str(a["id"]): (a.get("name"), a.get("email")) for a in ws.admins()}
    if table == "teams":
        return {str(t["id"]): (t.get("name"),) for t in ws.teams()}
    if table == "tags":
        return {str(t["id"]): (t.get("name"),) for t in ws.tags()}
    if table == "deleted_conversations":
        return {str(d["id"]): (_epoch(d.get("deleted_at")),) for d in ws.deleted_conversations()}
    raise KeyError(table)


_STORED = {
    "contacts": "epoch(updated_at)::bigint, epoch(last_seen_at)::bigint, role",
    "conversations": "epoch(updated_at)::bigint, state, open, admin_assignee_id",
    "activity_logs": "epoch(created_at)::bigint, activity_type",
    "admins": "name, email",
    "teams": "name",
    "tags": "name",
    "deleted_conversations": "epoch(deleted_at)::bigint",
}
VALUE_TABLES = tuple(_STORED)


def stored_values(db: Path, table: str, region: str) -> dict[str, tuple]:
    current = " and _dlt_valid_to is null" if table in ("admins", "teams", "tags") else ""
    rows = query(db, f"select id, {_STORED[table]} from intercom.{table} where region = ?{current}", [region])
    return {r[0]: tuple(r[1:]) for r in rows}


def assert_values_match_fake(db: Path, fake: FakeIntercom, regions: tuple[str, ...] | None = None,
                             tables: tuple[str, ...] = VALUE_TABLES) -> None:
    """Every compared table of every region: the same ids with the same values (cursor
    timestamps, states, names), so a stale row kept by a faulty run would show."""
    for region in regions or fake.regions:
        ws = fake.workspace(region)
        for table in tables:
            want, got = _expected(ws, table), stored_values(db, table, region)
            differ = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
            extra = sorted(set(got) - set(want))
            assert not differ and not extra, (
                f"{region}/{table}: {len(differ)} rows differ or are missing "
                f"(stored, fake) e.g. {list(differ.items())[:2]}; {len(extra)} unexpected e.g. {extra[:3]}")


# --------------------------------------------------------------------------- the run's record


def sync_results(db: Path, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of `intercom.sync_results` (of the given runs)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        sql = "select * from intercom.sync_results"
        params: list[Any] = []
        if run_ids is not None:
            sql += " where run_id in (select unnest(?))"
            params = [run_ids]
        cur = con.execute(sql + " order by region, resource", params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def api_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    keys = ("api_calls", "api_retries", "api_429s", "api_5xx", "api_transport_errors")
    return {k: sum(int(r[k] or 0) for r in rows) for k in keys}


# --------------------------------------------------------------------------- cursors


CURSORS = {"contacts": "updated_at", "conversations": "updated_at", "activity_logs": "created_at",
           "deleted_conversations": "deleted_at"}


def committed_cursors(db: Path, region: str) -> dict[str, Any] | None:
    """The cursors dlt restores for a region at the start of its next run: the newest state
    row of a *completed* load (dlt joins `_dlt_loads` with status 0), or None."""
    from dlt.common.versioned_state import decompress_state

    if not db.exists():
        return None
    tables = {r[0] for r in query(db, "select table_name from information_schema.tables "
                                      "where table_schema = 'intercom'")}
    if not {"_dlt_pipeline_state", "_dlt_loads"} <= tables:
        return None
    rows = query(db, "select s.state from intercom._dlt_pipeline_state s join intercom._dlt_loads l "
                     "on l.load_id = s._dlt_load_id where s.pipeline_name = ? and l.status = 0 "
                     "order by l.load_id desc limit 1", [f"intercom_{region}"])
    if not rows:
        return None
    resources = decompress_state(rows[0][0]).get("sources", {}).get("intercom", {}).get("resources", {})
    out = {}
    for resource, field in CURSORS.items():
        value = resources.get(resource, {}).get("incremental", {}).get(field, {}).get("last_value")
        if value is not None:
            out[resource] = value
    return out


def assert_no_cursor_passed_unloaded_data(db: Path, fake: FakeIntercom, region: str) -> None:
    """Every record at or before a committed cursor is in DuckDB: a cursor never moved past
    data that was not loaded."""
    cursors = committed_cursors(db, region)
    if not cursors:
        return
    ws = fake.workspace(region)
    records = {"contacts": list(ws.contacts()), "conversations": list(ws.conversations()),
               "activity_logs": ws.activity_logs(0), "deleted_conversations": ws.deleted_conversations()}
    for resource, cursor in cursors.items():
        field = CURSORS[resource]
        limit = cursor.timestamp()
        behind = {str(r["id"]) for r in records[resource] if r.get(field) and r[field] <= limit}
        stored = set(db_ids(db, resource, region))
        missing = behind - stored
        assert not missing, (f"{region}/{resource}: the committed cursor {cursor} is past {len(missing)} records "
                             f"that are not in DuckDB, e.g. {sorted(missing)[:3]}")
