"""Asset checks: one per control test T01-T15, on the evidence table the test reads, computed
by the `evidence_tables` step (assets.py) after the tables.

The result comes from `evidence.evidence_control_tests` (computed in SQL), for the check's own
Dagster run, so the UI shows each control's status on its evidence at a glance. A check covers
every workspace; its status is the worst over them (fail > review > not_collected > manual >
not_applicable > pass) and the metadata lists each workspace's status (`by_workspace`), the
failing and to-review counts separately, in total and per workspace (`workspaces`), and links
the run's report.html (`report`, `report_url`).

| test status     | check passed | severity | why                                                  |
|-----------------|--------------|----------|------------------------------------------------------|
| pass            | yes          | -        |                                                      |
| manual          | yes          | -        | a known, permanent need for a human artefact (T07)   |
| not_applicable  | yes          | -        | nothing to evaluate; the status says so, not "pass"  |
| review          | no           | WARN     | a person must look                                   |
| not_collected   | no           | WARN     | a green check would read as "control passed"         |
| fail            | no           | ERROR    |                                                      |

The status itself is always in the metadata (`status`), so neither not_collected nor
not_applicable is mistaken for pass.
"""

# No `from __future__ import annotations`: Dagster reads the `context` annotation at definition time.
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from iru_pipeline.evidence.controls import CONTROL_TESTS, ControlTest, status_with_counts
from iru_pipeline.evidence.dagster_metadata import evidence_key, markdown_table
from iru_pipeline.evidence.report import REPORT_FILE

CONTROL_TESTS_TABLE = "evidence_control_tests"
SEVERITY_ORDER = ("fail", "review", "not_collected", "manual", "not_applicable", "pass")


LEGACY_STATUSES = {"warning": "review"}
"""Statuses of runs written before the one vocabulary, as the checks read them."""


def worst_status(statuses: list[str]) -> str:
    known = [LEGACY_STATUSES.get(s, s) for s in statuses]
    known = [s if s in SEVERITY_ORDER else "not_collected" for s in known]
    return min(known, key=SEVERITY_ORDER.index) if known else "not_collected"


def _workspace(row: tuple) -> str:
    """A result's workspace as a metadata key: its Intercom id, or its region while none is known
    (a workspace never reached; docs/evidence.md#how-a-table-is-derived)."""
    return row[1] or f"{row[0]} (no workspace id)"


def check_outcome(status: str) -> tuple[bool, dg.AssetCheckSeverity]:
    if status == "fail":
        return False, dg.AssetCheckSeverity.ERROR
    if status in ("review", "not_collected"):
        return False, dg.AssetCheckSeverity.WARN
    return True, dg.AssetCheckSeverity.WARN  # severity only shows when a check fails


def _read_results(con: Any, test_id: str, run_id: str) -> tuple[str, list[tuple]]:
    """This run's rows of the test; when the run did not compute tests, the latest run's."""
    query = (
        "select region, workspace_id, status, population, failing, coalesce(to_review, warnings), failing_items, "
        "findings, params_json, as_of "
        f"from evidence.{CONTROL_TESTS_TABLE} where test_id = ? and run_id = ? order by region, workspace_id"
    )
    rows = con.execute(query, [test_id, run_id]).fetchall()
    if rows:
        return run_id, rows
    latest = con.execute(
        f"select arg_max(run_id, as_of) from evidence.{CONTROL_TESTS_TABLE} where test_id = ?", [test_id]
    ).fetchone()[0]
    return latest, (con.execute(query, [test_id, latest]).fetchall() if latest else [])


def report_links(database: Path, as_of: datetime, run_id: str) -> dict[str, Any]:
    """Where the evidence run's report.html is (or will be: `evidence/auditor_export` writes it
    after the checks of the same run may have run): the export folder beside the DuckDB file."""
    from iru_pipeline.export import export_folder_name

    report = database.expanduser().parent / "exports" / export_folder_name(as_of, run_id) / REPORT_FILE
    return {"report": dg.MetadataValue.path(str(report)),
            "report_url": dg.MetadataValue.url(report.resolve().as_uri())}


def _check_spec(test: ControlTest) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=test.check_name,
        asset=evidence_key(test.evidence_table),
        description=f"{test.test_id} {test.name}: {test.criteria}. SOC 2 {', '.join(test.soc2)}; "
        f"ISO 27001 {', '.join(test.iso27001)}; GDPR {', '.join(test.gdpr)}.",
        blocking=False,
        additional_deps=[evidence_key(CONTROL_TESTS_TABLE)],
    )


CONTROL_CHECK_SPECS: list[dg.AssetCheckSpec] = [_check_spec(t) for t in CONTROL_TESTS]
"""The checks of the `evidence_tables` step (assets.py), which computes them after the tables."""
_TESTS_BY_CHECK = {t.check_name: t for t in CONTROL_TESTS}


def control_check_result(con: Any, check: dg.AssetCheckKey, run_id: str, database: Path) -> dg.AssetCheckResult:
    """The check's outcome for the Dagster run `run_id`, read from `evidence_control_tests`."""
    test = _TESTS_BY_CHECK[check.name]
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'evidence' and table_name = ?",
        [CONTROL_TESTS_TABLE],
    ).fetchone()[0]
    found_run, rows = _read_results(con, test.test_id, run_id) if exists else (None, [])
    status = worst_status([r[2] for r in rows])
    passed, severity = check_outcome(status)
    failing, to_review, population = (sum(r[k] or 0 for r in rows) for k in (4, 5, 3))
    metadata: dict[str, Any] = {
        "status": status,
        "test_id": test.test_id,
        "by_workspace": dg.MetadataValue.json({_workspace(r): r[2] for r in rows}),
        "workspaces": dg.MetadataValue.json({
            _workspace(r): {"workspace_id": r[1], "region": r[0], "status": r[2], "population": r[3],
                            "failing": r[4], "to_review": r[5]}
            for r in rows}),
        "population": population,
        "failing": failing,
        "to_review": to_review,
        "evidence_run_id": found_run or "",
        "soc2": ", ".join(test.soc2),
        "iso27001": ", ".join(test.iso27001),
        "gdpr": ", ".join(test.gdpr),
    }
    if rows:
        metadata.update(report_links(database, rows[0][9], found_run or ""))
        metadata["params"] = dg.MetadataValue.json(json.loads(rows[0][8]) if rows[0][8] else {})
        metadata["details"] = dg.MetadataValue.md(markdown_table(
            ["workspace", "region", "status", "population", "failing", "to review", "items", "findings"],
            [(r[1], r[0], r[2], r[3], r[4], r[5], (r[6] or [])[:10], r[7]) for r in rows],
        ))
    return dg.AssetCheckResult(
        asset_key=check.asset_key, check_name=check.name, passed=passed, severity=severity, metadata=metadata,
        description=f"{test.test_id}: {status_with_counts(status, failing, to_review, population)}"
        + ("" if rows else " (no control-test results in DuckDB)"),
    )
