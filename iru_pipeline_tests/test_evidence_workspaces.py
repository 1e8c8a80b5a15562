"""The workspace, not the region, is the unit of evidence (docs/evidence.md#how-a-table-is-derived).

The hand-made world (data/evidence/world.sql) gets two more US workspaces next to us01:
`brand-b` (Intercom id us02), whose admins, events, conversations and contacts reuse us01's
ids for other people and other records, and `brand-c`, whose only run was refused at /me (no
workspace id ever known). Each workspace's evidence must come from its own rows only: us01's
results are exactly those of the world without the other two, us02's are worked out below from
the rows this file adds, and brand-c shows as not collected instead of vanishing."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline_tests.helpers import build_world_db, derive_world, execute_utc, world_run, write_world_inputs
from iru_pipeline_tests.helpers import query_dicts as rows

NOW = datetime.now(UTC)
RESOURCES = ("workspaces", "admins", "teams", "team_memberships", "tags", "data_attributes", "contacts",
             "conversations", "deleted_conversations", "activity_logs")

# us02 ("brand-b"), region us. Ids overlap with us01 on purpose: admins 1, 2, 4 and 6, events
# ev-owner-login, ev-sam-login, ev-support-1 and ev-failure-0..5, conversation c1, contact u1.
#   admins  1 owner@acme.test (in HR), 2 bob@acme.test and 4 hank@acme.test (not in HR), all
#           logged in with SSO one or two days ago from one IP each: active, not shared;
#           6 val@partner.test (not in HR; the world's exception for admin 6 names us01 only)
#   events  val's 6 login failures in 25 minutes 3 days ago, from one IP: a login-failure burst
#           (R1) whose finding id equals us01's own burst by admin 6 starting at ev-failure-0
#   conversation c1: DSAR, answered and closed after one day, 20 days ago (T14 pass)
#   contact u1: a user seen 3 days ago
#   sync: everything collected except data_attributes, whose only attempt failed (T13 not_collected)
# brand-c, region us: its one run failed at GET /me with a 401, so no workspace id is known.
SECOND_AND_THIRD_US_WORKSPACES = """
set TimeZone = 'UTC';
insert into intercom.workspaces values
    ('us', 'us02', 'us02', 'Acme Brand B', 'US', 'UTC', true, true, now() - interval 400 day, 'api.intercom.io',
     '2.16', '1', now() - interval 300 day, null, 'l1', 'wb');
insert into intercom.admins (region, workspace_id, id, name, email, job_title, has_inbox_seat, team_ids, role_id,
                             role_name, _dlt_valid_from, _dlt_valid_to) values
    ('us', 'us02', '1', 'Owner One', 'owner@acme.test', 'Head of Support', true, '[]', '1001', 'Owner',
     now() - interval 300 day, null),
    ('us', 'us02', '2', 'Bob Brand', 'bob@acme.test', 'Support', true, '[]', '1003', 'Support agent',
     now() - interval 300 day, null),
    ('us', 'us02', '4', 'Hank Hill', 'hank@acme.test', 'Support', true, '[]', '1003', 'Support agent',
     now() - interval 300 day, null),
    ('us', 'us02', '6', 'Vendor Val', 'val@partner.test', 'Contractor', true, '[]', '1003', 'Support agent',
     now() - interval 300 day, null);
insert into intercom.activity_logs values
    ('us', 'us02', 'ev-owner-login', now() - interval 1 day, 'admin_login_success', 'admin', '1', 'owner@acme.test',
     '10.2.0.1', 'Owner One logged in.', '{"sign_in_method":"saml_sso"}'),
    ('us', 'us02', 'ev-sam-login', now() - interval 1 day, 'admin_login_success', 'admin', '2', 'bob@acme.test',
     '10.2.0.2', 'Bob logged in.', '{"sign_in_method":"saml_sso"}'),
    ('us', 'us02', 'ev-support-1', now() - interval 2 day, 'admin_login_success', 'admin', '4', 'hank@acme.test',
     '10.2.0.4', 'Hank logged in.', '{"sign_in_method":"saml_sso"}');
insert into intercom.activity_logs
select 'us', 'us02', 'ev-failure-' || k, now() - interval 3 day + to_minutes(5 * k), 'admin_login_failure', 'admin',
       '6', 'val@partner.test', '198.51.100.9', 'Val failed to log in.', '{"sign_in_method":"email_password"}'
