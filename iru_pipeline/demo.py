"""`iru-pipeline demo`: the whole pipeline, offline, against the bundled fake Intercom.

Starts the fake on loopback for US, EU and AU, points the pipeline at it with the fake's
tokens and a fixed demo PII key (demo data only: real runs need IRU_PII_KEY), loads
everything into the configured DuckDB file, derives the evidence, and prints what was
loaded plus example SQL.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline.config import duckdb_path_from_env, load_settings
from iru_pipeline.env_names import DUCKDB_PATH_ENV, EVIDENCE_CONFIG_ENV, PII_KEY_ENV
from iru_pipeline.evidence.controls import status_with_counts
from iru_pipeline.intercom_source import DATASET_NAME, RESOURCE_NAMES
from iru_pipeline.regions import REGION_CODES, REGIONS

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

    duckdb_path = duckdb_path_from_env()
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with FakeIntercom(seed=7, contacts=contacts, conversations=conversations) as fake:
        for region in REGION_CODES:
            os.environ[REGIONS[region].token_env] = fake.token(region)
            os.environ[REGIONS[region].base_url_env] = fake.base_url(region)
            print(f"fake Intercom {region.upper()}: {fake.base_url(region)}")
        os.environ[DUCKDB_PATH_ENV] = str(duckdb_path)
        os.environ.setdefault(PII_KEY_ENV, DEMO_PII_KEY)
        os.environ.setdefault(EVIDENCE_CONFIG_ENV, str(_demo_evidence_config(duckdb_path.parent, fake)))
        settings = load_settings()
        ensure_writable_database(settings.duckdb_path)
        enable_progress()
        result = run_pipeline(settings)
    print()
    print(format_summary(result))
    print()
    print(loaded_counts(settings.duckdb_path))
    print()
    if not result.failed:
        print(control_tests(settings.duckdb_path))
        print()
        _export(settings)
    print(f"Query it:  make sql   (read-only; or in Python: duckdb.connect('{settings.duckdb_path}', read_only=True)"
          ".sql('select ...').show(), then close it)")
    print(EXAMPLE_SQL)
    return 1 if result.failed else 0


def _demo_evidence_config(data_dir: Path, fake: Any) -> Path:
    return write_demo_evidence_inputs(fake, data_dir / "demo-evidence")


def write_demo_evidence_inputs(fake: Any, folder: Path) -> Path:
    """Evidence parameters and human inputs matching the fake's planted scenario: the internal
    e-mail domain, an HR roster listing every admin (the terminated one as terminated; the
    shared and vendor accounts are not people) and an approved exception for the vendor.
    Returns the TOML file to use as IRU_EVIDENCE_CONFIG."""
    from iru_pipeline.fake_intercom import scenario as sc

    folder.mkdir(parents=True, exist_ok=True)
    facts = fake.workspace(sc.SCENARIO_REGION).scenario
    emails = sorted({a["email"].lower() for r in fake.regions for a in fake.workspace(r).admins()})
    lines = ["email,person_id,status,termination_at"]
    for n, email in enumerate(emails):
        if email == facts.terminated_admin_email:
            terminated = datetime.fromtimestamp(facts.terminated_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(f"{email},P{n},terminated,{terminated}")
        elif email != facts.shared_admin_email and not email.endswith(sc.VENDOR_ADMIN.external_domain):
            lines.append(f"{email},P{n},active,")
    (folder / "roster.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "exceptions.csv").write_text(
        "admin_id,email,region,kind,reason,approved_by,expires_at\n"  # an admin id is only unique per workspace
        f"{facts.vendor_admin_id},,{sc.SCENARIO_REGION},external,Outsourced support,{sc.WORKSPACE_OWNER.email},\n",
        encoding="utf-8")
    config = folder / "evidence.toml"
    config.write_text(
        f'internal_domains = ["{facts.internal_domain}"]\n'
        '[inputs]\nhr_roster = "roster.csv"\naccess_exceptions = "exceptions.csv"\n', encoding="utf-8")
    return config


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


def control_tests(duckdb_path: Path) -> str:
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        rows = con.execute(
            "select test_id, region, status, failing, warnings, population, test_name "
            "from evidence.latest_evidence_control_tests order by test_id, region").fetchall()
    except duckdb.Error:
        return ""
    finally:
        con.close()
    shown = [(t, r, status_with_counts(s, f, w, n), title) for t, r, s, f, w, n, title in rows]
    width = max([len("status"), *(len(s) for _, _, s, _ in shown)]) + 2
    lines = ["control tests (latest evidence run):", f"  {'test':<5}{'region':<7}{'status':<{width}}control"]
    lines += [f"  {t:<5}{r:<7}{s:<{width}}{title}" for t, r, s, title in shown]
    return "\n".join(lines)


def _export(settings: Any) -> None:
    from iru_pipeline.export import export_cli

    export_cli(settings)


if __name__ == "__main__":
    sys.exit(run_demo())
