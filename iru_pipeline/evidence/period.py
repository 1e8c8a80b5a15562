"""The files of a period export (`iru-pipeline export --period START..END`).

A period export is the export of the latest evidence run sealed in the period (its tables,
chained as in every export) plus the audit window as two more tables, read from the stored
runs at export time (docs/evidence.md#the-period-export):

    period/control_test_history.csv|json   per test, workspace and UTC day of the period: the
                                           status of that day's last sealed run, or no_run
    period/findings.csv|json               the run's findings (evidence_findings) detected by
                                           the period end and not resolved before its start

Both are derived from stored, chained rows; they are listed and hashed in manifest.json (and so
signed), outside the hash chain, like report.html. Everything is read from DuckDB, so the same
database and period give the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from iru_pipeline.config import ConfigError
from iru_pipeline.evidence.rendering import TableRows, fetch_table, table_csv, table_json
from iru_pipeline.evidence.tables import CONTROL_DAYS_SQL, MANIFEST_TABLE, SQL_DIR

HISTORY_FILE = "period/control_test_history"
FINDINGS_FILE = "period/findings"
FINDINGS_TABLE = "evidence_findings"
_PERIOD = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    def describe(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_period(text: str) -> Period:
    """`2026-01-01..2026-12-31` (UTC days, both included) -> Period; ConfigError saying what to fix."""
    m = _PERIOD.match(text.strip())
    try:
        if not m:
            raise ValueError
        period = Period(date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2)))
    except ValueError:
        raise ConfigError(f"--period {text!r}: give two UTC dates as YYYY-MM-DD..YYYY-MM-DD "
                          "(e.g. 2026-01-01..2026-12-31)") from None
    if period.start > period.end:
        raise ConfigError(f"--period {text!r}: the start is after the end; give START..END")
    return period


def latest_run_in_period(con: Any, period: Period) -> str:
    """The latest sealed evidence run whose as_of (UTC) falls in the period."""
    exists = con.execute("select count(*) from information_schema.tables where table_schema = 'evidence' "
                         "and table_name = ?", [MANIFEST_TABLE]).fetchone()[0]
    row = con.execute(
        f"select run_id from evidence.{MANIFEST_TABLE} where cast(timezone('UTC', as_of) as date) between ? and ? "
        "order by as_of desc, run_id desc limit 1", [period.start, period.end],
    ).fetchone() if exists else None
    if not row:
        raise ConfigError(f"no evidence run in the period {period.label}: give a period holding a run, or run "
                          "`iru-pipeline run` first")
    return str(row[0])


def period_history(con: Any, period: Period) -> TableRows:
    con.execute("create or replace temp table period_window as select ?::date as start_day, ?::date as end_day",
                [period.start, period.end])
    con.execute(CONTROL_DAYS_SQL.read_text(encoding="utf-8"))
    cur = con.execute((SQL_DIR / "period_history.sql").read_text(encoding="utf-8"))
    columns = [d[0] for d in cur.description]
    return TableRows(HISTORY_FILE, columns, [""] * len(columns), cur.fetchall())


def period_findings(con: Any, run_id: str, period: Period) -> TableRows:
    """The run's findings that were open at some time in the period."""
    t = fetch_table(con, FINDINGS_TABLE, run_id)
    if not t.columns:  # a run written before findings were tracked
        return TableRows(FINDINGS_FILE, [], [], [])
    detected, resolved = t.columns.index("first_detected_at"), t.columns.index("resolved_at")
    rows = [r for r in t.rows if r[detected].date() <= period.end
            and (r[resolved] is None or r[resolved].date() >= period.start)]
    return TableRows(FINDINGS_FILE, t.columns, t.types, rows)


def period_files(con: Any, run_id: str, period: Period) -> dict[str, tuple[TableRows, bytes]]:
    """path -> (rows, bytes) of the period's files, CSV and JSON, in export order."""
    files: dict[str, tuple[TableRows, bytes]] = {}
    for rows in (period_history(con, period), period_findings(con, run_id, period)):
        files[f"{rows.name}.csv"] = (rows, table_csv(rows))
        files[f"{rows.name}.json"] = (rows, table_json(rows))
    return files
