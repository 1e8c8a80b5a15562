"""The core path: every resource of every region into DuckDB, incrementally and exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_records.pii import Pseudonymizer
from iru_pipeline_tests.helpers import (
    TEST_PII_KEY,
    Loaded,
    assert_matches_fake,
    contact_updated_at,
    db_ids,
    pipeline_env,
    query,
    run_with_env,
    small_fake,
    table_fingerprint,
    tables_containing,
)


def test_three_regions_load_exactly_the_fakes_records(loaded: Loaded) -> None:
    assert_matches_fake(loaded.settings.duckdb_path, loaded.fake)


def test_region_and_id_are_unique_in_every_table(loaded: Loaded) -> None:
    db = loaded.settings.duckdb_path
    for table in ("contacts", "conversations", "activity_logs", "deleted_conversations"):
        dupes = query(db, f"select region, id from intercom.{table} group by all having count(*) > 1")
        assert dupes == [], table
    for table in ("admins", "teams", "tags", "team_memberships", "workspaces", "data_attributes"):
        dupes = query(db, f"select region, id from intercom.{table} where _dlt_valid_to is null group by all having count(*) > 1")
        assert dupes == [], table


def test_same_ids_in_two_regions_are_kept_apart(loaded: Loaded) -> None:
    shared = query(loaded.settings.duckdb_path,
                   "select count(*) from (select id from intercom.contacts group by id having count(distinct region) > 1)")
    assert shared[0][0] > 0, "the fake reuses some ids across regions; each region must keep its own row"


def test_every_row_carries_region_and_workspace(loaded: Loaded) -> None:
    db = loaded.settings.duckdb_path
    for region in loaded.fake.regions:
        wid = loaded.fake.workspace(region).workspace_id
        for table in ("contacts", "conversations", "admins", "activity_logs"):
            rows = query(db, f"select distinct workspace_id from intercom.{table} where region = ?", [region])
            assert rows == [(wid,)], (region, table)


def test_column_types_follow_the_contract(loaded: Loaded) -> None:
    types = dict(query(loaded.settings.duckdb_path,
                       "select table_name || '.' || column_name, data_type from information_schema.columns "
                       "where table_schema = 'intercom'"))
    assert types["contacts.id"] == "VARCHAR"
    assert types["conversations.admin_assignee_id"] == "VARCHAR"
    assert types["contacts.updated_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["activity_logs.created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["admins.team_ids"] == "JSON"
    # Columns that are null in every row still exist (evidence SQL relies on them).
    assert "conversations.company_id" in types


def test_contacts_are_pseudonymised(loaded: Loaded) -> None:
    db = loaded.settings.duckdb_path
    cols = {r[0] for r in query(db, "select column_name from information_schema.columns "
                                    "where table_schema = 'intercom' and table_name = 'contacts'")}
    assert {"email", "phone", "name", "external_id"}.isdisjoint(cols)
    ws = loaded.fake.workspace("us")
    sample = next(c for c in ws.contacts() if c.get("email"))
    row = query(db, "select email_hmac, email_domain, has_email from intercom.contacts where region = 'us' and id = ?",
                [sample["id"]])[0]
    assert len(row[0]) == 32 and sample["email"] not in row[0]
    assert row[1] == sample["email"].split("@")[1].lower() and row[2] is True


def test_unassigned_is_null_not_zero(loaded: Loaded) -> None:
    zeros = query(loaded.settings.duckdb_path,
                  "select count(*) from intercom.conversations where admin_assignee_id = '0' or team_assignee_id = '0'")
    assert zeros[0][0] == 0


def test_sync_results_record_every_resource(loaded: Loaded) -> None:
    rows = query(loaded.settings.duckdb_path,
                 "select region, resource, status, api_calls, api_host from intercom.sync_results")
    assert {(r[0], r[1]) for r in rows} >= {(region, "contacts") for region in loaded.fake.regions}
    assert all(r[2] == "ok" for r in rows)
    assert all(r[4].startswith("127.0.0.1:") for r in rows)


def _counts_per_route(fake: FakeIntercom, region: str) -> dict[str, int]:
    return dict(fake.stats(region)["by_route"])


def test_second_run_without_changes_loads_nothing(fresh_fake: FakeIntercom, tmp_path: Path) -> None:
    env = pipeline_env(fresh_fake, tmp_path)
    settings, first = run_with_env(env, with_evidence=False, reconcile=False)
    assert not first.failed
    db = settings.duckdb_path
    before = {t: table_fingerprint(db, t) for t in ("contacts", "conversations", "activity_logs",
                                                    "deleted_conversations", "admins", "teams", "tags")}
    for region in fresh_fake.regions:
        fresh_fake.reset_stats(region)
    _, second = run_with_env(env, with_evidence=False, reconcile=False)
    assert not second.failed
    after = {t: table_fingerprint(db, t) for t in before}
    assert after == before, "a quiet run must not add rows or versions"
    loaded_rows = {(r["region"], r["resource"]): r["rows_loaded"] for r in second.sync_rows}
    for region in fresh_fake.regions:
        for resource in ("contacts", "conversations", "activity_logs", "deleted_conversations"):
            assert loaded_rows[(region, resource)] == 0, (region, resource)
        routes = _counts_per_route(fresh_fake, region)
        # At most three requests per resource and region.
        assert routes.get("POST /contacts/search", 0) <= 3
        assert routes.get("POST /conversations/search", 0) + routes.get("GET /conversations/deleted", 0) <= 3 + 1
        assert routes.get("GET /admins/activity_logs", 0) <= 3
        assert routes.get("GET /contacts", 0) == 0, "no reconciliation sweep when it was not asked for"
        assert sum(routes.values()) <= 3 * 10


@pytest.fixture
def frozen_fake() -> FakeIntercom:
    """A fake whose clock only moves when the test says so: mutations land in one second."""
    clock = {"t": 1_790_000_000.0}
    with FakeIntercom(seed=5, contacts=500, conversations=300, now=lambda: clock["t"]) as fake:
        fake.clock = clock  # type: ignore[attr-defined]
        yield fake


def test_same_second_changes_on_the_cursors_day_are_loaded(frozen_fake: FakeIntercom, tmp_path: Path) -> None:
    fake = frozen_fake
    env = pipeline_env(fake, tmp_path)
    settings, first = run_with_env(env, with_evidence=False, reconcile=False)
    assert not first.failed
    db = settings.duckdb_path
    us = fake.workspace("us")
    eu = fake.workspace("eu")

    # Many changes in one second (the frozen clock), on the same day as the stored cursor.
    touched = us.update_contacts(count=220, same_second=True)
    created = us.create_contacts(130, same_second=True)
    gone = [c["id"] for c in list(us.contacts())[:4]]
    us.delete_contacts(gone)
    conv_touched = eu.update_conversations(count=160, same_second=True)
    conv_created = eu.create_conversations(40, same_second=True)
    conv_gone = [c["id"] for c in list(eu.conversations())[:6]]
    eu.delete_conversations(conv_gone)
    us.add_activity_logs(25)
    _, second = run_with_env(env, with_evidence=False, reconcile=False)
    assert not second.failed

    # The same records change again within the cursor's very second.
    again = [c for c in touched if c not in set(gone)][:50]
    us.update_contacts(ids=again, same_second=True)
    _, third = run_with_env(env, with_evidence=False, reconcile=True)
    assert not third.failed

    assert_matches_fake(db, fake)
    stored = contact_updated_at(db, "us")
    for cid in [c for c in touched + created if c not in set(gone)]:
        assert stored[cid] == us.contact(cid)["updated_at"], cid
    assert not set(gone) & set(db_ids(db, "contacts", "us")), "deleted contacts removed by the sweep"
    assert set(conv_gone) <= set(db_ids(db, "deleted_conversations", "eu"))
    rows = {(r["region"], r["resource"]): r for r in third.sync_rows}
    assert rows[("us", "contacts")]["rows_deleted"] == len(gone)
    # Values, not just ids: the re-touched contacts carry their latest change.
    latest = {c["id"]: c["last_seen_at"] for c in us.contacts() if c["id"] in set(again)}
    got = dict(query(db, "select id, epoch(last_seen_at)::bigint from intercom.contacts where region = 'us' "
                         "and id in (select unnest(?))", [again]))
    assert got == latest
    assert set(conv_touched + conv_created) - set(conv_gone) <= set(db_ids(db, "conversations", "eu"))


def test_the_loaded_rows_have_no_second_copy_in_the_file(tmp_path: Path) -> None:
    """dlt stages each merge load in `intercom_staging`; it is emptied once the load is done.
    Kept, it was a second copy of every row after a first load (contacts' pseudonyms included)
    until that table's next merge load, which a quiet run never makes."""
    with small_fake() as fake:
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, reconcile=False)
        assert not result.failed
        us = fake.workspace("us")
        pseudo = Pseudonymizer(TEST_PII_KEY, us.workspace_id)
        some = [c for c in us.contacts() if c.get("email") and c.get("phone")][:5]
        needles = {f"{c['id']}_{kind}": getattr(pseudo, kind)(c[kind]) for c in some for kind in ("email", "phone")}
        db = settings.duckdb_path
        assert {column for column, _ in tables_containing(db, needles)} \
            == {"intercom.contacts.email_hmac", "intercom.contacts.phone_hmac"}
        staged = [(t, n) for (t,) in query(db, "select table_name from duckdb_tables() where schema_name = "
                                               "'intercom_staging' and not starts_with(table_name, '_dlt')")
                  for (n,) in query(db, f'select count(*) from intercom_staging."{t}"') if n]
        assert staged == []


