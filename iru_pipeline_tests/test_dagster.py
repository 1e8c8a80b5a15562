"""The Dagster definitions: load, schedule, metadata, the webserver's asset graph, and three
region partitions launched at once against one DuckDB file."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import duckdb
import httpx

from iru_pipeline.assets.ingestion import INGESTION_ASSET_KEYS
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_source import RESOURCE_NAMES
from iru_pipeline_tests.helpers import (
    FAST_RETRY,
    TEST_PII_KEY,
    Loaded,
    assert_matches_fake,
    instance_at,
    pipeline_env,
    run_ids,
    small_fake,
)

ROOT = Path(__file__).resolve().parents[1]


def _defs_for(monkeypatch, **env: str) -> dg.Definitions:
    """The definitions as the code location builds them when it loads with `env` (and no
    other Intercom or iru setting): its partitions are the workspaces configured then."""
    from iru_pipeline.definitions import build_definitions

    for name in list(os.environ):
        if name.startswith(("INTERCOM_", "IRU_WORKSPACES")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return build_definitions()


def test_definitions_load_and_every_job_resolves(monkeypatch) -> None:
    defs = _defs_for(monkeypatch)

    repo = defs.get_repository_def()
    for job_name in repo.job_names:
        assert defs.resolve_job_def(job_name) is not None
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {f"intercom/{name}" for name in RESOURCE_NAMES} <= keys
    spec = defs.resolve_assets_def(dg.AssetKey(["intercom", "contacts"]))
    # Nothing configured: the region-named workspaces, so the UI loads and a run says what to set.
    assert spec.partitions_def.get_partition_keys() == ["us", "eu", "au"]
    configured = _defs_for(monkeypatch, INTERCOM_ACCESS_TOKEN_AU="b", INTERCOM_ACCESS_TOKEN_US="a")
    spec = configured.resolve_assets_def(dg.AssetKey(["intercom", "contacts"]))
    assert spec.partitions_def.get_partition_keys() == ["us", "au"]


def test_every_duckdb_writer_shares_one_pool() -> None:
    from iru_pipeline.definitions import defs

    for assets_def in defs.resolve_asset_graph().assets_defs:
        if assets_def.is_executable:
            pools = {node.pool for node in [assets_def.node_def] if hasattr(node, "pool")}
            assert pools == {"duckdb_writer"}, assets_def.keys


def test_daily_schedule_yields_one_run_for_every_configured_workspace(monkeypatch) -> None:
    defs = _defs_for(monkeypatch, INTERCOM_ACCESS_TOKEN_US="a", INTERCOM_ACCESS_TOKEN_AU="b")
    schedule = defs.get_schedule_def("daily_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=dt.datetime(2026, 11, 25, 3, tzinfo=dt.UTC))
    result = schedule.evaluate_tick(context)
    (request,) = result.run_requests
    assert request.job_name in (None, "ingest_workspaces") and schedule.job_name == "ingest_workspaces"
    # One run over the partitions from the first configured workspace to the last.
    assert {k: v for k, v in request.tags.items() if "partition" in k} == {
        "dagster/asset_partition_range_start": "us", "dagster/asset_partition_range_end": "au"}
    assert request.run_key == "2026-11-25"


def test_schedule_skips_with_the_reason_when_nothing_is_enabled(monkeypatch) -> None:
    defs = _defs_for(monkeypatch)
    schedule = defs.get_schedule_def("daily_refresh")
    context = dg.build_schedule_context(repository_def=defs.get_repository_def())
    result = schedule.evaluate_tick(context)
    assert not result.run_requests and "INTERCOM_ACCESS_TOKEN_US" in result.skip_message


def test_materialisations_carry_rows_cursors_calls_and_schema(loaded: Loaded) -> None:
    from iru_pipeline.runner import prepare_instance

    instance = prepare_instance(loaded.settings)
    event = instance.get_latest_materialization_event(dg.AssetKey(["intercom", "contacts"]))
    meta = event.asset_materialization.metadata
    assert meta["rows_loaded"].value > 0
    assert meta["cursor_after"].value.startswith("20")
    assert meta["api_calls"].value > 0 and "api_429s" in meta
    columns = {c.name for c in meta["dagster/column_schema"].value.columns}
    assert {"email_hmac", "updated_at", "region"} <= columns
    assert "fields_dropped" in meta


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webserver_serves_the_asset_graph(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "IRU_DUCKDB_PATH": str(tmp_path / "iru.duckdb")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    query = "{ assetNodes { assetKey { path } partitionKeys groupName } }"
    try:
        deadline = time.monotonic() + 120
        nodes = None
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=5)
                data = r.json().get("data") or {}
                if data.get("assetNodes"):
                    nodes = data["assetNodes"]
                    break
            except (httpx.HTTPError, json.JSONDecodeError):
                pass
            time.sleep(0.5)
        assert nodes, "webserver did not answer GraphQL in time"
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert by_key["intercom/contacts"]["partitionKeys"] == ["us", "eu", "au"]
        assert by_key["intercom/admins"]["groupName"] == "intercom"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_three_regions_launched_at_once_all_succeed(fresh_fake: FakeIntercom, tmp_path: Path) -> None:
    """Three `dagster asset materialize` processes against one DuckDB file: the duckdb_writer
    pool (limit 1, in the instance config) queues them instead of failing on the lock."""
    from iru_pipeline.config import load_settings
    from iru_pipeline.runner import prepare_instance

    env = {**os.environ, **pipeline_env(fresh_fake, tmp_path)}
    settings = load_settings(env=env)
    prepare_instance(settings)
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "iru_pipeline.definitions",
             "--select", 'key:"intercom/*"', "--partition", region],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for region in ("us", "eu", "au")
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        errors = [line for line in out.splitlines() if "Error" in line or "error" in line]
        assert proc.returncode == 0, "\n".join(errors[-15:]) or out[-3000:]
    assert_matches_fake(settings.duckdb_path, fresh_fake)


def refresh_job_of_this_environment() -> dg.JobDefinition:
    """`refresh_all` on the DuckDB file the environment names (module level, so that
    `dg.reconstructable` can rebuild it in another process, as a run launcher does)."""
    from iru_pipeline.definitions import build_definitions

    return build_definitions(duckdb_path=Path(os.environ["IRU_DUCKDB_PATH"])).resolve_job_def("refresh_all")


def test_jobs_and_ui_materialisations_run_their_steps_in_process() -> None:
    from iru_pipeline.definitions import defs

    repo = defs.get_repository_def()
    for job_name in repo.job_names:  # refresh_all and the UI's implicit asset job(s)
        assert defs.resolve_job_def(job_name).executor_def is dg.in_process_executor, job_name


def test_a_refresh_runs_every_step_in_one_process_with_each_materialisation_and_check(
        fresh_fake: FakeIntercom, tmp_path: Path, monkeypatch) -> None:
    """The schedule's run of one region, executed from a reconstructable job as a launched run
    is: every step (ingestion, the evidence tables with their checks, the export) runs in the
    run's own process, and each asset and check still reports on its own."""
    from iru_pipeline.config import load_settings
    from iru_pipeline.definitions import EVIDENCE_ASSETS, evidence_asset_keys
    from iru_pipeline.evidence.checks import CONTROL_CHECK_SPECS
    from iru_pipeline.runner import prepare_instance

    for name, value in pipeline_env(fresh_fake, tmp_path, regions=("us",)).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    with prepare_instance(settings) as instance:
        result = dg.execute_job(dg.reconstructable(refresh_job_of_this_environment), instance=instance,
                                tags={"dagster/partition": "us"}, raise_on_error=False)
        events = result.all_events
        assert result.success, [e.message for e in events if e.is_failure][:3]
        step_pids = {e.step_key: e.pid for e in events if e.event_type == dg.DagsterEventType.STEP_START}
        # one step for the ingestion assets, one for the evidence tables and their checks, one for the export
        assert len(step_pids) == 1 + len(EVIDENCE_ASSETS) == 3 and "evidence_tables" in step_pids, sorted(step_pids)
        assert set(step_pids.values()) == {os.getpid()}, step_pids
        materialised = {e.asset_key for e in events if e.is_step_materialization}
        assert set(INGESTION_ASSET_KEYS) | set(evidence_asset_keys()) <= materialised
        checks = {e.asset_check_evaluation_data.check_name for e in events
                  if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION}
        assert checks == {spec.name for spec in CONTROL_CHECK_SPECS}
        # the ingestion's progress lines, as the terminal shows them, are in the run's log
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
        for name in RESOURCE_NAMES:
            assert any(m.startswith(f"[us] {name}: ") for m in messages), name
    assert_matches_fake(settings.duckdb_path, fresh_fake, regions=("us",))


