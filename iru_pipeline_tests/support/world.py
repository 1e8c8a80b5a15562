"""The hand-made evidence world (data/evidence/world.sql) and its human inputs, shared by the
evidence and export tests. The world is small and every row is there for a reason (see the
header of world.sql), so tests can state which admin, event or conversation each evidence
row is about."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from iru_pipeline.config import load_settings
from iru_pipeline.evidence.session import EvidenceRun, derive_all
from iru_pipeline.pii_key import bind_pii_key

DATA = Path(__file__).resolve().parents[1] / "data" / "evidence"
WORLD_SQL = DATA / "world.sql"
WORLD_PII_KEY = "b75044242f78d7df591e3cd998434a5999bab30c224118c273127ff949696ca1"  # secrets.token_hex(32)


def build_world_db(path: Path) -> Path:
    """A DuckDB file holding the world's raw tables (schema `intercom`)."""
    con = duckdb.connect(str(path))
    try:
        con.execute(WORLD_SQL.read_text(encoding="utf-8"))
    finally:
        con.close()
    bind_pii_key(path, WORLD_PII_KEY)  # as the ingestion of the world's contacts would have
    return path


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def finding_id(rule: str, region: str, actor: str, first_event: str) -> str:
    """How evidence_high_risk_activity names a finding (stable across runs)."""
    return hashlib.sha256(f"{rule}|{region}|{actor}|{first_event}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WorldFiles:
    config: Path
    roster: Path
    exceptions: Path
    reviews: Path

    def env(self, db: Path) -> dict[str, str]:
        return {"IRU_DUCKDB_PATH": str(db), "IRU_EVIDENCE_CONFIG": str(self.config), "IRU_PII_KEY": WORLD_PII_KEY}


WORLD_EXCEPTIONS = (
    "admin_id,email,workspace_id,kind,reason,approved_by,expires_at\n"
    "6,,us01,external,Outsourced tier-1 support (contract 2024-17),owner@acme.test,\n"
    ",val@partner.test,,privileged,expired approval,owner@acme.test,2020-01-01\n"
)


def write_world_inputs(folder: Path, now: datetime | None = None, reviews: str = "",
                       exceptions: str = WORLD_EXCEPTIONS, extra_config: str = "") -> WorldFiles:
    """The HR roster, approved exceptions, review decisions and the TOML naming them.
    Termination dates are relative to `now`, matching world.sql. `extra_config` is TOML
    placed before the `[inputs]` table."""
    now = now or datetime.now(UTC)
    folder.mkdir(parents=True, exist_ok=True)
    roster = folder / "hr_roster.csv"
    roster.write_text(
        "email,person_id,status,termination_at,department,manager_email,salary_band\n"
        "owner@acme.test,P1,active,,Support,,B4\n"
        "sam@acme.test,P2,active,,Sales,owner@acme.test,B2\n"
        "nina@acme.test,P3,active,,Support,owner@acme.test,B1\n"
        f"Tom@Acme.test,P5,terminated,{_ts(now - timedelta(days=45))},Billing,owner@acme.test,B2\n"
        f"gary@acme.test,P7,terminated,{(now - timedelta(days=52)).date().isoformat()},Support,,B1\n"
        f"lisa@acme.test,P8,terminated,{_ts(now - timedelta(days=40))},Support,,B1\n"
        f"never@acme.test,P9,terminated,{_ts(now - timedelta(days=20))},Support,,B1\n",
        encoding="utf-8",
    )
    exceptions_file = folder / "access_exceptions.csv"
    exceptions_file.write_text(exceptions, encoding="utf-8")
    review_file = folder / "evidence_reviews.csv"
    review_file.write_text("finding_id,decision,reviewed_by,reviewed_at,note,workspace_id\n" + reviews, encoding="utf-8")
    config = folder / "evidence.toml"
    config.write_text(
        'internal_domains = ["acme.test"]\n'
        'approved_attributes = ["plan", "Issue type"]\n'
        + extra_config
        + "[inputs]\n"
        'hr_roster = "hr_roster.csv"\n'
        'access_exceptions = "access_exceptions.csv"\n'
        'evidence_reviews = "evidence_reviews.csv"\n',
        encoding="utf-8",
    )
    return WorldFiles(config, roster, exceptions_file, review_file)


def world_run(files: WorldFiles, run_id: str = "run-1", as_of: datetime | None = None) -> EvidenceRun:
    settings = load_settings(files.env(Path("unused.duckdb")), require_workspaces=False, require_pii_key=False)
    return EvidenceRun.from_settings(run_id, as_of or datetime.now(UTC), settings)


def derive_world(db: Path, run: EvidenceRun) -> str:
    con = duckdb.connect(str(db))
    try:
        return derive_all(con, run)
    finally:
        con.close()
