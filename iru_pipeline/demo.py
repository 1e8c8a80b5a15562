"""`iru-pipeline demo`: the whole pipeline, offline, against the bundled fake Intercom.

Starts the fake on loopback for US, EU and AU, points the pipeline at it with the fake's
tokens and a fixed demo PII key (demo data only: real runs need IRU_PII_KEY), loads
everything into the configured DuckDB file, derives the evidence, and prints what was
loaded plus example SQL.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import duckdb

from iru_pipeline.config import DEFAULT_DUCKDB_PATH, load_settings
from iru_pipeline.intercom_source import DATASET_NAME, RESOURCE_NAMES
from iru_pipeline.regions import REGION_CODES

DEMO_PII_KEY = "iru-demo-pii-key--not-a-secret--demo-data-only"

EXAMPLE_SQL = """\
-- current admins and their teams, every region
select region, id, name, email, role_name, team_ids from intercom.admins
where _dlt_valid_to is null order by region, name;

-- conversations per state and priority
select region, state, priority, count(*) from intercom.conversations group by all order by all;

-- what each run collected, and what it skipped
select region, resource, status, rows_loaded, api_calls, reason from intercom.sync_results
order by started_at desc limit 30;

-- admin logins by sign-in method in the last 30 days
select region, performed_by_email, metadata->>'sign_in_method' as method, count(*) from intercom.activity_logs
where activity_type = 'admin_login_success' and created_at > now() - interval 30 day group by all order by all;
"""


def run_demo(contacts: int = 3000, conversations: int = 2000) -> int:
    from iru_pipeline.fake_intercom import FakeIntercom
    from iru_pipeline.runner import enable_progress, format_summary, run_pipeline
    from iru_pipeline.storage import ensure_writable_database

    duckdb_path = Path(os.environ.get("IRU_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with FakeIntercom(seed=7, contacts=contacts, conversations=conversations) as fake:
        for region in REGION_CODES:
            os.environ[f"INTERCOM_ACCESS_TOKEN_{region.upper()}"] = fake.token(region)
            os.environ[f"INTERCOM_BASE_URL_{region.upper()}"] = fake.base_url(region)
            print(f"fake Intercom {region.upper()}: {fake.base_url(region)}")
        os.environ["IRU_DUCKDB_PATH"] = str(duckdb_path)
        os.environ.setdefault("IRU_PII_KEY", DEMO_PII_KEY)
        demo_config = _demo_evidence_config(duckdb_path.parent, fake)
        if demo_config is not None:
            os.environ.setdefault("IRU_EVIDENCE_CONFIG", str(demo_config))
        settings = load_settings()
        ensure_writable_database(settings.duckdb_path)
        enable_progress()
        result = run_pipeline(settings)
    print()
    print(format_summary(result))
    print()
    print(loaded_counts(settings.duckdb_path))
    print()
    print(f"Query it:  duckdb {settings.duckdb_path}   (or python: duckdb.connect('{settings.duckdb_path}', read_only=True))")
    print(EXAMPLE_SQL)
    return 1 if result.failed else 0


def _demo_evidence_config(data_dir: Path, fake: object) -> Path | None:
    """Evidence parameters for the demo data (the fake's internal e-mail domain)."""
    hook = getattr(fake, "demo_evidence_config", None)
    if hook is None:
        return None
    return hook(data_dir)


def loaded_counts(duckdb_path: Path) -> str:
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        existing = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [DATASET_NAME]).fetchall()}
        lines = [f"{'table':<32}" + "".join(f"{r:>9}" for r in REGION_CODES)]
        for name in RESOURCE_NAMES:
            if name not in existing:
                continue
            cols = {r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
                [DATASET_NAME, name]).fetchall()}
            current = " where _dlt_valid_to is null" if "_dlt_valid_to" in cols else ""
            counts = dict(con.execute(
                f"select region, count(*) from {DATASET_NAME}.{name}{current} group by region").fetchall())
            lines.append(f"intercom.{name:<23}" + "".join(f"{counts.get(r, 0):>9,}" for r in REGION_CODES))
        evidence = con.execute(
            "select table_name from information_schema.tables where table_schema = 'evidence' order by 1").fetchall()
        if evidence:
            lines.append("evidence tables: " + ", ".join(r[0] for r in evidence))
        return "\n".join(lines)
    finally:
        con.close()


if __name__ == "__main__":
    sys.exit(run_demo())
