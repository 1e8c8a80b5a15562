"""Regression tests for the evidence results and statuses: each builds a variant of the
hand-made world (data/evidence/world.sql), derives the evidence with the product's SQL on a
real DuckDB file, and compares with what the variant's input implies, worked out here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from iru_pipeline.config import ConfigError
from iru_pipeline.demo import control_tests as console_control_tests
from iru_pipeline.evidence import params as evidence_params
from iru_pipeline.evidence.checks import check_outcome
from iru_pipeline.evidence.controls import STATUSES
from iru_pipeline.evidence.inputs import load_inputs
from iru_pipeline.export import export_run
from iru_pipeline_tests.helpers import build_world_db, derive_world, execute_utc, world_run, write_world_inputs
from iru_pipeline_tests.helpers import query_dicts as rows

NOW = datetime.now(UTC)


def world_variant(tmp_path: Path, change: str = "", **inputs: Any) -> Path:
    """The world with `change` (SQL on the raw tables) applied, derived once as run-1."""
    db = build_world_db(tmp_path / "iru.duckdb")
    if change:
        execute_utc(db, change)
    derive_world(db, world_run(write_world_inputs(tmp_path / "in", NOW, **inputs), "run-1", NOW))
    return db


def control_results(db: Path, region: str) -> dict[str, dict[str, Any]]:
    return {r["test_id"]: r for r in rows(db, "select * from evidence.evidence_control_tests where region = ?", [region])}


# ------------------------------------------------------------------ 1. human inputs per workspace


def test_an_exception_for_one_workspace_never_approves_the_same_admin_id_elsewhere(tmp_path: Path) -> None:
    # Admin ids repeat across workspaces: EU admin "6" is another person than US admin "6" (the
    # vendor whose exception names workspace us01).
    victor = ("6", "victor@elsewhere.test")
    db = world_variant(tmp_path, f"""
        insert into intercom.admins (region, workspace_id, id, name, email, team_ids, primary_team_ids,
            secondary_team_ids, _dlt_valid_from) values
            ('eu', 'eu01', '{victor[0]}', 'Victor Vendor', '{victor[1]}', '[]', '[]', '[]', now() - interval 300 day)""")
    roster_emails = {"owner@acme.test", "sam@acme.test", "nina@acme.test"}  # active people of the world roster
    eu_admins = {"e1": "owner@acme.test", "e2": "eva@acme.test", victor[0]: victor[1]}
    exceptions_eu: set[str] = set()  # the only id exception is scoped to us01
    unidentified = sorted(e for a, e in eu_admins.items() if e not in roster_emails and a not in exceptions_eu)
    review = {(r["region"], r["admin_id"]): r for r in rows(db, "select * from evidence.evidence_admin_access_review")}
    assert review[("us", "6")]["identity_status"] == "approved_exception"
    assert review[("eu", "6")]["identity_status"] == "unmatched"
    t01 = control_results(db, "eu")["T01"]
    assert (t01["status"], t01["failing"], t01["failing_items"]) == ("fail", len(unidentified), unidentified)


def test_an_exception_by_email_applies_in_every_workspace(tmp_path: Path) -> None:
    """An e-mail names a person, and a person may hold an account in every workspace."""
    db = world_variant(
        tmp_path,
        "insert into intercom.admins (region, workspace_id, id, name, email, team_ids, primary_team_ids, "
        "secondary_team_ids, _dlt_valid_from) values ('eu', 'eu01', 'e6', 'Vendor Val', 'val@partner.test', "
        "'[]', '[]', '[]', now() - interval 300 day)",
        exceptions="admin_id,email,kind,reason,approved_by\n,val@partner.test,external,vendor,owner@acme.test\n")
    review = {(r["region"], r["admin_id"]): r for r in rows(db, "select * from evidence.evidence_admin_access_review")}
    assert review[("us", "6")]["identity_status"] == review[("eu", "e6")]["identity_status"] == "approved_exception"


@pytest.mark.parametrize("header_and_row", [
    "admin_id,kind,reason,approved_by\n6,external,vendor,owner@acme.test\n",
    "admin_id,workspace_id,region,kind,reason,approved_by\n6,,,external,vendor,owner@acme.test\n",
])
def test_an_admin_id_without_a_workspace_is_refused_naming_file_and_line(tmp_path: Path, header_and_row: str) -> None:
    path = tmp_path / "exceptions.csv"
    path.write_text(header_and_row, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_inputs({"access_exceptions": str(path)})
    text = str(err.value)
    assert f"access_exceptions file {path}, line 2:" in text and "workspace_id or region" in text and "\n" not in text


def test_an_exception_scoped_by_region_matches_that_region_only(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.csv"
    path.write_text("admin_id,region,kind,reason,approved_by\n6,US,external,vendor,owner@acme.test\n"
                    "7,mars,external,vendor,owner@acme.test\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 3: region 'mars' is not one of us, eu, au"):
        load_inputs({"access_exceptions": str(path)})
    db = world_variant(tmp_path, exceptions="admin_id,region,kind,reason,approved_by\n6,US,external,vendor,owner@acme.test\n")
    assert rows(db, "select identity_status from evidence.evidence_admin_access_review where region = 'us' "
                    "and admin_id = '6'") == [{"identity_status": "approved_exception"}]


# ------------------------------------------------------------------ 2. impersonation consent


def test_consent_on_the_impersonation_start_event_is_consent(tmp_path: Path) -> None:
    """Intercom can record the consent on the start event itself (metadata consent_id and
    expired_at); a consent that expired before the start is no consent."""
    def start(event_id: str, days_ago: int, metadata: dict[str, Any]) -> str:
        return (f"('us', 'us01', '{event_id}', now() - interval {days_ago} day, 'admin_impersonation_start', 'admin', "
                f"'1', 'owner@acme.test', '10.0.0.1', 'Intercom support started impersonation.', '{json.dumps(metadata)}')")
    iso = lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731
    starts = {
        "ev-start-consented": (60, {"consent_id": 149673, "expired_at": iso(NOW - timedelta(days=55))}),
        "ev-start-consent-expired": (50, {"consent_id": 149674, "expired_at": iso(NOW - timedelta(days=52))}),
        "ev-start-consent-no-expiry": (45, {"consent_id": 149675}),
    }
    db = world_variant(tmp_path, "insert into intercom.activity_logs values "
                       + ", ".join(start(k, d, m) for k, (d, m) in starts.items()))
    # consent_approved events of the world: ev-consent, 31 days ago (covers the start 30 days ago only)
    unconsented = {k for k, (d, m) in starts.items()
                   if "consent_id" not in m or ("expired_at" in m and m["expired_at"] < iso(NOW - timedelta(days=d)))}
    unconsented |= {"ev-impersonation-no-consent"}
    r8 = {r["event_ids"][0] for r in rows(db, "select event_ids from evidence.evidence_high_risk_activity "
                                               "where rule_id = 'R8'")}
    assert r8 == unconsented == {"ev-start-consent-expired", "ev-impersonation-no-consent"}


def test_a_revoked_consent_no_longer_covers_a_later_start(tmp_path: Path) -> None:
    db = world_variant(tmp_path, """insert into intercom.activity_logs values
        ('us', 'us01', 'ev-revoke', now() - interval 30 day - interval 1 hour, 'admin_impersonation_consent_revoked',
         'admin', '1', 'owner@acme.test', '10.0.0.1', 'Owner revoked support access.', '{}')""")
    r8 = sorted(r["event_ids"][0] for r in rows(db, "select event_ids from evidence.evidence_high_risk_activity "
                                                     "where rule_id = 'R8'"))
    # the world's approval (31 days ago) is revoked before the start 30 days ago
    assert r8 == ["ev-impersonation-no-consent", "ev-impersonation-with-consent"]


# ------------------------------------------------------------------ 3. one status vocabulary


def test_every_control_test_uses_the_one_vocabulary(tmp_path: Path) -> None:
    assert STATUSES == ("pass", "fail", "review", "manual", "not_applicable", "not_collected")
    db = world_variant(tmp_path)
    used = {r["status"] for r in rows(db, "select distinct status from evidence.evidence_control_tests")}
    assert used <= set(STATUSES) and "warning" not in used
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert all(f"`{s}`" in readme for s in STATUSES)


def test_t14_without_any_dsar_tagged_conversation_is_not_applicable(tmp_path: Path) -> None:
    db = world_variant(tmp_path, extra_config='dsar_tags = ["gdpr-request"]\n')  # no conversation carries it
    tagged = rows(db, "select count(*) as n from intercom.conversations where list_contains("
                      "list_transform(tag_names::varchar[], lambda t: lower(t)), 'gdpr-request')")
    assert tagged == [{"n": 0}]
    for region in ("us", "eu"):
        t14 = control_results(db, region)["T14"]
        assert (t14["status"], t14["population"]) == ("not_applicable", 0), region


def test_t10_measures_the_logs_held_not_the_windows_asked_for(tmp_path: Path) -> None:
    """Windows were requested for three years, but the only logs held are from the last 10
    days: nine months and more without a single log must not pass."""
    db = world_variant(tmp_path, "delete from intercom.activity_logs where created_at < now() - interval 10 day")
    held = rows(db, "select min(created_at) as first, max(created_at) as last from intercom.activity_logs "
                    "where region = 'us'")[0]
    period_start = NOW - timedelta(days=365)
    gap_days = (held["first"] - period_start).days
    assert gap_days > 300
    t10 = control_results(db, "us")["T10"]
    assert t10["status"] == "review"
    assert f"no activity-log event held from {period_start:%Y-%m-%d} to {held['first']:%Y-%m-%d}" in " ".join(
        t10["failing_items"])
    assert any("held logs: first event" in f for f in t10["findings"])


def test_t10_names_each_gap_longer_than_the_parameter(tmp_path: Path) -> None:
    hours = 24 * 20
    db = world_variant(tmp_path, extra_config=f"activity_log_max_gap_hours = {hours}\n")
    times = sorted(r["created_at"] for r in rows(db, "select created_at from intercom.activity_logs where region = 'us' "
                                                     "and created_at >= now() - interval 365 day"))
    bounds = [NOW - timedelta(days=365), *times, NOW]
    gaps = [(a, b) for a, b in zip(bounds, bounds[1:]) if (b - a) > timedelta(hours=hours)]
    assert len(gaps) == 2  # the period start to the first event 140 days ago, and 140 to 52 days ago
    t10 = control_results(db, "us")["T10"]
    assert (t10["status"], t10["to_review"]) == ("review", len(gaps))
    assert [i.split(" to ")[0] for i in t10["failing_items"]] == [
        f"no activity-log event held from {a:%Y-%m-%d}" for a, _ in gaps]


def test_t02_a_leaver_without_an_account_here_is_not_applicable(tmp_path: Path) -> None:
    # EU activity logs collected too, so nothing makes EU T02 not_collected
    db = world_variant(tmp_path, "update intercom.sync_results set status = 'ok', error_code = null, http_status = null "
                                 "where region = 'eu' and resource = 'activity_logs'")
    ob = {(r["region"], r["hr_email"]): r for r in rows(db, "select * from evidence.evidence_offboarding_check")}
    assert (ob[("us", "never@acme.test")]["status"], ob[("us", "never@acme.test")]["account_found"]) == (
        "not_applicable", False)
    with_account = [k for k, r in ob.items() if k[0] == "us" and r["account_found"]]
    assert control_results(db, "us")["T02"]["population"] == len(with_account) == 3
    assert not any(r["account_found"] for k, r in ob.items() if k[0] == "eu")
    assert (control_results(db, "eu")["T02"]["status"], control_results(db, "eu")["T02"]["population"]) == ("not_applicable", 0)


def test_t06_without_roles_or_access_managers_cannot_evaluate(tmp_path: Path) -> None:
    db = world_variant(tmp_path, "update intercom.admins set role_name = null, role_id = null; "
                                 "delete from intercom.activity_logs where id = 'ev-tom-role-change'")
    t06 = control_results(db, "us")["T06"]
    assert t06["status"] == "not_collected"
    assert "not collected: the API gives no admin roles and access_managers is empty" in t06["findings"]
    events = rows(db, "select status, actor_is_authorised from evidence.evidence_access_change_events "
                      "where region = 'us'")
    assert "review" not in {e["status"] for e in events}
    assert {e["actor_is_authorised"] for e in events} == {None}


def test_t06_with_roles_still_reviews_unauthorised_changes(tmp_path: Path) -> None:
    db = world_variant(tmp_path)
    t06 = control_results(db, "us")["T06"]
    assert (t06["status"], t06["failing"]) == ("fail", 1)  # Tom's change after his termination


def test_t05_catches_a_shared_account_by_its_generic_display_name(tmp_path: Path) -> None:
    assert {"support", "admin", "team", "shared", "info", "sales"} <= set(evidence_params.GENERIC_DISPLAY_NAMES)
    db = world_variant(tmp_path, """
        insert into intercom.admins (region, workspace_id, id, name, email, team_ids, primary_team_ids,
            secondary_team_ids, _dlt_valid_from) values
            ('us', 'us01', '9', 'Sales Team', 'j.doe@acme.test', '[]', '[]', '[]', now() - interval 300 day),
            ('us', 'us01', '10', 'Ted Sales', 't.sales@acme.test', '[]', '[]', '[]', now() - interval 300 day)""")
    generic = set(evidence_params.GENERIC_DISPLAY_NAMES)
    admins = {r["admin_id"]: r for r in rows(db, "select * from evidence.evidence_admin_access_review where region = 'us'")}
    by_name = {a for a, r in admins.items() if all(w in generic for w in r["admin_name"].lower().split())}
    assert by_name == {"4", "9"}  # "Support Team" and "Sales Team"; "Ted Sales" names a person
    assert admins["9"]["shared_account_suspected"] and not admins["10"]["shared_account_suspected"]
    assert "looks shared: generic name" in admins["9"]["findings"]
    t05 = control_results(db, "us")["T05"]
    assert "j.doe@acme.test" in t05["failing_items"] and "t.sales@acme.test" not in t05["failing_items"]


def test_retention_does_not_count_a_deleted_message_or_part_as_a_record_deletion(tmp_path: Path) -> None:
    db = world_variant(tmp_path, """
        delete from intercom.deleted_conversations;
        insert into intercom.activity_logs values
            ('us', 'us01', 'ev-part-deletion', now() - interval 3 day, 'conversation_part_deletion', 'admin', '1',
             'owner@acme.test', '10.0.0.1', 'Owner deleted a reply.', '{}')""")
    deletions = rows(db, "select count(*) as n from intercom.activity_logs where activity_type in "
                         "('app_data_deletion', 'bulk_delete')")
    conv = rows(db, "select * from evidence.evidence_data_retention where region = 'us' and object_type = 'conversation'")[0]
    assert conv["deletion_events_in_period"] == deletions[0]["n"] == 0
    assert "no deletion schedule or deletion recorded in the period" in conv["findings"]


def test_t09_flags_an_api_host_that_is_not_intercom(tmp_path: Path) -> None:
    db = world_variant(tmp_path, "update intercom.workspaces set api_host = '127.0.0.1:8125' where region = 'us'; "
                                 "update intercom.workspaces set api_host = 'eu-proxy-intercom.io' where region = 'eu'")
    for region, host in (("us", "127.0.0.1:8125"), ("eu", "eu-proxy-intercom.io")):
        t09 = control_results(db, region)["T09"]
        assert t09["status"] == "review", region
        assert any(f"{host} is not an Intercom API host" in f for f in t09["findings"]), (region, t09["findings"])


# ------------------------------------------------------------------ 4. counts shown to a person


def test_counts_separate_failing_from_to_review(tmp_path: Path) -> None:
    db = world_variant(tmp_path)
    t = control_results(db, "us")
    t06 = t["T06"]
    assert t06["failing"] == 1 and t06["to_review"] == 2 and t06["warnings"] == t06["to_review"]
    expected = f"fail: {t06['failing']} failing, {t06['to_review']} to review of {t06['population']}"
    console = console_control_tests(db)
    assert any(line.split()[:2] == ["T06", "us"] and expected in line for line in console.splitlines()), console
    con = duckdb.connect(str(db), read_only=True)
    try:
        folder = export_run(con, "run-1", tmp_path / "out").folder
    finally:
        con.close()
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    t06_row = next(line for line in summary.splitlines() if line.startswith("| T06 |"))
    assert f"| {expected} |" in t06_row, t06_row
    assert "warning" not in summary.split("## Control tests", 1)[1].split("## Caveats", 1)[0]


@pytest.mark.parametrize(("status", "passed", "severity"), [
    ("fail", False, dg.AssetCheckSeverity.ERROR),
    ("review", False, dg.AssetCheckSeverity.WARN),
    ("not_collected", False, dg.AssetCheckSeverity.WARN),
    ("pass", True, None), ("manual", True, None), ("not_applicable", True, None),
])
def test_check_severity_follows_the_status(status: str, passed: bool, severity: Any) -> None:
    got_passed, got_severity = check_outcome(status)
    assert got_passed is passed
    if severity is not None:
        assert got_severity == severity


# ------------------------------------------------------------------ 5. upgrades keep data


def test_a_control_tests_table_written_before_to_review_is_upgraded_in_place(tmp_path: Path) -> None:
    db = build_world_db(tmp_path / "iru.duckdb")
    con = duckdb.connect(str(db))
    con.execute("create schema evidence")
    con.execute("""create table evidence.evidence_control_tests (run_id varchar not null, as_of timestamptz not null,
        workspace_id varchar, region varchar not null, status varchar not null, findings varchar[],
        test_id varchar not null, test_name varchar, evidence_table varchar, soc2 varchar[], iso27001 varchar[],
        gdpr varchar[], criteria varchar, params_json json, population bigint, failing bigint, warnings bigint,
        failing_items varchar[], evaluated_at timestamptz)""")
    con.execute("insert into evidence.evidence_control_tests (run_id, as_of, region, status, test_id, population, "
                "failing, warnings) values ('old-run', now() - interval 1 day, 'us', 'warning', 'T04', 6, 0, 2)")
    con.close()
    derive_world(db, world_run(write_world_inputs(tmp_path / "in", NOW), "run-1", NOW))
    old = rows(db, "select status, warnings, to_review from evidence.evidence_control_tests where run_id = 'old-run'")
    assert old == [{"status": "warning", "warnings": 2, "to_review": None}], "earlier runs are kept as written"
    new = rows(db, "select count(*) as n, count(to_review) as with_count from evidence.evidence_control_tests "
                   "where run_id = 'run-1'")
    assert new == [{"n": 30, "with_count": 30}]


def test_reviews_may_be_scoped_to_a_workspace(tmp_path: Path) -> None:
    """An access-change event id is Intercom's id within one workspace: a review naming a
    workspace applies there only."""
    db = world_variant(tmp_path, reviews="ev-val-permission,accepted,owner@acme.test,2026-01-02T10:00:00Z,,eu01\n")
    event = rows(db, "select status, review_decision from evidence.evidence_access_change_events "
                     "where event_id = 'ev-val-permission'")
    assert event == [{"status": "review", "review_decision": None}]


def test_the_fake_records_impersonation_consent_in_both_shapes() -> None:
    """Some starts carry their consent (metadata consent_id and expired_at, seven days after
    the start); approvals carry their own, expiring seven days after the approval."""
    from iru_pipeline.fake_intercom import FakeIntercom

    now = int(NOW.timestamp())
    with FakeIntercom(seed=5, contacts=20, conversations=20, activity_logs=2000, regions=("us",),
                      now=lambda: now) as fake:
        logs = fake.workspace("us").activity_logs()
    starts = [e for e in logs if e["activity_type"] == "admin_impersonation_start"]
    approvals = [e for e in logs if e["activity_type"] == "admin_impersonation_consent_approved"]
    with_consent = [e for e in starts if "consent_id" in e["metadata"]]
    assert starts and approvals and 0 < len(with_consent) < len(starts)
    for event in [*with_consent, *approvals]:
        expires = datetime.fromisoformat(event["metadata"]["expired_at"].replace("Z", "+00:00"))
        assert expires.timestamp() - event["created_at"] == 7 * 86400


def test_a_check_reading_an_earlier_run_maps_its_warning_to_review() -> None:
    from iru_pipeline.evidence.checks import worst_status

    assert worst_status(["pass", "warning"]) == "review"
    assert worst_status(["not_applicable", "pass"]) == "not_applicable"
    assert worst_status(["review", "not_collected", "fail"]) == "fail"


def test_a_never_active_admin_is_not_stale_when_the_logs_held_are_too_short_to_tell(tmp_path: Path) -> None:
    """Logs were requested for three years but only the last 10 days are held: an admin
    who joined 300 days ago and never acted may have acted 100 days ago, unseen."""
    db = world_variant(tmp_path, """
        delete from intercom.activity_logs where created_at < now() - interval 10 day;
        insert into intercom.admins (region, workspace_id, id, name, email, team_ids, primary_team_ids,
            secondary_team_ids, _dlt_valid_from) values
            ('us', 'us01', '11', 'Quiet Quinn', 'quinn@acme.test', '[]', '[]', '[]', now() - interval 300 day)""")
    held_from = rows(db, "select min(created_at) as first from intercom.activity_logs where region = 'us'")[0]["first"]
    stale_days = 90
    assert held_from > NOW - timedelta(days=stale_days)  # the logs held cannot show 90 days of absence
    quinn = rows(db, "select staleness, findings from evidence.evidence_admin_access_review where admin_id = '11'")
    assert quinn[0]["staleness"] == "unknown"
    assert not any(f.startswith("stale:") for f in quinn[0]["findings"])