def test_forbidden_conversations_in_one_region_leave_the_rest_loaded(fresh_fake: FakeIntercom, tmp_path: Path) -> None:
    fresh_fake.faults("eu").update(forbidden_paths=("/conversations",), forbidden_kind="scope")
    env = pipeline_env(fresh_fake, tmp_path)
    settings, result = run_with_env(env, with_evidence=False)
    assert not result.failed and result.partial and result.exit_code == 3
    db = settings.duckdb_path
    rows = {(r["region"], r["resource"]): r for r in result.sync_rows}
    skipped = rows[("eu", "conversations")]
    assert skipped["status"] == "skipped"
    assert "Read conversations" in skipped["reason"]
    assert rows[("eu", "deleted_conversations")]["status"] == "skipped"
    assert rows[("eu", "contacts")]["status"] == "ok"
    assert db_ids(db, "conversations", "eu") == []
    assert_matches_fake(db, fresh_fake, regions=("us", "au"))
    ws = fresh_fake.workspace("eu")
    assert db_ids(db, "contacts", "eu") == sorted(str(c["id"]) for c in ws.contacts())


def test_plan_restriction_is_recorded_as_the_reason(fresh_fake: FakeIntercom, tmp_path: Path) -> None:
    fresh_fake.faults("au").update(forbidden_paths=("/admins/activity_logs",), forbidden_kind="plan")
    settings, result = run_with_env(pipeline_env(fresh_fake, tmp_path, regions=("au",)), with_evidence=False)
    rows = {(r["region"], r["resource"]): r for r in result.sync_rows}
    assert rows[("au", "activity_logs")]["status"] == "skipped"
    assert "plan" in rows[("au", "activity_logs")]["reason"]
    assert rows[("au", "admins")]["status"] == "ok"


