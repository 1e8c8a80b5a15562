"""A DuckDB file written by an earlier release is upgraded in place by a run of this version.

`data/release_db/release.duckdb.gz` was written by the release named in `release_db.json`
(the command is at the top of `data/release_db/make_release_db.py`): two `iru-pipeline run`s of
regions us and eu against the bundled fake, an admin removed, contacts and conversations
updated and a conversation deleted between them. The test rebuilds the same fake (same seed,
sizes, clock and mutations, so it serves what the release's second run saw), changes a few
records after that, runs this version's `iru-pipeline run` on a copy of the file, and checks
against the file itself (read before the run) and the fake: nothing the release stored is
lost, the evidence chain still verifies, and the run is incremental from the stored cursors.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

from iru_pipeline.cli import main
from iru_pipeline.evidence.manifest import verify_chain
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline_tests.helpers import CURSORS, SNAPSHOT_TABLES, TEST_PII_KEY, committed_cursors, query

HERE = Path(__file__).resolve().parent / "data" / "release_db"
FIXTURE = HERE / "release.duckdb.gz"
META = HERE / "release_db.json"

MERGED_TABLES = ("contacts", "conversations", "activity_logs", "deleted_conversations")
"""Raw tables merged on their id (no history): a row of the fixture may be updated, never lost."""
HISTORY_TABLES = tuple(t for t in SNAPSHOT_TABLES if t != "ip_allowlist")
"""The scd2 tables a run loads (`ip_allowlist` is not loaded by a run)."""
SYNC_COLUMNS = ("run_id", "region", "resource", "status", "rows_loaded", "cursor_before", "cursor_after",
                "api_calls", "started_at", "finished_at")
"""The columns of `intercom.sync_results` whose values the release's rows must keep."""

CONTACTS_TOUCHED_AFTER = 3
CONVERSATIONS_TOUCHED_AFTER = 2


