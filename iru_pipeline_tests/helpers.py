"""Comparisons of DuckDB against the fake Intercom's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

SNAPSHOT_TABLES = ("workspaces", "admins", "teams", "team_memberships", "tags", "data_attributes")


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
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
    if resource == "workspaces":
        return [ws.workspace_id]
    raise KeyError(resource)


COMPARED = ("workspaces", "admins", "teams", "team_memberships", "tags", "contacts", "conversations",
            "activity_logs", "deleted_conversations")


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
