"""The Dagster definitions: load, schedule, metadata, the webserver's asset graph, and three
region partitions launched at once against one DuckDB file."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_source import RESOURCE_NAMES
from iru_pipeline_tests.helpers import Loaded, assert_matches_fake, pipeline_env

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_and_every_job_resolves() -> None:
    from iru_pipeline.definitions import defs

    repo = defs.get_repository_def()
    for job_name in repo.job_names:
        assert defs.resolve_job_def(job_name) is not None
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {f"intercom/{name}" for name in RESOURCE_NAMES} <= keys
    spec = defs.resolve_assets_def(dg.AssetKey(["intercom", "contacts"]))
    assert spec.partitions_def.get_partition_keys() == ["us", "eu", "au"]


def test_every_duckdb_writer_shares_one_pool() -> None:
    from iru_pipeline.definitions import defs

    for assets_def in defs.resolve_asset_graph().assets_defs:
        if assets_def.is_executable:
            pools = {node.pool for node in [assets_def.node_def] if hasattr(node, "pool")}
            assert pools == {"duckdb_writer"}, assets_def.keys


def test_daily_schedule_yields_one_run_per_enabled_region(monkeypatch) -> None:
    from iru_pipeline.definitions import defs

    monkeypatch.setenv("INTERCOM_ACCESS_TOKEN_US", "a")
    monkeypatch.setenv("INTERCOM_ACCESS_TOKEN_AU", "b")
    schedule = defs.get_schedule_def("daily_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=dt.datetime(2026, 11, 25, 3, tzinfo=dt.UTC))
    result = schedule.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests] == ["us", "au"]
    assert {r.run_key for r in result.run_requests} == {"2026-11-25-us", "2026-11-25-au"}


def test_schedule_skips_with_the_reason_when_nothing_is_enabled() -> None:
    from iru_pipeline.definitions import defs

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