def _maker() -> ModuleType:
    """make_release_db.py, imported by path: its fake and mutations are the fixture's."""
    spec = importlib.util.spec_from_file_location("make_release_db", HERE / "make_release_db.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixture_snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, set[tuple[Any, ...]]]:
    """Every raw row's identity per table: `(region, workspace_id, id)` for merged tables and
    `(region, workspace_id, id, _dlt_valid_from, _dlt_valid_to)` for the scd2 tables, so a
    retired history row is told from the current one. Extend it when keys change."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    for table in MERGED_TABLES:
        out[table] = set(con.execute(f"select region, workspace_id, id from intercom.{table}").fetchall())
    for table in HISTORY_TABLES:
        out[table] = set(con.execute(
            f"select region, workspace_id, id, _dlt_valid_from, _dlt_valid_to from intercom.{table}").fetchall())
    return out


def _sync_rows(con: duckdb.DuckDBPyConnection) -> set[tuple[Any, ...]]:
    return set(con.execute(f"select {', '.join(SYNC_COLUMNS)} from intercom.sync_results").fetchall())


def _chain(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(
        "select distinct run_id, chain_seq, as_of, manifest_sha256, previous_manifest_sha256 "
        "from evidence.evidence_collection_run order by chain_seq").fetchall()


def _load_ids(con: duckdb.DuckDBPyConnection, table: str) -> dict[tuple[str, str], str]:
    rows = con.execute(f"select region, id, _dlt_load_id from intercom.{table}").fetchall()
    return {(r, i): load for r, i, load in rows}


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fixture copied to tmp and read, then run once by this version against the rebuilt fake."""
    if not FIXTURE.exists() or not META.exists():
        pytest.skip(f"{FIXTURE.name} is missing; make it with the command in make_release_db.py")
    meta = json.loads(META.read_text())
    maker = _maker()
    assert (meta["seed"], meta["sizes"], meta["clock_epoch"], meta["mutations"]) == (
        maker.SEED, maker.SIZES, maker.EPOCH, maker.MUTATIONS), "release_db.json and make_release_db.py disagree"
    assert meta["pii_key"] == TEST_PII_KEY

    data = tmp_path_factory.mktemp("upgrade") / "data"
    data.mkdir()
    db = data / "iru.duckdb"
    with gzip.open(FIXTURE, "rb") as src, db.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    db.chmod(0o600)
    before = _read_fixture(db, meta["regions"])

    clock = maker.Clock()
    with maker.build_fake(clock) as fake, pytest.MonkeyPatch.context() as mp:
        maker.apply_mutations(fake, clock)
        _assert_fake_serves_the_fixture(fake, before["updated_at"])
        # Changes after the release's last run: the upgraded run must load them.
        clock.t = maker.MUTATION_AT + 3600
        touched = {
            ("us", "contacts"): fake.workspace("us").update_contacts(count=CONTACTS_TOUCHED_AFTER),
            ("eu", "conversations"): fake.workspace("eu").update_conversations(count=CONVERSATIONS_TOUCHED_AFTER),
        }
        fake.reset_stats()
        for name in [n for n in os.environ if n.startswith(("INTERCOM_", "IRU_"))]:
            mp.delenv(name)
        for key, value in {"IRU_DUCKDB_PATH": str(db), "IRU_PII_KEY": meta["pii_key"], **fake.env()}.items():
            mp.setenv(key, value)
        # --reconcile: the contacts sweep runs whatever the fixture's age, so it is tested too.
        code = main(["run", "--reconcile"])
        routes = {region: fake.stats(region)["by_route"] for region in fake.regions}
        updated_at = {
            "contacts": {r: {c["id"]: c["updated_at"] for c in fake.workspace(r).contacts()} for r in fake.regions},
            "conversations": {r: {c["id"]: c["updated_at"] for c in fake.workspace(r).conversations()}
                              for r in fake.regions},
        }
    return {"db": db, "code": code, "before": before, "touched": touched, "routes": routes, "meta": meta,
            "updated_at": updated_at}


def _read_fixture(db: Path, regions: list[str]) -> dict[str, Any]:
    """What the release left in the file, read before this version touches it."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        runs = [r for (r,) in con.execute(
            "select run_id from intercom.sync_results group by run_id order by min(started_at)").fetchall()]
        cursor_rows = con.execute("select run_id, region, resource, cursor_before, cursor_after "
                                  "from intercom.sync_results").fetchall()
        out: dict[str, Any] = {
            "rows": fixture_snapshot(con),
            "sync": _sync_rows(con),
            "chain": _chain(con),
            "chain_problems": verify_chain(con),
            "load_ids": {t: _load_ids(con, t) for t in ("contacts", "conversations")},
            "updated_at": {t: {(r, i): ts for r, i, ts in con.execute(
                f"select region, id, epoch(updated_at)::bigint from intercom.{t}").fetchall()}
                for t in ("contacts", "conversations")},
        }
    finally:
        con.close()
    out["cursors"] = {r: committed_cursors(db, r) for r in regions}
    # How far below its stored cursor the release starts a window, as its own runs show: the
    # first run's cursor after, against the second run's cursor before (us contacts).
    # The release runs one Dagster run per region: the first len(regions) are its first run.
    first = {(reg, res): a for rid, reg, res, _, a in cursor_rows if rid in runs[:len(regions)]}
    second = {(reg, res): b for rid, reg, res, b, _ in cursor_rows if rid in runs[len(regions):]}
    out["overlap"] = (datetime.fromisoformat(first[("us", "contacts")])
                      - datetime.fromisoformat(second[("us", "contacts")]))
    return out


def _assert_fake_serves_the_fixture(fake: FakeIntercom, stored: dict[str, dict[tuple[str, str], int]]) -> None:
    """The rebuilt fake holds exactly the records, as last changed, that the release stored."""
    for table, rows in stored.items():
        served = {(r, rec["id"]): rec["updated_at"] for r in fake.regions
                  for rec in getattr(fake.workspace(r), table)()}
        assert served == rows, (
            f"the bundled fake no longer serves the {table} the release's fake served (seed, sizes, clock "
            "and mutations in release_db.json): the test cannot rebuild the state the fixture was made in")


def _query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_release_database_is_upgraded_in_place_keeping_every_row(upgraded: dict[str, Any]) -> None:
    assert upgraded["code"] == 0
    db, before = upgraded["db"], upgraded["before"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        after = fixture_snapshot(con)
        for table in MERGED_TABLES:
            rows = before["rows"][table]
            assert rows, f"the fixture has no {table} rows"
            missing = rows - after[table]
            assert not missing, f"{table}: {len(missing)} rows of the release lost, e.g. {sorted(missing)[:3]}"
        for table in HISTORY_TABLES:
            rows = before["rows"][table]
            assert rows, f"the fixture has no {table} rows"
            # History rows the release retired are kept as they were; its current rows keep
            # their start (a changed snapshot may retire them, never remove them).
            retired = {row for row in rows if row[4] is not None}
            assert retired <= after[table], f"{table}: retired rows lost: {sorted(retired - after[table])[:3]}"
            started = {row[:4] for row in after[table]}
            lost = {row for row in rows if row[:4] not in started}
            assert not lost, f"{table}: {len(lost)} rows of the release lost, e.g. {sorted(lost)[:3]}"
        # The history the release wrote is in the fixture: the removed admin's row was retired.
        removed = upgraded["meta"]["touched"]["us.remove_admin"]
        assert {("us", a) for a in removed} <= {(r, i) for r, _, i, _, to in before["rows"]["admins"] if to}

        # Between the release's last run and this one the fake's snapshots did not change, so
        # nothing is retired and nothing added; but for `workspaces`, whose row records the API
        # host, and the fake listens on another loopback port now than when the file was made.
        for table in HISTORY_TABLES:
            if table != "workspaces":
                assert after[table] == before["rows"][table], table
        cur = con.execute("select * from intercom.workspaces")
        names = [d[0] for d in cur.description]
        ws_rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        plain = [c for c in names if c != "api_host" and not c.startswith("_dlt_")]
        for region, _, wid, valid_from, valid_to in before["rows"]["workspaces"]:
            old_row = next(r for r in ws_rows
                           if (r["region"], r["id"], r["_dlt_valid_from"]) == (region, wid, valid_from))
            if old_row["_dlt_valid_to"] == valid_to:
                continue
            new_row = next(r for r in ws_rows if (r["region"], r["id"]) == (region, wid) and r["_dlt_valid_to"] is None)
            assert {c: old_row[c] for c in plain} == {c: new_row[c] for c in plain}, "only the API host changed"
            assert old_row["api_host"] != new_row["api_host"]

        assert before["sync"] <= _sync_rows(con), "sync results of the release's runs lost or changed"
    finally:
        con.close()


def test_the_evidence_runs_and_their_chain_are_kept_and_verify(upgraded: dict[str, Any]) -> None:
    assert upgraded["code"] == 0
    before = upgraded["before"]
    assert before["chain_problems"] == [], "the fixture's own chain must verify"
    assert len(before["chain"]) == 2, "the release derived evidence twice"
    con = duckdb.connect(str(upgraded["db"]), read_only=True)
    try:
        chain = _chain(con)
        assert chain[: len(before["chain"])] == before["chain"]
        assert len(chain) == len(before["chain"]) + 1
        assert chain[-1][4] == before["chain"][-1][3], "the new run links to the release's last manifest"
        assert verify_chain(con) == []
    finally:
        con.close()


def test_the_first_run_after_upgrading_is_incremental_from_the_stored_cursors(upgraded: dict[str, Any]) -> None:
    assert upgraded["code"] == 0
    db, before = upgraded["db"], upgraded["before"]
    new_runs = {r for (r,) in _query(db, "select distinct run_id from intercom.sync_results")} - {
        row[0] for row in before["sync"]}
    # One run loads every workspace; the release's region-named ones keep their names.
    assert len(new_runs) == 1, new_runs
    rows = {(w, res): (b, loaded) for w, res, b, loaded, rid in _query(
        db, "select workspace, resource, cursor_before, rows_loaded, run_id from intercom.sync_results")
        if rid in new_runs}
    assert {w for w, _res in rows} == set(upgraded["meta"]["regions"])

    for region, cursors in before["cursors"].items():
        assert cursors and set(cursors) == set(CURSORS), region
        for resource, stored in cursors.items():
            # The stored cursor was carried over: the window starts at it minus the overlap,
            # exactly as the release's own next run would have started.
            assert rows[(region, resource)][0] == (stored - before["overlap"]).isoformat(), (region, resource)

    # Only the records changed after the stored cursor were loaded (those of the overlap below
    # it are unchanged and skipped, as in the release's own second run), not every record.
    changed: dict[tuple[str, str], set[str]] = {}
    for region in upgraded["meta"]["regions"]:
        for resource, now in upgraded["updated_at"].items():
            cursor = int(before["cursors"][region][resource].timestamp())
            changed[(region, resource)] = {i for i, ts in now[region].items() if ts > cursor}
            assert rows[(region, resource)][1] == len(changed[(region, resource)]), (region, resource)
        for resource in ("activity_logs", "deleted_conversations"):
            assert rows[(region, resource)][1] == 0, (region, resource)
        routes = upgraded["routes"][region]
        assert routes.get("POST /contacts/search", 0) <= 3, routes
        assert routes.get("POST /conversations/search", 0) <= 3, routes
    assert {k: v for k, v in changed.items() if v} == {k: set(v) for k, v in upgraded["touched"].items()}
    for (region, resource), ids in upgraded["touched"].items():
        stored = dict(_query(db, f"select id, epoch(updated_at)::bigint from intercom.{resource} "
                                 f"where region = '{region}'"))
        now = upgraded["updated_at"][resource][region]
        assert {i: stored[i] for i in ids} == {i: now[i] for i in ids}

    # Every other row is the release's own, not written again (a full reload would).
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table, load_ids in before["load_ids"].items():
            now_ids = _load_ids(con, table)
            kept = {key: load for key, load in load_ids.items() if key[1] not in changed[(key[0], table)]}
            assert len(kept) == len(load_ids) - sum(len(changed[(r, table)]) for r in upgraded["meta"]["regions"])
            assert {key: now_ids[key] for key in kept} == kept, f"{table}: rows the run did not need were loaded again"
    finally:
        con.close()


def test_no_current_row_is_duplicated_per_workspace_and_id(upgraded: dict[str, Any]) -> None:
    assert upgraded["code"] == 0
    for table in MERGED_TABLES + HISTORY_TABLES:
        current = " where _dlt_valid_to is null" if table in HISTORY_TABLES else ""
        dupes = _query(upgraded["db"], f"select workspace_id, id, count(*) from intercom.{table}{current} "
                                       "group by all having count(*) > 1")
        assert dupes == [], (table, dupes[:3])


def test_the_tables_are_keyed_by_workspace_after_upgrading(upgraded: dict[str, Any]) -> None:
    """The release keyed the tables by region (primary key (region, id), scd2 merge key
    region); the stored dlt schema now keys them by workspace, so two workspaces of one
    region never overwrite or retire each other's rows."""
    assert upgraded["code"] == 0
    db = upgraded["db"]
    (schema,) = _query(db, "select schema from intercom._dlt_version order by inserted_at desc limit 1")[0]
    tables = json.loads(schema)["tables"]
    # dlt re-keys a table when a load brings it rows: every snapshot (whole lists, every run),
    # and the incremental tables this run had records for (one with nothing new keeps the old
    # hints until its next records, which no merge uses meanwhile).
    new_loads = [r[0] for r in query(db, "select load_id from intercom._dlt_loads where inserted_at >= "
                                          "(select min(started_at) from intercom.sync_results where workspace_id "
                                          "is not null and run_id not in (select unnest(?)))",
                                      [[row[0] for row in upgraded["before"]["sync"]]])]
    written = [*HISTORY_TABLES] + [t for t in MERGED_TABLES
               if query(db, f"select count(*) from intercom.{t} where _dlt_load_id in (select unnest(?))",
                         [new_loads])[0][0]]
    assert {"contacts", "conversations"} <= set(written), written
    for table in written:
        columns = tables[table]["columns"]
        hint = "primary_key" if table in MERGED_TABLES else "merge_key"
        keyed = sorted(name for name, column in columns.items() if column.get(hint))
        assert keyed == (["id", "workspace_id"] if table in MERGED_TABLES else ["workspace_id"]), (table, keyed)


def test_the_fixture_was_made_by_a_release(upgraded: dict[str, Any]) -> None:
    """release_db.json names the commit that wrote the file and the command that made it."""
    meta = upgraded["meta"]
    assert len(meta["release_commit"]) == 40 and meta["release_commit"] != "unknown"
    assert "make_release_db.py" in meta["made_by"]