from range(6) r(k);
insert into intercom.conversations (region, workspace_id, id, created_at, updated_at, state, open, team_assignee_id,
    tag_names, source_author_type, custom_attribute_keys, time_to_admin_reply, time_to_first_close,
    first_admin_reply_at, first_close_at, last_close_at) values
    ('us', 'us02', 'c1', now() - interval 20 day, now() - interval 19 day, 'closed', false, null, '["dsar"]', 'user',
     '[]', 86400, 86400, now() - interval 19 day, now() - interval 19 day, now() - interval 19 day);
insert into intercom.contacts (region, workspace_id, id, role, email_hmac, email_domain, has_email, is_internal_domain,
    has_name, country, tag_ids, company_ids, custom_attribute_keys, created_at, updated_at, signed_up_at, last_seen_at)
values ('us', 'us02', 'u1', 'user', 'hb1', 'bigcorp.test', true, false, true, 'Canada', '[]', '[]', '[]',
        now() - interval 30 day, now() - interval 3 day, now() - interval 30 day, now() - interval 3 day);
insert into intercom.sync_results by name
select 'ing-b-1' as run_id, 'us' as region, resource,
       case when resource = 'data_attributes' then 'failed' else 'ok' end as status,
       case when resource = 'data_attributes' then 'HTTP 500 from Intercom' end as reason,
       1 as rows_loaded, 0 as unchanged_rows_skipped, 0 as rows_deleted, 1 as pages,
       case when resource = 'activity_logs' then strftime(now() - interval 1095 day, '%Y-%m-%dT%H:%M:%S+00:00') end
           as window_start,
       case when resource = 'activity_logs' then strftime(now() - interval 2 hour, '%Y-%m-%dT%H:%M:%S+00:00') end
           as window_end,
       'api.intercom.io' as api_host, '2.16' as api_version, 1 as api_calls, 0 as api_retries, 0 as api_429s,
       0 as api_5xx, case when resource = 'data_attributes' then 'server_error' end as error_code,
       case when resource = 'data_attributes' then 500 end as http_status, []::varchar[] as fields_dropped,
       now() - interval 2 hour as started_at, now() - interval 1 hour as finished_at,
       'brand-b' as workspace, 'us02' as workspace_id
from unnest(['workspaces', 'admins', 'teams', 'team_memberships', 'tags', 'data_attributes', 'contacts',
             'conversations', 'deleted_conversations', 'activity_logs']) u(resource);
insert into intercom.collection_proofs values
    ('ing-b-1', 'us', 'GET /me', 'workspaces', now() - interval 2 hour, 'https://api.intercom.io', 200, 'rid-b-me',
     repeat('e', 64), 300, 'brand-b', 'us02');
insert into intercom.sync_results by name
select 'ing-c-1' as run_id, 'us' as region, 'workspaces' as resource, 'failed' as status,
       'the token was refused' as reason, 'unauthorized' as error_code, 401 as http_status,
       now() - interval 2 hour as started_at, now() - interval 2 hour as finished_at,
       'brand-c' as workspace, null as workspace_id;
"""


def derive(folder: Path, with_more_workspaces: bool, reviews: str = "", world: Path | None = None,
           change: str = "") -> Path:
    """Derive run-1 on a copy of `world` (built here if not given), the two US workspaces added or
    not, then `change` (SQL on the raw tables) applied."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "iru.duckdb"
    shutil.copyfile(world or build_world_db(folder / "world.duckdb"), db)
    for sql in (SECOND_AND_THIRD_US_WORKSPACES if with_more_workspaces else "", change):
        if sql:
            execute_utc(db, sql)
    derive_world(db, world_run(write_world_inputs(folder / "in", NOW, reviews=reviews), "run-1", NOW))
    return db


def of_workspace(db: Path, table: str, workspace_id: str | None, region: str = "us",
                 drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A table's rows of one workspace, without the columns that name the run."""
    found = rows(db, f"select * exclude (run_id, as_of) from evidence.{table} "
                     "where workspace_id is not distinct from ? and region = ?", [workspace_id, region])
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in found), key=repr)


def controls_of(db: Path, workspace_id: str | None) -> dict[str, dict[str, Any]]:
    return {r["test_id"]: r for r in of_workspace(db, "evidence_control_tests", workspace_id)}


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ tests