def test_a_launched_run_killed_holding_the_pool_slot_gets_it_back_through_run_monitoring(
        fresh_fake: FakeIntercom, tmp_path: Path) -> None:
    """With every step in the run's process, killing that process mid-ingestion leaves the
    `duckdb_writer` slot claimed by the run; once the run is terminated (the UI's Terminate),
    the daemon's run monitoring frees the slot (after `free_slots_after_run_end_seconds`,
    shortened here from the instance config's 60 s)."""
    from types import SimpleNamespace

    from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration

    from iru_pipeline.assets.ingestion import DUCKDB_POOL
    from iru_pipeline.config import load_settings
    from iru_pipeline.runner import prepare_instance

    env = {**os.environ, **pipeline_env(fresh_fake, tmp_path, regions=("us",))}
    settings = load_settings(env=env)
    prepare_instance(settings).dispose()
    config = settings.dagster_home / "dagster.yaml"
    text = config.read_text()
    assert "free_slots_after_run_end_seconds: 60" in text
    config.write_text(text.replace("free_slots_after_run_end_seconds: 60", "free_slots_after_run_end_seconds: 1"))
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    fresh_fake.faults("us").update(latency_ms=300)  # the ingestion step holds the slot for a while
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "iru_pipeline.definitions", "-j", "refresh_all",
         "--tags", json.dumps({"dagster/partition": "us"})],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        storage = instance.event_log_storage
        try:
            deadline, holders = time.monotonic() + 180, set()
            while not holders and time.monotonic() < deadline and proc.poll() is None:
                holders = storage.get_concurrency_info(DUCKDB_POOL).active_run_ids
                time.sleep(0.1)
            assert holders, "the run never claimed the duckdb_writer slot"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            fresh_fake.faults("us").update(latency_ms=0)
        (run_id,) = holders
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.STARTED
        assert storage.get_concurrency_info(DUCKDB_POOL).active_run_ids == {run_id}  # the slot outlived the process

        instance.report_run_canceled(run, message="terminated in the UI")
        time.sleep(2.5)  # past free_slots_after_run_end_seconds
        monitoring = SimpleNamespace(instance=instance)
        list(execute_concurrency_slots_iteration(monitoring, logging.getLogger("test")))
        assert storage.get_concurrency_info(DUCKDB_POOL).active_run_ids == set()


