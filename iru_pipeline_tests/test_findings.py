"""Findings tracked across runs (evidence_findings) and the period export.

Hand-made runs of the evidence world spanning several days, the raw data changed between runs as
a collection would change it: a high-risk finding appears, is reviewed (an evidence_reviews row),
then disappears from the data; another disappears unreviewed; a failing admin is fixed by the HR
roster; one day has no run. The expected lifecycle is worked out here from those steps (run
times, review time), not read from the product.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from iru_pipeline.cli import main
from iru_pipeline.evidence import manifest, session
from iru_pipeline.evidence.manifest import verify_chain
from iru_pipeline.evidence.period import parse_period
from iru_pipeline.evidence.tables import CHAINED_TABLES, TABLES_BY_NAME, EvidenceTable
from iru_pipeline.export import build_export, export_run
from iru_pipeline.export_verify import SUMS_FILE, verify_export
from iru_pipeline_tests.helpers import build_world_db, derive_world, execute_utc, world_run, write_world_inputs
from iru_pipeline_tests.support.world import finding_id

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
# Runs 4, 3, 1 and 0 days before NOW: no run two days before.
AS_OF = {"run-a": NOW - 4 * DAY, "run-b": NOW - 3 * DAY, "run-c": NOW - DAY, "run-d": NOW}
REVIEWED_AT = NOW - 2 * DAY
F1_EVENT = "ev-planted-deletion"   # appears before run-b, reviewed, removed before run-d
F2_EVENT = "ev-planted-export"     # present in run-a and run-b, removed before run-c, never reviewed


def _event(db: Path, event_id: str, activity_type: str, at: datetime) -> None:
    execute_utc(db, "insert into intercom.activity_logs values ('us', 'us01', ?, ?, ?, 'admin', '1', 'owner@acme.test', "
             "'10.0.0.1', 'Owner did something.', '{}')", [event_id, at, activity_type])


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("findings")
    db = build_world_db(tmp / "iru.duckdb")
    # R3 data export inside business hours (Tuesday 11:00 in Los Angeles): medium
    export_at = (NOW - 6 * DAY).astimezone(UTC)
    _event(db, F2_EVENT, "bulk_export", export_at)
    files = write_world_inputs(tmp / "in", NOW)
    derive_world(db, world_run(files, "run-a", AS_OF["run-a"]))
    _event(db, F1_EVENT, "message_deletion", AS_OF["run-b"] - timedelta(hours=5))  # R4, high
    derive_world(db, world_run(files, "run-b", AS_OF["run-b"]))
    execute_utc(db, "delete from intercom.activity_logs where id = ?", [F2_EVENT])
    reviewed = write_world_inputs(tmp / "in", NOW, reviews=f"{_f1()},accepted,owner@acme.test,"
                                  f"{REVIEWED_AT:%Y-%m-%dT%H:%M:%SZ},checked with the owner,us01\n")
    derive_world(db, world_run(reviewed, "run-c", AS_OF["run-c"]))
    execute_utc(db, "delete from intercom.activity_logs where id = ?", [F1_EVENT])
    with reviewed.roster.open("a", encoding="utf-8") as roster:  # the shared support account is now known to HR
        roster.write("support@acme.test,P10,active,,Support,owner@acme.test,B1\n")
    derive_world(db, world_run(reviewed, "run-d", AS_OF["run-d"]))
    return db


def _f1() -> str:
    return finding_id("R4", "us", "1", F1_EVENT)


def _f2() -> str:
    return finding_id("R3", "us", "1", F2_EVENT)


def _rows(db: Path, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def _finding(db: Path, run_id: str, fid: str) -> dict[str, Any] | None:
    found = _rows(db, "select * from evidence.evidence_findings where run_id = ? and finding_id = ?", [run_id, fid])
    assert len(found) <= 1
    return found[0] if found else None


def test_a_finding_appears_is_reviewed_and_disappears(days: Path) -> None:
    f1 = _f1()
    assert _finding(days, "run-a", f1) is None, "not in the data before run-b"
    at_b = _finding(days, "run-b", f1)
    assert at_b is not None
    assert (at_b["status"], at_b["is_open"], at_b["first_detected_at"], at_b["last_seen_at"], at_b["resolved_at"]) == (
        "review", True, AS_OF["run-b"], AS_OF["run-b"], None)
    assert (at_b["test_id"], at_b["finding_kind"], at_b["severity"]) == ("T11", "high_risk_activity", "high")

    at_c = _finding(days, "run-c", f1)
    assert at_c is not None
    assert (at_c["status"], at_c["is_open"], at_c["resolution"], at_c["reviewed_by"], at_c["decision"]) == (
        "pass", False, "reviewed", "owner@acme.test", "accepted")
    assert at_c["resolved_at"] == REVIEWED_AT
    assert at_c["time_to_resolve_hours"] == (REVIEWED_AT - AS_OF["run-b"]).total_seconds() / 3600 == 24.0
    assert (at_c["last_seen_at"], at_c["runs_seen"]) == (AS_OF["run-c"], 2)

    at_d = _finding(days, "run-d", f1)
    assert at_d is not None, "a finding resolved in the period stays listed"
    # reviewed before it left the data: the review resolved it
    assert (at_d["resolution"], at_d["resolved_at"], at_d["last_seen_at"]) == ("reviewed", REVIEWED_AT, AS_OF["run-c"])


def test_a_finding_gone_from_the_data_is_resolved_by_the_first_run_without_it(days: Path) -> None:
    f2 = _f2()
    at_b = _finding(days, "run-b", f2)
    assert at_b is not None and at_b["is_open"] and at_b["first_detected_at"] == AS_OF["run-a"]
    at_c = _finding(days, "run-c", f2)
    assert at_c is not None
    assert (at_c["status"], at_c["resolution"], at_c["resolved_at"], at_c["last_seen_at"], at_c["reviewed_by"]) == (
        "pass", "gone_from_the_data", AS_OF["run-c"], AS_OF["run-b"], None)
    assert at_c["time_to_resolve_hours"] == (AS_OF["run-c"] - AS_OF["run-a"]).total_seconds() / 3600 == 72.0


def test_a_failing_admin_is_tracked_until_the_roster_names_it(days: Path) -> None:
    import hashlib

    fid = hashlib.sha256(b"T01|us|4").hexdigest()[:16]  # test | region | admin id of support@acme.test
    at_c = _finding(days, "run-c", fid)
    assert at_c is not None
    assert (at_c["status"], at_c["finding_kind"], at_c["subject_label"], at_c["first_detected_at"]) == (
        "fail", "failing_admin", "support@acme.test", AS_OF["run-a"])
    at_d = _finding(days, "run-d", fid)
    assert at_d is not None
    assert (at_d["resolution"], at_d["resolved_at"], at_d["time_to_resolve_hours"]) == (
        "gone_from_the_data", AS_OF["run-d"], 96.0)


def test_t11_counts_the_high_risk_findings_held_by_the_run(days: Path) -> None:
    for run_id in AS_OF:
        held = _rows(days, "select finding_id, status from evidence.evidence_high_risk_activity "
                           "where run_id = ? and region = 'us'", [run_id])
        t11 = _rows(days, "select population, failing, to_review, failing_items from evidence.evidence_control_tests "
                          "where run_id = ? and region = 'us' and test_id = 'T11'", [run_id])[0]
        assert (t11["population"], t11["failing"], t11["to_review"]) == (
            len(held), sum(h["status"] == "fail" for h in held), sum(h["status"] == "review" for h in held))
        assert set(t11["failing_items"]) == {h["finding_id"] for h in held if h["status"] in ("fail", "review")}
    c_items = _rows(days, "select failing_items from evidence.evidence_control_tests "
                          "where run_id = 'run-c' and region = 'us' and test_id = 'T11'", [])[0]["failing_items"]
    assert _f1() not in c_items, "reviewed in run-c"


def test_findings_are_chained(days: Path) -> None:
    con = duckdb.connect(str(days), read_only=True)
    try:
        assert verify_chain(con) == []
    finally:
        con.close()


# ----------------------------------------------------------------------------- period export


def _period() -> str:
    return f"{(NOW - 10 * DAY).date().isoformat()}..{NOW.date().isoformat()}"


def test_period_export_holds_the_window_and_verifies(days: Path, tmp_path: Path) -> None:
    period = parse_period(_period())
    con = duckdb.connect(str(days), read_only=True)
    try:
        result = export_run(con, "run-d", tmp_path / "out", None, period)
        again = build_export(con, "run-d", None, period)
    finally:
        con.close()
    assert verify_export(result.folder) == []
    assert [(f.path, f.data) for f in result.files] == [(f.path, f.data) for f in again[1]], "deterministic"
    manifest = json.loads((result.folder / "manifest.json").read_bytes())
    assert manifest["export_period"]["start"] == (NOW - 10 * DAY).date().isoformat()
    assert manifest["export_period"]["latest_run_id"] == "run-d"
    report = (result.folder / "report.html").read_text(encoding="utf-8")
    assert f"Audit period {(NOW - 10 * DAY).date().isoformat()} to {NOW.date().isoformat()}" in report
    shown = report.split('<table id="findings">', 1)[1].split("</table>", 1)[0]
    tracked = _rows(days, "select count(*) as n from evidence.evidence_findings where run_id = 'run-d'", [])[0]["n"]
    assert shown.count("<tr>") == 1 + tracked > 1, "report.html lists every finding of the run"

    history = json.loads((result.folder / "period/control_test_history.json").read_bytes())
    us_t01 = {h["day"]: h for h in history if h["region"] == "us" and h["test_id"] == "T01"}
    expected_days = [(NOW - k * DAY).date().isoformat() for k in (4, 3, 2, 1, 0)]  # first run to last run
    assert sorted(us_t01) == expected_days
    assert us_t01[expected_days[2]]["status"] == "no_run" and us_t01[expected_days[2]]["day_run_id"] is None
    assert [us_t01[d]["day_run_id"] for d in expected_days] == ["run-a", "run-b", None, "run-c", "run-d"]

    findings = {f["finding_id"]: f for f in json.loads((result.folder / "period/findings.json").read_bytes())}
    assert findings[_f1()]["resolution"] == "reviewed"
    assert findings[_f2()]["resolution"] == "gone_from_the_data"


def test_a_tampered_byte_in_a_period_file_fails_verify(days: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(days), read_only=True)
    try:
        folder = export_run(con, "run-d", tmp_path / "out", None, parse_period(_period())).folder
    finally:
        con.close()
    path = folder / "period/findings.csv"
    data = bytearray(path.read_bytes())
    data[-3] = ord("X") if data[-3] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))
    assert any("period/findings.csv" in p for p in verify_export(folder))
    # sums regenerated: manifest.json still catches it
    sums = (folder / SUMS_FILE).read_text(encoding="utf-8").splitlines()
    import hashlib

    fixed = [f"{hashlib.sha256(bytes(data)).hexdigest()}  period/findings.csv" if line.endswith(" period/findings.csv")
             else line for line in sums]
    (folder / SUMS_FILE).write_text("\n".join(fixed) + "\n", encoding="utf-8")
    assert verify_export(folder) == ["period/findings.csv does not match manifest.json"]


@pytest.mark.parametrize("text", ["2026-01-01", "2026-13-01..2026-12-31", "2026-12-31..2026-01-01", "last year"])
def test_a_bad_period_is_one_line_and_exit_2(text: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("IRU_DUCKDB_PATH", str(tmp_path / "none.duckdb"))
    assert main(["export", "--period", text]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "--period" in err and "Traceback" not in err


def test_the_cli_exports_a_period_and_verify_round_trips(days: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("IRU_DUCKDB_PATH", str(days))
    assert main(["export", "--period", _period(), "--out", str(tmp_path / "out")]) == 0
    folder = next((tmp_path / "out").iterdir())
    assert folder.name.startswith("period_")
    capsys.readouterr()
    assert main(["verify", str(folder)]) == 0
    assert "OK" in capsys.readouterr().out
    empty = f"{(NOW - 400 * DAY).date().isoformat()}..{(NOW - 300 * DAY).date().isoformat()}"
    assert main(["export", "--period", empty, "--out", str(tmp_path / "out")]) == 2
    assert "no evidence run in the period" in capsys.readouterr().err


# ----------------------------------------------------------------------------- upgrade


class _ControlTestsBeforeFindings(EvidenceTable):
    """evidence_control_tests as written before evidence_findings: T11 read this run's
    evidence_high_risk_activity rows directly."""

    @property
    def sql(self) -> str:
        new = super().sql
        start = new.index("hra as (select * from evidence.evidence_findings")
        end = new.index("as_of),", start) + len("as_of),")
        return new[:start] + ("hra as (select * from evidence.evidence_high_risk_activity "
                              "where run_id = (select run_id from p)),") + new[end:]


def test_a_database_written_before_findings_keeps_verifying_and_its_findings_date_from_then(
        tmp_path: Path, monkeypatch) -> None:
    db = build_world_db(tmp_path / "iru.duckdb")
    files = write_world_inputs(tmp_path / "inputs", NOW)
    old_as_of, new_as_of = NOW - 2 * DAY, NOW
    old_control = _ControlTestsBeforeFindings(**{f: getattr(TABLES_BY_NAME["evidence_control_tests"], f)
                                                 for f in ("name", "description", "reads", "order_by", "after",
                                                           "preview")})
    old_tables = tuple(t for t in CHAINED_TABLES if t != "evidence_findings")
    with monkeypatch.context() as old:  # the previous version: no findings table, chain without it
        old.setattr(session, "EVIDENCE_TABLES", tuple(old_control if t.name == "evidence_control_tests" else t
                                                      for t in session.EVIDENCE_TABLES
                                                      if t.name != "evidence_findings"))
        old.setattr(manifest, "table_digests", functools.partial(manifest.table_digests, tables=old_tables))
        derive_world(db, world_run(files, "old-run", old_as_of))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("select count(*) from information_schema.tables where table_name = 'evidence_findings'"
                           ).fetchone()[0] == 0
        old_export = export_run(con, "old-run", tmp_path / "exports").folder
    finally:
        con.close()
    derive_world(db, world_run(files, "new-run", new_as_of))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert verify_chain(con) == []
        new_export = export_run(con, "new-run", tmp_path / "exports").folder
    finally:
        con.close()
    assert verify_export(old_export) == [] and verify_export(new_export) == []
    held_then = {r["finding_id"] for r in _rows(db, "select finding_id from evidence.evidence_high_risk_activity "
                                                    "where run_id = 'old-run'", [])}
    tracked = {r["finding_id"]: r for r in _rows(db, "select * from evidence.evidence_findings "
                                                     "where run_id = 'new-run' and test_id = 'T11'", [])}
    assert held_then and held_then <= set(tracked)
    assert {tracked[f]["first_detected_at"] for f in held_then} == {old_as_of}, \
        "findings of runs stored before the table existed count from those runs"


def test_a_signed_period_export_verifies_and_a_rehashed_period_file_breaks_the_signature(
        days: Path, tmp_path: Path) -> None:
    import hashlib

    from iru_pipeline.evidence.signing import generate_key_pair, load_public_key, load_signer

    public_path, _ = generate_key_pair(tmp_path / "keys" / "k.pem")
    signer, public = load_signer(tmp_path / "keys" / "k.pem"), load_public_key(public_path)
    con = duckdb.connect(str(days), read_only=True)
    try:
        folder = export_run(con, "run-d", tmp_path / "out", signer, parse_period(_period())).folder
    finally:
        con.close()
    assert verify_export(folder, public) == []
    # Rewrite a period file and every hash beside it (manifest.json and SHA256SUMS), without the key.
    path = folder / "period/control_test_history.csv"
    data = path.read_bytes().replace(b",no_run,", b",pass,", 1)
    assert data != path.read_bytes(), "the day without a run is in the file"
    path.write_bytes(data)
    manifest_json = json.loads((folder / "manifest.json").read_bytes())
    for entry in manifest_json["files"]:
        if entry["path"] == "period/control_test_history.csv":
            entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (folder / "manifest.json").write_text(json.dumps(manifest_json, indent=2) + "\n", encoding="utf-8")
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}\n"
                   for p in sorted(folder.rglob("*")) if p.is_file() and p.name != SUMS_FILE)
    (folder / SUMS_FILE).write_text(sums, encoding="utf-8")
    assert verify_export(folder, public) == ["manifest.sig is not a valid signature of manifest.json by the given key"]