def test_each_workspace_of_one_region_is_evaluated_on_its_own_rows(tmp_path: Path) -> None:
    world = build_world_db(tmp_path / "world.duckdb")  # one build: both copies hold the same us01 and eu01 rows
    alone = derive(tmp_path / "alone", with_more_workspaces=False, world=world)
    db = derive(tmp_path / "three", with_more_workspaces=True, world=world)

    # us01 and eu01: exactly what the world gives without the two other US workspaces (every
    # evidence table derived from raw data; the collection-run row differs only by its hashes)
    for table in ("evidence_collection_stream", "evidence_collection_proof", "evidence_admin_access_review",
                  "evidence_offboarding_check", "evidence_access_change_events",
                  "evidence_workspace_security_config", "evidence_high_risk_activity", "evidence_data_retention",
                  "evidence_personal_data_inventory", "evidence_support_request_sla", "evidence_findings",
                  "evidence_control_tests", "evidence_control_test_history"):
        for workspace_id, region in (("us01", "us"), ("eu01", "eu")):
            assert of_workspace(db, table, workspace_id, region) == of_workspace(alone, table, workspace_id, region), \
                (table, workspace_id)
    # us01's admin 2 (sam, last login 140 days ago) stays stale although us02's admin 2 logged in yesterday
    sam = rows(db, "select * from evidence.evidence_admin_access_review where workspace_id = 'us01' and admin_id = '2'")
    assert [(r["admin_email"], r["staleness"]) for r in sam] == [("sam@acme.test", "stale")]

    # us02, from the rows added above
    admins = {r["admin_id"]: r for r in of_workspace(db, "evidence_admin_access_review", "us02")}
    assert {k: (a["admin_email"], a["identity_status"], a["staleness"], a["login_ips_30d"],
                a["shared_account_suspected"]) for k, a in admins.items()} == {
        "1": ("owner@acme.test", "matched", "active", 1, False),
        "2": ("bob@acme.test", "unmatched", "active", 1, False),
        "4": ("hank@acme.test", "unmatched", "active", 1, False),
        "6": ("val@partner.test", "unmatched", "active", 0, False),
    }
    assert {k: a["last_sign_in_method"] for k, a in admins.items()} == {**dict.fromkeys("124", "saml_sso"), "6": None}
    assert admins["6"]["exception_kinds"] == []
    stored = {r["stream"]: (r["status"], r["stored_rows"])
              for r in of_workspace(db, "evidence_collection_stream", "us02")}
    assert stored == {**{s: ("ok", 0) for s in RESOURCES}, "workspaces": ("ok", 1), "admins": ("ok", 4),
                      "contacts": ("ok", 1), "conversations": ("ok", 1), "activity_logs": ("ok", 9),
                      "data_attributes": ("failed", 0)}
    tests = controls_of(db, "us02")
    got = {t: (r["status"], r["population"], r["failing"], r["to_review"]) for t, r in tests.items()}
    assert got["T01"] == ("fail", 4, 3, 0)
    assert tests["T01"]["failing_items"] == ["bob@acme.test", "hank@acme.test", "val@partner.test"]
    assert got["T03"] == ("pass", 4, 0, 0)
    assert got["T05"] == ("pass", 4, 0, 0)
    # no leaver held an account in us02 (tom, gary and lisa were us01's admins)
    assert got["T02"][:2] == ("not_applicable", 0)
    assert {r["account_found"] for r in of_workspace(db, "evidence_offboarding_check", "us02")} == {False}
    # val's burst: one high-risk finding, new in this run, so to review (not yet past review_due_days)
    burst = of_workspace(db, "evidence_high_risk_activity", "us02")
    assert [(r["rule_id"], r["event_count"], r["actor_email"], r["status"]) for r in burst] == [
        ("R1", 6, "val@partner.test", "review")]
    assert burst[0]["finding_id"] == sha16("R1|us|6|ev-failure-0")
    us01_bursts = [r for r in of_workspace(db, "evidence_high_risk_activity", "us01") if r["rule_id"] == "R1"]
    assert [(r["finding_id"], r["actor_email"]) for r in us01_bursts] == [(burst[0]["finding_id"], "val@partner.test")]
    assert got["T11"] == ("review", 1, 0, 1)
    assert got["T12"] == ("pass", 2, 0, 0)  # c1 and u1, both recent
    assert got["T14"] == ("pass", 1, 0, 0)  # c1 answered after one day, within dsar_sla_days
    # its failed data_attributes marks its own T13 not collected, not us01's (which fails on passport_number)
    assert got["T13"][0] == "not_collected"
    assert "not collected: data_attributes (server_error)" in tests["T13"]["findings"]
    assert controls_of(db, "us01")["T13"]["status"] == "fail"
    assert got["T15"] == ("fail", 10, 1, 0)
    assert tests["T15"]["failing_items"] == ["data_attributes: failed (server_error)"]
    sla = of_workspace(db, "evidence_support_request_sla", "us02")
    assert [(r["request_class"], r["conversations"], r["late_or_unanswered"]) for r in sla] == [("all", 1, 0),
                                                                                                 ("dsar", 1, 0)]
    retention = {r["object_type"]: (r["population"], r["over_retention"]) for r in of_workspace(
        db, "evidence_data_retention", "us02")}
    assert retention == {"conversation": (1, 0), "contact_user": (1, 0)}
    # findings: us02's failing admins, under ids that us01 may share (admin 4 fails T01 in both)
    findings = {(r["workspace_id"], r["subject"]): r["finding_id"] for r in rows(
        db, "select * from evidence.evidence_findings where test_id = 'T01' and region = 'us'")}
    assert findings[("us02", "2")] == sha16("T01|us|2") and findings[("us02", "4")] == sha16("T01|us|4")
    assert findings[("us01", "4")] == sha16("T01|us|4")
    assert ("us01", "2") not in findings  # sam is in HR: us01 fails him on T03, not T01

    # brand-c, never reached: kept, keyed by its name, every stream not collected
    streams = of_workspace(db, "evidence_collection_stream", None)
    assert {r["stream"]: (r["status"], r["error_code"]) for r in streams} == {
        **{s: ("not_run", None) for s in RESOURCES}, "workspaces": ("failed", "unauthorized")}
    never = controls_of(db, None)
    needing_streams = {"T01", "T02", "T03", "T04", "T05", "T06", "T08", "T09", "T10", "T11", "T12", "T13", "T14"}
    assert {t for t, r in never.items() if r["status"] == "not_collected"} == needing_streams
    assert never["T15"]["status"] == "fail" and never["T15"]["failing"] == 10
    run = {r["workspace_id"]: r for r in rows(db, "select * from evidence.evidence_collection_run where region = 'us'")}
    assert set(run) == {"us01", "us02", None}
    assert (run[None]["status"], run[None]["workspace_name"], run[None]["streams_ok"]) == ("failed", "brand-c", 0)
    assert (run["us02"]["status"], run["us02"]["workspace_name"], run["us02"]["streams_not_ok"]) == (
        "partial", "Acme Brand B", 1)


