"""The evidence assets and control-test checks as Dagster runs them (real materialisations on a
tmp DuckDB file holding the hand-made world)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from iru_pipeline.assets.ingestion import INGESTION_ASSET_KEYS
from iru_pipeline.evidence.assets import evidence_assets, evidence_key
from iru_pipeline.evidence.checks import CONTROL_CHECK_SPECS
from iru_pipeline.evidence.tables import EVIDENCE_TABLES
from iru_pipeline.resources import IntercomResource
from iru_pipeline_tests.helpers import build_world_db, query, write_world_inputs

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture
def world_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = build_world_db(tmp_path / "iru.duckdb")
    for name, value in write_world_inputs(tmp_path / "inputs").env(db).items():
        monkeypatch.setenv(name, value)
    return db


def materialize(db: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        evidence_assets,
        resources={"duckdb": DuckDBResource(database=str(db)), "intercom": IntercomResource()},
        run_config=QUIET,
        raise_on_error=False,
    )


def scalar(db: Path, sql: str, params: list | None = None):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    """One materialisation of every evidence asset and check, shared by the read-only tests."""
    folder = tmp_path_factory.mktemp("materialized")
    db = build_world_db(folder / "iru.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in write_world_inputs(folder / "inputs").env(db).items():
            mp.setenv(name, value)
        result = materialize(db)
    assert result.success
    return db, result


def test_each_control_test_is_a_check_on_its_evidence_table(materialized) -> None:
    _, result = materialized
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert len(checks) == 15
    t01, t04, t07, t09, t10 = (checks[n] for n in ("t01_admins_identified", "t04_privileged_admins_limited",
                                                    "t07_mfa_or_sso_enforced", "t09_data_region_allowed",
                                                    "t10_activity_logs_complete"))
    assert t01.asset_key == evidence_key("evidence_admin_access_review") == dg.AssetKey(
        ["evidence", "admin_access_review"])
    assert (t01.passed, t01.severity, t01.metadata["status"].value) == (False, dg.AssetCheckSeverity.ERROR, "fail")
    assert (t04.passed, t04.severity, t04.metadata["status"].value) == (False, dg.AssetCheckSeverity.WARN, "review")
    assert (t07.passed, t07.metadata["status"].value) == (True, "manual")
    assert (t09.passed, t09.metadata["status"].value) == (True, "pass")
    # not_collected in the EU (plan restricted); review in the US, whose logs held start 140 days
    # into the 365-day period: the worst is shown, never a green pass
    assert (t10.passed, t10.severity, t10.metadata["status"].value) == (False, dg.AssetCheckSeverity.WARN,
                                                                        "review")
    assert t10.metadata["by_workspace"].value == {"eu01": "not_collected", "us01": "review"}
    assert t01.metadata["failing"].value == 3 and "tom@acme.test" in t01.metadata["details"].value


def test_check_metadata_counts_per_workspace_and_links_the_runs_report(materialized) -> None:
    world_db, result = materialized
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    con = duckdb.connect(str(world_db), read_only=True)
    try:
        for name, check in checks.items():
            test_id = check.metadata["test_id"].value
            expected = {r[1]: {"workspace_id": r[1], "region": r[0], "status": r[2], "population": r[3],
                               "failing": r[4], "to_review": r[5]}
                        for r in con.execute("select region, workspace_id, status, population, failing, to_review "
                                             "from evidence.evidence_control_tests where run_id = ? and test_id = ?",
                                             [result.run_id, test_id]).fetchall()}
            assert check.metadata["workspaces"].value == expected, name
            assert check.metadata["failing"].value == sum(w["failing"] for w in expected.values())
            assert check.metadata["to_review"].value == sum(w["to_review"] for w in expected.values())
    finally:
        con.close()
    export = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                  if e.asset_key == evidence_key("auditor_export"))
    report = export["report"].value
    assert Path(report).is_file() and Path(report).name == "report.html"
    for check in checks.values():
        assert check.metadata["report"].value == report
        assert check.metadata["report_url"].value == Path(report).resolve().as_uri()


def test_materialisations_carry_row_counts_and_failing_rows(materialized) -> None:
    world_db, result = materialized
    events = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    # Asset names drop the table's doubled prefix: evidence/admin_access_review, table evidence_admin_access_review
    assert set(events) == {t.name.removeprefix("evidence_") for t in EVIDENCE_TABLES} | {"auditor_export"}
    review = events["admin_access_review"]
    assert review["dagster/row_count"].value == scalar(
        world_db, "select count(*) from evidence.evidence_admin_access_review where run_id = ?", [result.run_id]) == 8
    assert review["rows_by_status"].value == {"fail": 4, "pass": 1, "review": 3}
    preview = review["failing_rows"].value
    assert preview.startswith("| region | admin_id |") and "| us | 5 | tom@acme.test | fail |" in preview
    assert "dagster/column_schema" in review
    assert events["collection_run"]["params_sha256"].value == scalar(
        world_db, "select any_value(params_sha256) from evidence.evidence_collection_run")
    export = Path(events["auditor_export"]["path"].value)
    assert export.parent == world_db.parent / "exports" and (export / "SHA256SUMS").is_file()


def test_a_run_shares_one_run_id_and_as_of_across_tables(materialized) -> None:
    world_db, result = materialized
    con = duckdb.connect(str(world_db), read_only=True)
    seen = set()
    for t in EVIDENCE_TABLES:
        seen |= set(con.execute(f"select distinct run_id, as_of from evidence.{t.name}").fetchall())
    con.close()
    assert len(seen) == 1 and next(iter(seen))[0] == result.run_id


def test_history_is_kept_and_chained_across_runs(materialized, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    shared_db, first = materialized
    world_db = tmp_path / "iru.duckdb"
    shutil.copyfile(shared_db, world_db)
    for name, value in write_world_inputs(tmp_path / "inputs").env(world_db).items():
        monkeypatch.setenv(name, value)
    second = materialize(world_db)
    assert second.success
    con = duckdb.connect(str(world_db), read_only=True)
    chain = dict(con.execute(
        "select run_id, any_value(previous_manifest_sha256) from evidence.evidence_collection_run group by run_id"
    ).fetchall())
    first_hash = con.execute("select any_value(manifest_sha256) from evidence.evidence_collection_run "
                             "where run_id = ?", [first.run_id]).fetchone()[0]
    assert chain == {first.run_id: None, second.run_id: first_hash}
    assert con.execute("select count(distinct run_id) from evidence.evidence_control_tests").fetchone()[0] == 2
    latest = con.execute("select distinct run_id from evidence.latest_evidence_admin_access_review").fetchall()
    assert latest == [(second.run_id,)]


def test_one_table_or_one_check_runs_alone_as_the_ui_selects_it(materialized, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The evidence tables are one step that can be subset: materialising one table from the UI
    writes that table only, for the new run; executing one check alone writes nothing and
    reads the results the latest run left."""
    shared_db, first = materialized
    world_db = tmp_path / "iru.duckdb"
    shutil.copyfile(shared_db, world_db)
    for name, value in write_world_inputs(tmp_path / "inputs").env(world_db).items():
        monkeypatch.setenv(name, value)
    resources = {"duckdb": DuckDBResource(database=str(world_db)), "intercom": IntercomResource()}
    control_tests = evidence_key("evidence_control_tests")
    one_table = dg.materialize(evidence_assets, selection=[control_tests], resources=resources, run_config=QUIET)
    assert [e.asset_key for e in one_table.all_events if e.is_step_materialization] == [control_tests]
    runs = dict(query(world_db, "select table_name, count(*) from (select 'control_tests' as table_name, "
                      "run_id from evidence.evidence_control_tests union all select 'access_review', run_id "
                      "from evidence.evidence_admin_access_review) where run_id = ? group by all",
                      [one_table.run_id]))
    assert runs == {"control_tests": 15 * 2}, \
        "only the selected table has rows of the new run (15 tests x 2 workspaces)"

    t01 = dg.AssetCheckKey(evidence_key("evidence_admin_access_review"), "t01_admins_identified")
    one_check = dg.materialize(evidence_assets, selection=dg.AssetSelection.checks(t01), resources=resources,
                               run_config=QUIET)
    assert not [e for e in one_check.all_events if e.is_step_materialization]
    [evaluation] = one_check.get_asset_check_evaluations()
    assert evaluation.check_name == "t01_admins_identified"
    assert evaluation.metadata["evidence_run_id"].value == one_table.run_id, "the latest run's results"
    stored = dict(query(world_db, "select workspace_id, status from evidence.evidence_control_tests "
                              "where run_id = ? and test_id = 'T01'", [one_table.run_id]))
    assert evaluation.metadata["by_workspace"].value == stored


def test_bad_evidence_config_fails_the_run_with_its_one_line_reason(world_db: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("stale_admin_days = -1\n", encoding="utf-8")
    monkeypatch.setenv("IRU_EVIDENCE_CONFIG", str(bad))
    result = materialize(world_db)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "stale_admin_days must be a whole number of at least 1 (got -1)" in str(failure.step_failure_data.error)


def test_the_refresh_job_runs_evidence_after_every_region_and_its_checks(world_db: Path) -> None:
    from iru_pipeline.definitions import build_definitions, evidence_asset_keys

    defs = build_definitions(duckdb_path=world_db)
    graph = defs.resolve_asset_graph()
    upstream = graph.get(evidence_key("evidence_collection_stream")).parent_keys
    assert dg.AssetKey(["intercom", "workspaces"]) in upstream
    assert set(INGESTION_ASSET_KEYS) <= set().union(*(graph.get(k).parent_keys for k in evidence_asset_keys()))
    job = defs.resolve_job_def("refresh_all")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), asset_selection=evidence_asset_keys(),
                                    run_config=QUIET, raise_on_error=False)
    assert result.success
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {spec.name for spec in CONTROL_CHECK_SPECS}