# --------------------------------------------------------------------------- settings handed to each run


def test_a_cli_run_hands_dagster_its_settings_with_secrets_as_references_only(tmp_path: Path, monkeypatch,
                                                                             capsys) -> None:
    """`iru-pipeline run` validates the settings once and gives each run them as the `intercom`
    resource's configuration: hosts and paths as values, the token and the PII key as the names
    of the variables holding them. Read back through the instance API, as the UI shows them."""
    from iru_pipeline.cli import main

    with small_fake(regions=("us", "eu")) as fake:
        for name, value in pipeline_env(fake, tmp_path).items():
            monkeypatch.setenv(name, value)
        assert main(["run", "--region", "eu"]) == 0, capsys.readouterr().err
        instance = instance_at(tmp_path / "dagster_home")
        runs = [instance.get_run_by_id(run_id) for run_id in run_ids(tmp_path / "dagster_home")]
        configs = {run.job_name: run.run_config for run in runs}
        assert set(configs) == {"ingest_workspaces", "derive_evidence"}
        assert [run.tags.get("dagster/asset_partition_range_start") for run in runs
                if run.job_name == "ingest_workspaces"] == ["eu"]
        handed = configs["ingest_workspaces"]["resources"]["intercom"]["config"]["validated_settings"]
        assert handed == {
            "duckdb_path": str(tmp_path / "iru.duckdb"),
            "workspaces": [{"name": "eu", "region": "eu", "base_url": fake.base_url("eu"),
                            "token_env": "INTERCOM_ACCESS_TOKEN_EU", "token_file": None, "base_url_setting": None}],
            "pii_key_env": "IRU_PII_KEY",
            "evidence_config_path": None,
            "signing_key_file": None,
        }
        stored = json.dumps([run.run_config for run in runs])
        for secret in (fake.token("eu"), fake.token("us"), TEST_PII_KEY):
            assert secret not in stored