def test_a_review_scoped_to_one_workspace_resolves_its_finding_only(tmp_path: Path) -> None:
    # admin 4 fails T01 in us01 (support@) and in us02 (hank@): one finding id, two findings
    shared_id = sha16("T01|us|4")
    db = derive(tmp_path, with_more_workspaces=True,
                reviews=f"{shared_id},accepted,owner@acme.test,{NOW.date().isoformat()}T00:00:00Z,,us02\n")
    found = {r["workspace_id"]: (r["status"], r["resolution"]) for r in rows(
        db, "select * from evidence.evidence_findings where finding_id = ?", [shared_id])}
    assert found == {"us01": ("fail", None), "us02": ("pass", "reviewed")}


def test_the_report_and_summary_name_each_workspace_by_name_and_id(tmp_path: Path) -> None:
    from iru_pipeline.evidence.report import report_context
    from iru_pipeline.export import export_run

    db = derive(tmp_path, with_more_workspaces=True)
    con = duckdb.connect(str(db))
    try:
        context = report_context(con, "run-1")
        folder = export_run(con, "run-1", tmp_path / "out").folder
    finally:
        con.close()
    # the run rows' order: region, then workspace id (a workspace never reached first)
    labels = ["Acme (EU) · eu01 · eu", "brand-c · no workspace id yet · us", "Acme (US) · us01 · us",
              "Acme Brand B · us02 · us"]
    assert context["workspaces"] == labels
    t13 = next(row for row in context["grid"] if row["test"].test_id == "T13")
    assert [c["status"] for c in t13["cells"]] == ["not_applicable", "not_collected", "fail", "not_collected"]
    summary = (folder / "summary.md").read_text()
    assert f"| test | control | {' | '.join(labels)} | SOC 2 | ISO 27001 | GDPR |" in summary
    assert "| Acme Brand B | us02 | us | US |" in summary and "| brand-c |  | us |" in summary


