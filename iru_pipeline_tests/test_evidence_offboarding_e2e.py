"""End to end, over two runs: the terminated admin of the fake's scenario (scenario.py, items 4
and 12) still holds access at the first run, is removed in Intercom, and the second run's
offboarding evidence shows the removal, timed by the `admin_deletion` activity-log entry the
fake logs, and judged against the offboarding SLA (offboarding_check.sql)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline.demo import write_demo_evidence_inputs
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.fake_intercom import scenario as sc
from iru_pipeline_tests.helpers import pipeline_env, run_with_env


def query(db: Path, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def latest(db: Path, table: str) -> dict[str, dict[str, Any]]:
    return {r["region"]: r for r in query(db, f"select * from evidence.latest_evidence_{table}")}


def t02(db: Path) -> dict[str, dict[str, Any]]:
    return {r["region"]: r for r in query(
        db, "select * from evidence.latest_evidence_control_tests where test_id = 'T02'")}


def test_removing_the_terminated_admin_shows_in_the_offboarding_evidence(tmp_path: Path) -> None:
    with FakeIntercom(seed=11, contacts=300, conversations=200) as fake:
        ws = fake.workspace(sc.SCENARIO_REGION)
        facts = ws.scenario
        assert facts is not None
        env = pipeline_env(fake, tmp_path)
        env["IRU_EVIDENCE_CONFIG"] = str(write_demo_evidence_inputs(fake, tmp_path / "inputs"))

        settings, first = run_with_env(env)
        assert not first.failed, [o.error for o in first.outcomes]
        db = settings.duckdb_path
        before = latest(db, "offboarding_check")
        us = before["us"]
        assert (us["hr_email"], us["account_active_now"], us["admin_ids"]) == (
            facts.terminated_admin_email, True, [facts.terminated_admin_id])
        assert (us["status"], us["removal_detected_at"], us["removal_source"], us["removal_lag_hours"]) == (
            "fail", None, None, None)
        assert any(f.startswith("still has access ") for f in us["findings"])
        for region in ("eu", "au"):  # every workspace is checked: "no account here" is evidence too
            assert (before[region]["account_found"], before[region]["status"]) == (False, "not_applicable")
        assert t02(db)["us"]["status"] == "fail"

        # Offboarding, done late: the owner removes the admin now (the fake's clock is the real
        # one here, so "now" is inside the next run's activity-log window; moving the fake's
        # clock ahead would put the event after the run's upper bound).
        log_id = ws.remove_admin(facts.terminated_admin_id)
        deletion = next(e for e in ws.activity_logs(created_at_after=facts.now) if e["id"] == log_id)
        removed_at = deletion["created_at"]

        settings, second = run_with_env(env)
        assert not second.failed, [o.error for o in second.outcomes]

    after = latest(db, "offboarding_check")
    us = after["us"]
    assert us["run_id"] != before["us"]["run_id"]
    assert (us["account_found"], us["account_active_now"], us["admin_ids"]) == (True, False, [facts.terminated_admin_id])
    # The removal time is the admin_deletion entry's (exact), not the snapshot's upper bound.
    assert us["removal_source"] == "activity_log"
    assert us["removal_detected_at"] == datetime.fromtimestamp(removed_at, UTC)
    lag = round((removed_at - facts.terminated_at) / 3600, 2)
    assert us["removal_lag_hours"] == lag
    assert lag > us["sla_hours"] == 24  # removed ~45 days after termination
    assert us["last_present_at"] is not None and us["last_present_at"] <= us["removal_detected_at"]
    history = query(db, "select _dlt_valid_to from intercom.admins where region = 'us' and id = ?",
                    [facts.terminated_admin_id])
    assert len(history) == 1 and history[0]["_dlt_valid_to"] is not None  # the scd2 snapshot agrees: gone
    assert history[0]["_dlt_valid_to"] >= us["removal_detected_at"]

    # SLA rules: fail on activity after termination or removal past the SLA; pass only when
    # removed in time with no such activity. Both failures hold; "still has access" is gone.
    assert us["activity_after_termination"] >= 1
    expected = "fail" if us["activity_after_termination"] > 0 or lag > us["sla_hours"] else "pass"
    assert us["status"] == expected == "fail"
    assert f"removed {lag} hours after termination" in us["findings"]
    assert not any(f.startswith("still has access") for f in us["findings"])
    assert {r: (after[r]["account_found"], after[r]["status"]) for r in ("eu", "au")} == {
        "eu": (False, "not_applicable"), "au": (False, "not_applicable")}

    tests = t02(db)
    assert (tests["us"]["status"], tests["us"]["failing"], tests["us"]["failing_items"]) == (
        "fail", 1, [facts.terminated_admin_email])
    # no leaver ever held an account in EU or AU: nothing to evaluate there, which is not a pass
    assert (tests["eu"]["status"], tests["au"]["status"]) == ("not_applicable", "not_applicable")

    # The removal is on the access trail too: a deprovisioning by the owner, nothing to review.
    (event,) = query(db, "select * from evidence.latest_evidence_access_change_events where event_id = ?", [log_id])
    assert (event["change_category"], event["actor_admin_id"], event["status"]) == (
        "deprovision", sc.WORKSPACE_OWNER.id, "pass")
    assert event["created_at"] == datetime.fromtimestamp(removed_at, UTC)