def test_a_run_uses_the_settings_it_was_handed_not_the_environment_of_the_moment(tmp_path: Path,
                                                                                monkeypatch) -> None:
    """The host and the DuckDB file come from the validated value: pointing the environment
    elsewhere after validation changes nothing for the run (only secrets are read at run time,
    from the variables the value names)."""
    from iru_pipeline.config import load_settings
    from iru_pipeline.runner import run_pipeline

    with small_fake() as fake:
        for name, value in pipeline_env(fake, tmp_path).items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        monkeypatch.setenv("INTERCOM_BASE_URL_US", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("IRU_DUCKDB_PATH", str(tmp_path / "elsewhere.duckdb"))
        result = run_pipeline(settings, with_evidence=False, intercom_options=FAST_RETRY)
        assert not result.failed, [o.error for o in result.outcomes]
        assert_matches_fake(settings.duckdb_path, fake, regions=("us",))
        assert not (tmp_path / "elsewhere.duckdb").exists()


def test_the_evidence_run_reads_the_handed_settings_not_the_environment_of_the_moment(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """The evidence run is handed the same validated value: its parameters file is the one
    validated, even when the environment names another (here one that does not exist) by the
    time the evidence is derived."""
    from iru_pipeline.config import load_settings
    from iru_pipeline.runner import run_pipeline

    config = tmp_path / "evidence.toml"
    config.write_text("stale_admin_days = 45\n", encoding="utf-8")
    with small_fake() as fake:
        for name, value in pipeline_env(fake, tmp_path / "data", regions=("us",)).items():
            monkeypatch.setenv(name, value)
        (tmp_path / "data").mkdir()
        monkeypatch.setenv("IRU_EVIDENCE_CONFIG", str(config))
        settings = load_settings()
        monkeypatch.setenv("IRU_EVIDENCE_CONFIG", str(tmp_path / "missing.toml"))
        result = run_pipeline(settings, intercom_options=FAST_RETRY)
        assert not result.failed, [o.error for o in result.outcomes]
        evidence_run = result.outcomes[-1].run_id
        con = duckdb.connect(str(settings.duckdb_path), read_only=True)
        try:
            (params,) = con.execute("select any_value(params_json) from evidence.evidence_collection_run "
                                    "where run_id = ?", [evidence_run]).fetchone()
        finally:
            con.close()
        assert json.loads(params)["stale_admin_days"] == 45


def test_a_token_gone_by_the_time_the_run_starts_fails_it_in_one_line_before_any_request(
        tmp_path: Path, monkeypatch) -> None:
    from iru_pipeline.config import load_settings
    from iru_pipeline.runner import run_pipeline

    with small_fake() as fake:
        for name, value in pipeline_env(fake, tmp_path).items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        monkeypatch.delenv("INTERCOM_ACCESS_TOKEN_US")
        fake.reset_stats("us")
        result = run_pipeline(settings, with_evidence=False, intercom_options=FAST_RETRY)
        (outcome,) = result.outcomes
        assert not outcome.success
        assert outcome.error == "INTERCOM_ACCESS_TOKEN_US is not set: set it to the access token of workspace us"
        assert fake.stats("us")["total_requests"] == 0


@pytest.mark.parametrize(("sensor_name", "event_type"), [
    ("evidence_after_ingestion", "PIPELINE_SUCCESS"), ("evidence_after_failed_ingestion", "PIPELINE_FAILURE")])
def test_the_evidence_follows_each_ingest_run_once_whether_or_not_every_workspace_loaded(
        sensor_name: str, event_type: str) -> None:
    """The schedule launches one `ingest_workspaces` run for every workspace; when it ends (all
    loaded, or some failed while the others loaded) one `derive_evidence` run follows, keyed by
    the ingest run so a sensor tick seen twice launches it once."""
    from iru_pipeline.definitions import build_definitions

    defs = build_definitions(workspaces=["acme-us", "acme-eu"])
    sensor = defs.get_sensor_def(sensor_name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert [t.job_name for t in sensor.targets] == ["derive_evidence"]
    run = dg.DagsterRun(job_name="ingest_workspaces", run_id="ingest-run-1")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor_name, dagster_instance=dg.DagsterInstance.ephemeral(), dagster_run=run,
        dagster_event=dg.DagsterEvent(event_type_value=event_type, job_name="ingest_workspaces"))
    request = sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == "evidence-after-ingest-run-1"
    selected = defs.resolve_job_def("derive_evidence").asset_layer.executable_asset_keys
    assert selected and not any(key.path[0] == "intercom" for key in selected), "evidence only"