def test_history_days_are_counted_per_workspace(tmp_path: Path) -> None:
    """us02 and brand-c appear two days after us01: their history starts on their own first day,
    in the run's table and in a period export alike, and no workspace takes another's status."""
    from iru_pipeline.evidence.period import Period, period_history

    day_2, day_0 = NOW - timedelta(days=2), NOW
    db = build_world_db(tmp_path / "iru.duckdb")
    files = write_world_inputs(tmp_path / "in", NOW)
    derive_world(db, world_run(files, "run-1", day_2))  # us01 and eu01 only
    con = duckdb.connect(str(db))
    try:
        con.execute(SECOND_AND_THIRD_US_WORKSPACES)
    finally:
        con.close()
    derive_world(db, world_run(files, "run-2", day_0))
    days = [day_2.date() + timedelta(days=k) for k in range(3)]
    expected_runs = {"us01": ["run-1", None, "run-2"], "us02": ["run-2"], None: ["run-2"]}

    history = rows(db, "select * from evidence.evidence_control_test_history where run_id = 'run-2' "
                       "and test_id = 'T13' and region = 'us'")
    by_workspace: dict[str | None, list[tuple]] = {}
    for r in sorted(history, key=lambda r: r["day"]):
        by_workspace.setdefault(r["workspace_id"], []).append((r["day"], r["day_run_id"], r["status"]))
    # T13: us01 fails on passport_number both days; us02 (data_attributes failed) and brand-c are not collected
    assert by_workspace == {
        "us01": [(days[0], "run-1", "fail"), (days[1], None, "no_run"), (days[2], "run-2", "fail")],
        "us02": [(days[2], "run-2", "not_collected")],
        None: [(days[2], "run-2", "not_collected")],
    }

    con = duckdb.connect(str(db))
    try:
        period = period_history(con, Period(days[0], days[2]))
    finally:
        con.close()
    got: dict[str | None, list[Any]] = {}
    for r in (dict(zip(period.columns, row, strict=True)) for row in period.rows):
        if r["test_id"] == "T13" and r["region"] == "us":
            got.setdefault(r["workspace_id"], []).append(r["day_run_id"])
    assert got == expected_runs


def test_a_run_stopped_before_me_counts_for_the_workspace_its_name_is_bound_to(tmp_path: Path) -> None:
    # brand-b (bound to us02 by its first run) tries again; /me answers 500, so no id is recorded
    db = derive(tmp_path, with_more_workspaces=True, change="""
        insert into intercom.sync_results (run_id, region, resource, status, reason, error_code, http_status,
                                           started_at, finished_at, workspace, workspace_id)
        values ('ing-b-2', 'us', 'workspaces', 'failed', 'HTTP 500 from Intercom', 'server_error', 500,
                now() - interval 30 minute, now() - interval 30 minute, 'brand-b', null)""")
    run = rows(db, "select workspace_id from evidence.evidence_collection_run where region = 'us'")
    assert sorted(r["workspace_id"] or "" for r in run) == ["", "us01", "us02"]  # no workspace made up
    me = {r["workspace_id"]: (r["status"], r["ingestion_run_id"]) for r in rows(
        db, "select * from evidence.evidence_collection_stream where stream = 'workspaces' and region = 'us'")}
    assert me == {"us01": ("ok", "ing-us-1"), "us02": ("failed", "ing-b-2"), None: ("failed", "ing-c-1")}
    # us02's settings come from its earlier collection: evaluated, but on older data
    t08 = controls_of(db, "us02")["T08"]
    assert t08["status"] == "review"
    assert "evaluated on older data: the latest collection of workspaces failed" in t08["findings"]
    assert controls_of(db, "us01")["T08"]["status"] == "pass"


def test_rows_recorded_before_workspaces_belong_to_their_regions_only_workspace(tmp_path: Path) -> None:
    world = build_world_db(tmp_path / "world.duckdb")
    named = derive(tmp_path / "named", with_more_workspaces=False, world=world)
    unnamed = derive(tmp_path / "unnamed", with_more_workspaces=False, world=world, change="""
        update intercom.sync_results set workspace = null, workspace_id = null;
        update intercom.collection_proofs set workspace = null, workspace_id = null""")
    for table in ("evidence_collection_stream", "evidence_collection_proof", "evidence_admin_access_review",
                  "evidence_data_retention", "evidence_control_tests"):
        for workspace_id, region in (("us01", "us"), ("eu01", "eu")):
            assert of_workspace(unnamed, table, workspace_id, region) == \
                of_workspace(named, table, workspace_id, region), (table, workspace_id)
    assert rows(unnamed, "select count(*) as n from evidence.evidence_collection_run where workspace_id is null") == [
        {"n": 0}]
