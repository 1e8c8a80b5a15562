"""The full product path: `iru-pipeline run --region us --no-reconcile` in a subprocess
(Dagster, every resource, the evidence assets), twice against the same DuckDB file. The first
run loads the workspace; the second is the no-change incremental run, whose API calls per
resource are the target (at most three per resource and region)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from iru_pipeline_tests.bench.fake import FakeProcess
from iru_pipeline_tests.bench.proc import OtherLoad, log_tail, run_measured
from iru_pipeline_tests.bench.worker import PII_KEY

# Which resources each fake route serves (a route shared by two resources counts for both).
ROUTE_RESOURCES = {
    "GET /me": ("workspaces",),
    "GET /admins": ("admins",),
    "GET /teams": ("teams", "team_memberships"),
    "GET /tags": ("tags",),
    "GET /data_attributes": ("data_attributes",),
    "GET /conversations/attributes": ("data_attributes",),
    "POST /contacts/search": ("contacts",),
    "GET /contacts": ("contacts",),
    "POST /conversations/search": ("conversations",),
    "GET /conversations/deleted": ("conversations", "deleted_conversations"),
    "GET /admins/activity_logs": ("activity_logs",),
}


def base_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without its Intercom, iru-pipeline or Dagster settings, plus the
    DuckDB path and the PII key: what every measured product run starts from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCOM_", "IRU_", "DAGSTER_"))}
    env.update({"IRU_DUCKDB_PATH": str(data_dir / "iru.duckdb"), "IRU_PII_KEY": PII_KEY,
                "RUNTIME__DLTHUB_TELEMETRY": "false"})
    return env


def product_env(fake: FakeProcess, data_dir: Path) -> dict[str, str]:
    """The product's own contract: token, base URL, DuckDB path and PII key; nothing else
    of the caller's Intercom or Dagster settings leaks in."""
    return {**base_env(data_dir), "INTERCOM_ACCESS_TOKEN_US": fake.token, "INTERCOM_BASE_URL_US": fake.base_url}


def measured_run(cmd: list[str], env: dict[str, str], fake: Any, log_path: Path,
                 timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """`cmd` run as a measured process tree against `fake` (anything with `reset_stats`,
    `cpu_s` and `stats`): its figures (wall, peak RSS of the tree, CPU of the fake and of
    other processes meanwhile) and the fake's request statistics."""
    fake.reset_stats()
    cpu0 = fake.cpu_s()
    load = OtherLoad()
    measured = run_measured(cmd, env=env, log_path=log_path, timeout=timeout)
    cpu1 = fake.cpu_s()
    fake_cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    return {
        **measured,
        # The whole process tree: the table worker processes count too.
        "peak_rss_mb": measured["peak_tree_rss_mb"] or measured["peak_rss_mb"],
        "peak_rss_mb_wait4": measured["peak_rss_mb"],
        "fake_cpu_s": round(fake_cpu, 2) if fake_cpu is not None else None,
        "other_cpu_cores": load.cores(measured.get("cpu_s"), fake_cpu),
    }, fake.stats()


def run_product(fake: FakeProcess, data_dir: Path, log_path: Path, timeout: float = 1800.0) -> dict[str, Any]:
    """One `iru-pipeline run --region us --no-reconcile`: wall time, peak RSS, API calls."""
    cmd = [sys.executable, "-m", "iru_pipeline.cli", "run", "--region", "us", "--no-reconcile"]
    measured, stats = measured_run(cmd, product_env(fake, data_dir), fake, log_path, timeout)
    sync = latest_sync_results(data_dir / "iru.duckdb")
    by_resource: dict[str, int] = {}
    for route, n in stats.get("by_route", {}).items():
        for name in ROUTE_RESOURCES.get(route, (route,)):
            by_resource[name] = by_resource.get(name, 0) + n
    result = {
        **measured,
        "api_calls": stats.get("total_requests", 0),
        "api_calls_by_route": stats.get("by_route", {}),
        "api_calls_by_resource_fake": by_resource,
        "api_calls_by_resource": {r["resource"]: r["api_calls"] for r in sync},
        "rows_loaded": {r["resource"]: r["rows_loaded"] for r in sync},
        "statuses": {r["resource"]: r["status"] for r in sync},
        "rate_limited": stats.get("rate_limited", 0),
    }
    if measured["exit_code"] not in (0,):
        result["error"] = log_tail(log_path)
    return result


def latest_sync_results(db: Path) -> list[dict[str, Any]]:
    """`intercom.sync_results` rows of the newest run (per-resource API calls from the client)."""
    return sync_results(db, "resource, status, rows_loaded, api_calls",
                        "run_id = (select run_id from intercom.sync_results order by finished_at desc limit 1)",
                        order="resource")


def sync_results(db: Path, columns: str, where: str, params: list[Any] | None = None, *,
                 order: str) -> list[dict[str, Any]]:
    """Rows of `intercom.sync_results` (the client's own counts per resource), read-only; none
    when the file or the table is not there yet."""
    if not db.exists():
        return []
    import duckdb

    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return []
    try:
        cur = con.execute(f"select {columns} from intercom.sync_results where {where} order by {order}", params or [])
        return [dict(zip([d[0] for d in cur.description], row, strict=True)) for row in cur.fetchall()]
    except duckdb.Error:
        return []
    finally:
        con.close()
