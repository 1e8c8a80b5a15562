"""Every evidence table and control test over the hand-made world (data/evidence/world.sql),
derived with the same SQL files the Dagster assets run, on a real DuckDB file."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from iru_pipeline.evidence.manifest import verify_chain
from iru_pipeline.evidence.session import EvidenceRun
from iru_pipeline_tests.helpers import (
    WorldFiles,
    build_world_db,
    derive_world,
    finding_id,
    world_run,
    write_world_inputs,
)
from iru_pipeline_tests.helpers import query_dicts as rows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldFiles, EvidenceRun]:
    folder = tmp_path_factory.mktemp("world")
    db = build_world_db(folder / "iru.duckdb")
    files = write_world_inputs(folder / "inputs")
    run = world_run(files)
    derive_world(db, run)
    return db, files, run


def by(db: Path, table: str, key: str, where: str = "true") -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows(db, f"select * from evidence.{table} where {where}")}


def test_access_review_judges_every_current_admin(world) -> None:
    db, _, run = world
    us = by(db, "evidence_admin_access_review", "admin_id", "region = 'us'")
    assert sorted(us) == ["1", "2", "3", "4", "5", "6"], "removed admins 7 and 8 are not current"
    expect = {  # admin: (status, identity_status, staleness, shared)
        "1": ("review", "matched", "active", False),              # privileged Owner
        "2": ("fail", "matched", "stale", False),                # last login 140 days ago
        "3": ("review", "matched", "unused", False),             # invited 10 days ago, never active
        "4": ("fail", "unmatched", "active", True),              # support@, not in HR, 4 login IPs
        "5": ("fail", "terminated", "active", False),            # terminated in HR, logged in after
        "6": ("pass", "approved_exception", "active", False),    # external vendor with an exception
    }
    got = {a: (r["status"], r["identity_status"], r["staleness"], r["shared_account_suspected"]) for a, r in us.items()}
    assert got == expect
    owner, sam, nina, support = us["1"], us["2"], us["3"], us["4"]
    assert owner["team_names"] == ["Security", "Support"] and owner["is_privileged"] and owner["role_name"] == "Owner"
    assert owner["last_sign_in_method"] == "saml_sso" and owner["hr_person_id"] == "P1"
    assert sam["days_inactive"] == 140 and sam["last_sign_in_method"] == "email_password"
    assert nina["invited_at"] is not None and nina["first_seen_at"] == nina["invited_at"]
    assert nina["last_login_at"] is None and nina["days_inactive"] == 10
    assert support["login_ips_30d"] == 4 and "looks shared: generic address" in support["findings"]
    assert us["6"]["domain_class"] == "external" and us["6"]["exception_kinds"] == ["external"]
    assert {r["run_id"] for r in us.values()} == {run.run_id}
    eu = by(db, "evidence_admin_access_review", "admin_id", "region = 'eu'")
    assert eu["e2"]["identity_status"] == "unmatched"
    assert {r["staleness"] for r in eu.values()} == {"unknown"}, "EU activity logs were not collected"


def test_offboarding_checks_every_terminated_person_in_every_workspace(world) -> None:
    db, _, _ = world
    us = by(db, "evidence_offboarding_check", "hr_email", "region = 'us'")
    assert sorted(us) == ["gary@acme.test", "lisa@acme.test", "never@acme.test", "tom@acme.test"]
    tom, gary, lisa, never = us["tom@acme.test"], us["gary@acme.test"], us["lisa@acme.test"], us["never@acme.test"]
    assert (tom["status"], tom["account_active_now"], tom["activity_after_termination"]) == ("fail", True, 2)
    assert tom["activity_types_after_termination"] == ["admin_login_success", "role_change"]
    assert (gary["status"], gary["removal_source"], gary["removal_lag_hours"]) == ("pass", "activity_log", 12.0)
    assert (lisa["status"], lisa["removal_source"]) == ("fail", "snapshot")
    assert lisa["removal_lag_hours"] == pytest.approx(240.0, abs=0.1)
    assert (never["status"], never["account_found"]) == ("not_applicable", False)
    eu = by(db, "evidence_offboarding_check", "hr_email", "region = 'eu'")
    assert sorted(eu) == sorted(us) and {r["account_found"] for r in eu.values()} == {False}


def test_access_changes_record_who_changed_access_and_whether_allowed(world) -> None:
    db, _, _ = world
    events = by(db, "evidence_access_change_events", "event_id")
    assert sorted(events) == ["ev-consent", "ev-gary-deleted", "ev-nina-invite", "ev-owner-2fa-off",
                              "ev-owner-permission", "ev-tom-role-change", "ev-tom-seat-before",
                              "ev-val-permission"]
    assert (events["ev-tom-role-change"]["status"], events["ev-tom-role-change"]["actor_hr_status_at_event"]) == (
        "fail", "terminated")
    before = events["ev-tom-seat-before"]  # the same person, before the termination: employed then
    assert (before["status"], before["actor_hr_status_at_event"]) == ("review", "active")
    assert events["ev-val-permission"]["status"] == "review"
    assert not events["ev-val-permission"]["actor_is_authorised"]
    assert events["ev-owner-permission"]["status"] == "pass"
    assert events["ev-owner-permission"]["authorisation_basis"] == "privileged_role"
    assert events["ev-gary-deleted"]["change_category"] == "deprovision"


def test_security_config_per_workspace(world) -> None:
    db, _, _ = world
    cfg = {(r["region"], r["setting_key"]): r for r in rows(db, "select * from evidence.evidence_workspace_security_config")}
    assert cfg[("eu", "identity_verification")]["status"] == "fail"
    assert cfg[("us", "identity_verification")]["status"] == "pass"
    assert cfg[("us", "api_host_region_consistent")]["status"] == "pass"
    assert cfg[("us", "mfa_enforcement")]["status"] == "manual"
    assert (cfg[("us", "authentication_method_changes")]["status"],
            cfg[("us", "authentication_method_changes")]["last_changed_by"]) == ("review", "val@partner.test")
    assert cfg[("us", "two_factor_changes")]["status"] == "review"
    assert cfg[("us", "sso_login_share_pct")]["observed_value"] == "33.3"  # 3 of 9 logins used SSO
    assert cfg[("us", "vendor_impersonation_sessions")]["observed_value"] == "2"


def test_high_risk_rules_find_exactly_the_planted_events(world) -> None:
    db, _, _ = world
    found = {(r["rule_id"], tuple(r["event_ids"])): r for r in rows(db, "select * from evidence.evidence_high_risk_activity")}
    failures = tuple(f"ev-failure-{k}" for k in range(6))
    assert set(found) == {
        ("R1", failures),
        ("R3", ("ev-night-export",)),
        ("R3", ("ev-day-export",)),
        ("R4", ("ev-message-deletion",)),
        ("R5", ("ev-val-authn",)),
        ("R7", ("ev-tom-login-after", "ev-tom-role-change")),
        ("R7", ("ev-unknown-actor",)),
        ("R8", ("ev-impersonation-no-consent",)),
    }
    night = found[("R3", ("ev-night-export",))]
    assert (night["severity"], night["outside_business_hours"]) == ("high", True)
    assert " 03:00 (" in night["first_event_local_time"], "03:00 in the workspace's time zone"
    assert found[("R3", ("ev-day-export",))]["severity"] == "medium"
    tom = found[("R7", ("ev-tom-login-after", "ev-tom-role-change"))]
    assert (tom["severity"], tom["actor_hr_status"], tom["rule_name"]) == ("critical", "terminated",
                                                                           "activity by a terminated person")
    burst = found[("R1", failures)]
    assert burst["finding_id"] == finding_id("R1", "us", "6", "ev-failure-0")
    assert burst["actor_ip"] == "185.220.101.47" and burst["event_count"] == 6
    assert {r["status"] for r in found.values()} == {"review"}, "first detection: open, due in review_due_days"


def test_retention_counts_records_past_their_period(world) -> None:
    db, _, _ = world
    ret = {(r["region"], r["object_type"]): r for r in rows(db, "select * from evidence.evidence_data_retention")}
    conv = ret[("us", "conversation")]
    assert (conv["population"], conv["over_retention"], conv["oldest_over_retention_ids"]) == (5, 1, ["c1"])
    assert conv["deleted_in_period"] == 1 and conv["status"] == "fail"
    assert (ret[("us", "contact_user")]["over_retention"], ret[("us", "contact_lead")]["over_retention"]) == (1, 1)
    assert ret[("us", "contact_lead")]["retention_days"] == 365
    assert ret[("eu", "conversation")]["status"] == ret[("eu", "contact_user")]["status"] == "pass"


def test_inventory_is_aggregate_and_flags_sensitive_attributes(world) -> None:
    db, _, _ = world
    inv = {(r["region"], r["object_type"], r["dimension"], r["dimension_value"]): r
           for r in rows(db, "select * from evidence.evidence_personal_data_inventory")}
    passport = inv[("us", "contact_user", "custom_attribute", "passport_number")]
    assert (passport["status"], passport["sensitive_suspected"], passport["count"]) == ("fail", True, 1)
    assert inv[("us", "contact_user", "custom_attribute", "plan")]["status"] == "pass"
    assert inv[("us", "contact_user", "custom_attribute", "shoe_size")]["count"] == 0  # defined, no values yet
    assert inv[("us", "conversation", "custom_attribute", "Issue type")]["approved"] is True
    rare = inv[("us", "contact_user", "email_domain", "(rare)")]
    assert rare["suppressed"] and rare["count"] == 1 and ("us", "contact_user", "email_domain", "tiny.test") not in inv
    assert inv[("us", "contact_user", "email_domain", "bigcorp.test")]["count"] == 5
    assert inv[("us", "contact_user", "email_domain_class", "freemail")]["count"] == 3
    assert inv[("us", "contact_user", "attribute", "email")]["count"] == 10
    # contacts only as aggregates: no contact pseudonym reaches any evidence table
    pseudonyms = [hashlib.md5(f"u{i}".encode()).hexdigest() for i in range(1, 11)]
    con = duckdb.connect(str(db), read_only=True)
    for (table,) in con.execute("select table_name from information_schema.tables where table_schema = 'evidence' "
                                "and table_type = 'BASE TABLE'").fetchall():
        text = str(con.execute(f"select * from evidence.{table}").fetchall())
        assert not any(p in text for p in pseudonyms), table


def test_sla_flags_the_late_dsar_only(world) -> None:
    db, _, _ = world
    sla = {(r["region"], r["request_class"]): r for r in rows(
        db, "select * from evidence.evidence_support_request_sla where request_class <> 'all'")}
    assert set(sla) == {("us", "dsar"), ("us", "security"), ("eu", "dsar")}
    assert (sla[("us", "dsar")]["status"], sla[("us", "dsar")]["late_conversation_ids"]) == ("fail", ["c3"])
    assert sla[("eu", "dsar")]["status"] == "pass", "tags compare case-insensitively"
    assert sla[("us", "security")]["status"] == "pass"


EXPECTED_TESTS = {
    # T04: the privileged owner has no 'privileged' exception (review, nothing over the limit);
    # T10: the US logs held start 140 days into a 365-day period (gaps over 168 hours: review);
    # T11: every finding is open on its first detection (review)
    "us": {"T01": "fail", "T02": "fail", "T03": "fail", "T04": "review", "T05": "fail", "T06": "fail",
           "T07": "manual", "T08": "pass", "T09": "pass", "T10": "review", "T11": "review", "T12": "fail",
           "T13": "fail", "T14": "fail", "T15": "pass"},
    # T13: the EU workspace defines no custom attribute, so there is nothing to approve
    "eu": {"T01": "fail", "T02": "not_collected", "T03": "not_collected", "T04": "review",
           "T05": "not_collected", "T06": "not_collected", "T07": "manual", "T08": "fail", "T09": "pass",
           "T10": "not_collected", "T11": "not_collected", "T12": "pass", "T13": "not_applicable", "T14": "pass",
           "T15": "fail"},
}


def test_control_tests_equal_what_the_world_implies(world) -> None:
    db, _, _ = world
    got: dict[str, dict[str, str]] = {}
    for r in rows(db, "select region, test_id, status from evidence.evidence_control_tests"):
        got.setdefault(r["region"], {})[r["test_id"]] = r["status"]
    assert got == EXPECTED_TESTS
    t01 = by(db, "evidence_control_tests", "test_id", "region = 'us'")["T01"]
    assert (t01["population"], t01["failing"], t01["failing_items"]) == (6, 2, ["support@acme.test", "tom@acme.test"])
    assert t01["soc2"] == ["CC6.1", "CC6.2", "CC6.3"] and '"internal_domains":["acme.test"]' in t01["params_json"]
    t10 = by(db, "evidence_control_tests", "test_id", "region = 'eu'")["T10"]
    assert t10["findings"] == ["not collected: activity_logs (api_plan_restricted)"]


def test_collection_manifest_records_what_was_collected(world) -> None:
    db, files, run = world
    runs = by(db, "evidence_collection_run", "region")
    assert (runs["us"]["status"], runs["eu"]["status"]) == ("complete", "partial")
    assert runs["eu"]["missing_capabilities"] == ["activity_logs:api_plan_restricted"]
    assert runs["us"]["api_host"] == "api.intercom.io" and runs["us"]["api_version"] == "2.16"
    assert runs["us"]["params_sha256"] == run.params.sha256 and runs["us"]["previous_manifest_sha256"] is None
    inputs = {i["name"]: i for i in json.loads(runs["us"]["inputs_json"])}
    assert inputs["hr_roster"]["rows"] == 4 + 3 and inputs["hr_roster"]["file_name"] == "hr_roster.csv"
    streams = by(db, "evidence_collection_stream", "stream", "region = 'us'")
    assert streams["contacts"]["fields_dropped"] == ["name", "email"] and streams["contacts"]["api_429s"] == 1
    assert streams["activity_logs"]["coverage_gaps"] == 0 and streams["activity_logs"]["mode"] == "window"
    eu_logs = by(db, "evidence_collection_stream", "stream", "region = 'eu'")["activity_logs"]
    assert (eu_logs["status"], eu_logs["error_code"], eu_logs["http_status"]) == ("skipped", "api_plan_restricted", 403)


def test_reviews_close_findings_and_overdue_ones_fail(tmp_path: Path) -> None:
    db = build_world_db(tmp_path / "iru.duckdb")
    now = datetime.now(UTC)
    first = derive_world(db, world_run(write_world_inputs(tmp_path / "in1", now), "run-1", now))
    night = finding_id("R3", "us", "1", "ev-night-export")
    burst = finding_id("R1", "us", "6", "ev-failure-0")
    later = now + timedelta(days=8)  # past the 7-day review window of every finding first seen at `now`
    files = write_world_inputs(tmp_path / "in2", now, reviews=(
        f"{night},accepted,owner@acme.test,{later:%Y-%m-%d},quarterly export for finance\n"
        f"{burst},false_positive,owner@acme.test,{later:%Y-%m-%d},\n"
        "ev-val-permission,accepted,owner@acme.test,2026-01-02T10:00:00Z,approved by ticket\n"))
    second = derive_world(db, world_run(files, "run-2", later))
    hra = by(db, "evidence_high_risk_activity", "finding_id", "run_id = 'run-2'")
    assert (hra[night]["status"], hra[night]["decision"], hra[night]["note"]) == ("pass", "accepted",
                                                                                 "quarterly export for finance")
    assert hra[burst]["status"] == "pass"
    message_deletion = finding_id("R4", "us", "1", "ev-message-deletion")
    assert hra[message_deletion]["status"] == "fail", "high, unreviewed, first detected 8 days earlier"
    assert hra[message_deletion]["detected_at"] < hra[message_deletion]["as_of"] - timedelta(days=7)
    assert hra[finding_id("R8", "us", "1", "ev-impersonation-no-consent")]["status"] == "review", "medium stays open"
    assert by(db, "evidence_access_change_events", "event_id", "run_id = 'run-2'")["ev-val-permission"]["status"] == "pass"
    t11 = by(db, "evidence_control_tests", "test_id", "run_id = 'run-2' and region = 'us'")["T11"]
    assert t11["status"] == "fail" and night not in t11["failing_items"]
    # history is kept: both runs' rows are there, and the manifest of run 2 chains to run 1
    assert {r["run_id"] for r in rows(db, "select distinct run_id from evidence.evidence_high_risk_activity")} == {
        "run-1", "run-2"}
    chain = by(db, "evidence_collection_run", "run_id", "region = 'us'")
    assert chain["run-2"]["previous_manifest_sha256"] == first == chain["run-1"]["manifest_sha256"]
    assert chain["run-2"]["manifest_sha256"] == second
    assert rows(db, "select distinct run_id from evidence.latest_evidence_control_tests") == [{"run_id": "run-2"}]


def test_chain_verification_detects_an_edited_or_deleted_run(tmp_path: Path) -> None:
    db = build_world_db(tmp_path / "iru.duckdb")
    now = datetime.now(UTC)
    files = write_world_inputs(tmp_path / "in", now)
    for k in range(3):
        derive_world(db, world_run(files, f"run-{k}", now + timedelta(minutes=k)))
    con = duckdb.connect(str(db))
    assert verify_chain(con) == []
    con.execute("update evidence.evidence_admin_access_review set status = 'pass' "
                "where run_id = 'run-1' and admin_id = '5'")
    assert verify_chain(con) == ["run run-1: evidence rows changed after the run (manifest hash differs)"]
    con.execute("update evidence.evidence_admin_access_review set status = 'fail' "
                "where run_id = 'run-1' and admin_id = '5'")
    assert verify_chain(con) == []
    con.execute("delete from evidence.evidence_collection_run where run_id = 'run-1'")
    assert verify_chain(con) == ["run run-2: previous_manifest_sha256 does not match the run before it"]


def test_runs_deriving_evidence_out_of_start_order_chain_in_the_order_written(tmp_path: Path) -> None:
    """Two runs started close together may derive their evidence in either order: the later
    started run writes first, the chain still has no fork, and a run derived again keeps its
    place."""
    db = build_world_db(tmp_path / "iru.duckdb")
    now = datetime.now(UTC)
    files = write_world_inputs(tmp_path / "in", now)
    derive_world(db, world_run(files, "first", now))
    derive_world(db, world_run(files, "started-last", now + timedelta(minutes=2)))
    derive_world(db, world_run(files, "started-second", now + timedelta(minutes=1)))
    derive_world(db, world_run(files, "started-last", now + timedelta(minutes=2)))
    chain = rows(db, "select distinct run_id, chain_seq, previous_manifest_sha256 as previous, manifest_sha256 "
                     "from evidence.evidence_collection_run order by chain_seq")
    assert [(r["run_id"], r["chain_seq"]) for r in chain] == [("first", 1), ("started-last", 2), ("started-second", 3)]
    assert [r["previous"] for r in chain] == [None, chain[0]["manifest_sha256"], chain[1]["manifest_sha256"]]
    con = duckdb.connect(str(db))
    try:
        assert verify_chain(con) == []
    finally:
        con.close()


def test_rerunning_a_run_replaces_its_rows(tmp_path: Path) -> None:
    db = build_world_db(tmp_path / "iru.duckdb")
    files = write_world_inputs(tmp_path / "in")
    run = world_run(files)
    first = derive_world(db, run)
    counts = rows(db, "select count(*) as n from evidence.evidence_high_risk_activity")
    assert derive_world(db, run) == first
    assert rows(db, "select count(*) as n from evidence.evidence_high_risk_activity") == counts


def test_nothing_collected_yet_gives_empty_evidence_not_an_error(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    derive_world(db, world_run(write_world_inputs(tmp_path / "in")))
    assert rows(db, "select count(*) as n from evidence.evidence_control_tests") == [{"n": 0}]
    assert rows(db, "select count(*) as n from evidence.evidence_collection_run") == [{"n": 0}]


def test_without_roster_identity_tests_are_not_collected_never_pass(tmp_path: Path) -> None:
    db = build_world_db(tmp_path / "iru.duckdb")
    files = write_world_inputs(tmp_path / "in")
    files.config.write_text('internal_domains = ["acme.test"]\n', encoding="utf-8")
    derive_world(db, world_run(files))
    tests = by(db, "evidence_control_tests", "test_id", "region = 'us'")
    assert tests["T01"]["status"] == tests["T02"]["status"] == "not_collected"
    assert "input not configured: hr_roster (IRU_EVIDENCE_CONFIG [inputs])" in tests["T01"]["findings"]
    assert {r["identity_status"] for r in rows(db, "select identity_status from evidence.evidence_admin_access_review "
                                                   "where admin_id <> '6'")} == {"not_checked"}