def test_full_refresh_rereads_everything_without_duplicates(fresh_fake: FakeIntercom, tmp_path: Path) -> None:
    env = pipeline_env(fresh_fake, tmp_path, regions=("us",))
    settings, _ = run_with_env(env, with_evidence=False, reconcile=False)
    fresh_fake.reset_stats("us")
    _, result = run_with_env(env, with_evidence=False, reconcile=False, full_refresh=True)
    assert not result.failed
    rows = {(r["region"], r["resource"]): r for r in result.sync_rows}
    assert rows[("us", "contacts")]["rows_loaded"] == sum(1 for _ in fresh_fake.workspace("us").contacts())
    assert_matches_fake(settings.duckdb_path, fresh_fake, regions=("us",))


def test_cursors_are_restored_from_duckdb_when_the_pipelines_dir_is_lost(fresh_fake: FakeIntercom, tmp_path: Path) -> None:
    import shutil

    env = pipeline_env(fresh_fake, tmp_path, regions=("eu",))
    settings, _ = run_with_env(env, with_evidence=False, reconcile=False)
    shutil.rmtree(settings.pipelines_dir)
    fresh_fake.workspace("eu").update_contacts(count=12, same_second=True)
    fresh_fake.reset_stats("eu")
    _, result = run_with_env(env, with_evidence=False, reconcile=False)
    rows = {(r["region"], r["resource"]): r for r in result.sync_rows}
    assert rows[("eu", "contacts")]["rows_loaded"] == 12, "only the changes: the cursor came back from DuckDB"
    assert rows[("eu", "contacts")]["cursor_before"] is not None
    assert fresh_fake.stats("eu")["by_route"].get("POST /contacts/search", 0) <= 3
    assert_matches_fake(settings.duckdb_path, fresh_fake, regions=("eu",))
