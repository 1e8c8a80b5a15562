"""The audit window as data (evidence_control_test_history) and report.html, the run as a page.

The history is tested on hand-made control-test results spanning several days (two runs on one
day, a day without a run, a run before the period, a run after the one being derived), with the
expected rows computed here from those results. The report is tested on the hand-made evidence
world: what it shows is read back from its HTML and compared with the evidence rows it came from.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pytest

from iru_pipeline.config import load_settings
from iru_pipeline.evidence import manifest, session
from iru_pipeline.evidence.controls import CONTROL_TESTS
from iru_pipeline.evidence.manifest import verify_chain
from iru_pipeline.evidence.report import REPORT_FILE, render_report
from iru_pipeline.evidence.session import EvidenceRun, derive_all, prepare_connection, run_table_sql
from iru_pipeline.evidence.tables import CHAINED_TABLES, TABLES_BY_NAME
from iru_pipeline.export import export_run, verify_export
from iru_pipeline_tests.helpers import build_world_db, derive_world, world_run, write_world_inputs

HISTORY = "evidence_control_test_history"
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------ history


def _insert_results(con: Any, results: list[tuple[str, datetime, str, str, str]], chained: list[str]) -> None:
    """(run_id, as_of, region, test_id, status) rows of evidence_control_tests, and the runs in
    `chained` (in that order) as written to the manifest table."""
    if results:
        con.executemany(
            "insert into evidence.evidence_control_tests (run_id, as_of, workspace_id, region, status, findings, "
            "test_id, population, failing) values (?, ?, ?, ?, ?, [], ?, 3, ?)",
            [(r, at, f"{reg}01", reg, status, test, 1 if status == "fail" else 0)
             for r, at, reg, test, status in results])
    for run_id in chained:
        con.execute(
            "insert into evidence.evidence_collection_run (run_id, as_of, region, status, manifest_sha256, chain_seq) "
            "select run_id, any_value(as_of), 'us', 'complete', 'hash-' || run_id, "
            "(select coalesce(max(chain_seq), 0) + 1 from evidence.evidence_collection_run) "
            "from evidence.evidence_control_tests where run_id = ? group by run_id", [run_id])


def _expected_history(results: list[tuple[str, datetime, str, str, str]], run_id: str, as_of: datetime,
                      period_start: datetime, prior: set[str]) -> dict[tuple[str, str, date], tuple[str, str | None, int]]:
    """(region, test, day) -> (status, day's last run, runs that day), from first principles:
    only this run and the runs chained before it, with an as_of up to this run's, count."""
    known = [r for r in results if r[1] <= as_of and (r[0] == run_id or r[0] in prior)]
    current = {(reg, test) for r, _, reg, test, _ in results if r == run_id}
    expected = {}
    for region, test in current:
        first = max(min(at.date() for _, at, reg, _, _ in known if reg == region), period_start.date())
        for offset in range((as_of.date() - first).days + 1):
            day = first + timedelta(days=offset)
            that_day = sorted((at, r, status) for r, at, reg, t, status in known
                              if reg == region and t == test and at.date() == day)
            expected[(region, test, day)] = ((that_day[-1][2], that_day[-1][1], len(that_day)) if that_day
                                             else ("no_run", None, 0))
    return expected


def _history(con: Any, run: EvidenceRun) -> list[tuple]:
    prepare_connection(con, run)
    run_table_sql(con, TABLES_BY_NAME[HISTORY])
    return con.execute(
        f"select region, test_id, day, status, day_run_id, runs_that_day, findings, run_id, as_of "
        f"from evidence.{HISTORY} where run_id = ? order by region, test_id, day", [run.run_id]).fetchall()


def test_history_shows_each_days_last_run_and_days_without_a_run(tmp_path: Path) -> None:
    d = [NOON.replace(hour=0) + timedelta(days=k) for k in range(5)]  # five consecutive UTC days
    run_id, as_of = "r4", d[3] + timedelta(hours=23, minutes=59)
    results = [
        ("r0", NOON - timedelta(days=400), "us", "T01", "pass"),     # before the period: bounds it, not shown
        ("r1", d[0] + timedelta(hours=9), "us", "T01", "pass"),
        ("r1", d[0] + timedelta(hours=9), "us", "T02", "fail"),
        ("r2", d[0] + timedelta(hours=21), "us", "T01", "fail"),     # the day's last run wins
        ("r2", d[0] + timedelta(hours=21), "us", "T02", "not_collected"),
        ("r6", d[1] + timedelta(hours=3), "us", "T01", "pass"),      # never reached its manifest: d[1] has no run
        ("r3", d[2] + timedelta(hours=8), "us", "T01", "review"),
        ("r3", d[2] + timedelta(hours=8), "us", "T02", "pass"),
        ("r3", d[2] + timedelta(hours=8), "eu", "T01", "pass"),     # eu evaluated from d[2] on
        (run_id, as_of, "us", "T01", "manual"),
        (run_id, as_of, "us", "T02", "pass"),
        (run_id, as_of, "eu", "T01", "fail"),
        (run_id, as_of, "eu", "T02", "some_new_status"),
        ("r5", d[4] + timedelta(hours=1), "us", "T01", "fail"),      # written earlier, but after this run: ignored
    ]
    chained = ["r0", "r1", "r2", "r3", "r5"]
    db = tmp_path / "history.duckdb"
    settings = load_settings({"IRU_DUCKDB_PATH": str(db)}, require_workspaces=False, require_pii_key=False)
    run = EvidenceRun.from_settings(run_id, as_of, settings)
    con = duckdb.connect(str(db))
    try:
        derive_all(con, EvidenceRun.from_settings("setup", as_of, settings))  # no raw data: empty tables
        _insert_results(con, results, chained)
        got_rows = _history(con, run)
        # This run is chained, then a run of d[2] is written after it: deriving this run again
        # must not see it (its manifest hash, which later runs chain to, would change).
        late = [("r7", d[2] + timedelta(hours=20), "us", "T01", "fail")]
        _insert_results(con, [], [run_id])
        _insert_results(con, late, ["r7"])
        assert _history(con, run) == got_rows
    finally:
        con.close()
    got = {(reg, test, day): (status, day_run, n) for reg, test, day, status, day_run, n, *_ in got_rows}
    assert got == _expected_history(results, run_id, as_of, run.period_start, set(chained))
    assert got[("us", "T01", d[0].date())] == ("fail", "r2", 2)
    assert got[("us", "T01", d[1].date())] == ("no_run", None, 0), "a day without a run is never carried over"
    assert got[("us", "T01", d[2].date())] == ("review", "r3", 1)
    assert got[("eu", "T02", d[3].date())] == ("some_new_status", run_id, 1)
    assert min(day for reg, _, day in got if reg == "eu") == d[2].date()
    assert min(day for reg, _, day in got if reg == "us") == run.period_start.date()
    assert max(day for _, _, day in got) == d[3].date()
    assert {r[6][0] for r in got_rows if r[3] == "no_run"} == {"no evidence run on this day"}
    assert {(r[7], r[8]) for r in got_rows} == {(run_id, as_of)}


def _derive_days(db: Path, files: Any, days_ago: list[int], now: datetime) -> list[str]:
    runs = []
    for k, ago in enumerate(days_ago):
        runs.append(f"run-{k}")
        derive_world(db, world_run(files, runs[-1], now - timedelta(days=ago)))
    return runs


def test_history_of_real_runs_is_chained_and_a_missed_day_shows(tmp_path: Path) -> None:
    db = build_world_db(tmp_path / "iru.duckdb")
    files = write_world_inputs(tmp_path / "inputs")
    now = datetime.now(UTC)
    runs = _derive_days(db, files, [3, 2, 0], now)  # nothing a day ago
    con = duckdb.connect(str(db))
    try:
        assert verify_chain(con) == []
        rows = con.execute(f"select test_id, region, day, status from evidence.{HISTORY} where run_id = ?",
                           [runs[-1]]).fetchall()
        tests = dict(((t, r), s) for t, r, s in con.execute(
            "select test_id, region, status from evidence.evidence_control_tests where run_id = ?",
            [runs[-1]]).fetchall())
        con.execute(f"update evidence.{HISTORY} set status = 'pass' where run_id = ? and status = 'no_run'",
                    [runs[-1]])
        assert any("manifest hash differs" in p for p in verify_chain(con)), "the history is chained"
    finally:
        con.close()
    days = sorted({day for _, _, day, _ in rows})
    assert days == [(now - timedelta(days=k)).date() for k in (3, 2, 1, 0)]
    assert {s for _, _, day, s in rows if day == days[2]} == {"no_run"}
    assert {(t, r): s for t, r, day, s in rows if day == days[3]} == tests
    assert len(rows) == 4 * len(tests) == 4 * 15 * 2


def test_an_old_database_without_the_history_keeps_verifying_after_an_upgrade(tmp_path: Path, monkeypatch) -> None:
    """Runs written before the history table existed do not cover it; their chain still holds."""
    db = build_world_db(tmp_path / "iru.duckdb")
    files = write_world_inputs(tmp_path / "inputs")
    now = datetime.now(UTC)
    old_tables = tuple(t for t in CHAINED_TABLES if t != HISTORY)
    with monkeypatch.context() as old:  # the previous version: no history table, chain without it
        old.setattr(session, "EVIDENCE_TABLES", tuple(t for t in session.EVIDENCE_TABLES if t.name != HISTORY))
        old.setattr(manifest, "table_digests", functools.partial(manifest.table_digests, tables=old_tables))
        derive_world(db, world_run(files, "old-run", now - timedelta(days=1)))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("select count(*) from information_schema.tables where table_name = ?",
                           [HISTORY]).fetchone()[0] == 0
        old_export = export_run(con, "old-run", tmp_path / "exports").folder
    finally:
        con.close()
    derive_world(db, world_run(files, "new-run", now))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert verify_chain(con) == []
        statuses = con.execute(f"select day, count(*) from evidence.{HISTORY} where run_id = 'new-run' "
                               "and status <> 'no_run' group by day order by day").fetchall()
        new_export = export_run(con, "new-run", tmp_path / "exports").folder
    finally:
        con.close()
    assert statuses == [((now - timedelta(days=1)).date(), 30), (now.date(), 30)]
    assert verify_export(old_export) == [] and verify_export(new_export) == []


# ------------------------------------------------------------------------------------ report


class _Page(HTMLParser):
    """The parts of report.html the tests read: grid cells, banners, chart SVGs, references."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str]] = []  # (data-status, class of the status badge)
        self.stack: list[str] = []
        self.in_grid = False
        self.banners: list[str] = []
        self.svgs = Counter[str]()
        self.refs: list[str] = []
        self._section = ""
        self._banner = False
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.in_grid = a.get("id") == "test-grid"
        if self.in_grid and tag == "td" and "data-status" in a:
            self.cells.append((a["data-status"] or "", ""))
        if self.in_grid and tag == "span" and self.cells and not self.cells[-1][1]:
            self.cells[-1] = (self.cells[-1][0], a.get("class") or "")
        if tag == "div" and "banner" in (a.get("class") or ""):
            self._banner, self._text = True, []
        if tag in ("section", "div") and a.get("id"):
            self._section = a["id"] or ""
        if tag == "div" and "history" in (a.get("class") or ""):
            self._section = "history:" + (a.get("aria-label") or "")
        if tag == "svg":
            self.svgs[self._section] += 1
        self.refs += [v for k, v in attrs if k in ("src", "href", "xlink:href") and v]

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_grid = False
        if tag == "div" and self._banner:
            self.banners.append("".join(self._text).strip())
            self._banner = False

    def handle_data(self, data: str) -> None:
        if self._banner:
            self._text.append(data)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The evidence world with three runs (two days ago, yesterday, now); returns db and last run."""
    folder = tmp_path_factory.mktemp("report")
    db = build_world_db(folder / "iru.duckdb")
    files = write_world_inputs(folder / "inputs")
    runs = _derive_days(db, files, [2, 1, 0], datetime.now(UTC))
    return db, runs[-1]


def _render(db: Path, run_id: str, **kwargs: Any) -> tuple[str, _Page]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        html = render_report(con, run_id, **kwargs).decode("utf-8")
    finally:
        con.close()
    page = _Page()
    page.feed(html)
    return html, page


def test_report_is_in_the_export_listed_hashed_and_byte_identical_when_exported_again(world, tmp_path) -> None:
    db, run_id = world
    con = duckdb.connect(str(db), read_only=True)
    try:
        first = export_run(con, run_id, tmp_path / "a").folder
        second = export_run(con, run_id, tmp_path / "b").folder
    finally:
        con.close()
    data = (first / REPORT_FILE).read_bytes()
    assert data == (second / REPORT_FILE).read_bytes()
    assert len(data) < 2_000_000
    files = {f["path"]: f for f in json.loads((first / "manifest.json").read_text())["files"]}
    assert files[REPORT_FILE]["bytes"] == len(data)
    assert f"  {REPORT_FILE}\n" in (first / "SHA256SUMS").read_text()
    assert verify_export(first) == []
    (first / REPORT_FILE).write_bytes(data.replace(b"fail", b"pass"))
    assert f"{REPORT_FILE} does not match its sha256 in SHA256SUMS" in verify_export(first)


def test_report_fetches_nothing_when_opened(world) -> None:
    db, run_id = world
    html, page = _render(db, run_id)
    assert [r for r in page.refs if not r.startswith("#")] == [], "no link, image or script to fetch"
    for pattern in (r"<link\b", r"<img\b", r"<iframe\b", r"@import", r"url\(", r"<script[^>]*\bsrc="):
        assert not re.search(pattern, html, re.I), pattern


def test_grid_shows_every_test_and_workspace_with_its_status(world) -> None:
    db, run_id = world
    con = duckdb.connect(str(db), read_only=True)
    try:
        status = dict(((t, r), s) for t, r, s in con.execute(
            "select test_id, region, status from evidence.evidence_control_tests where run_id = ?", [run_id]).fetchall())
        regions = [r for (r,) in con.execute(
            "select region from evidence.evidence_collection_run where run_id = ? order by region", [run_id]).fetchall()]
    finally:
        con.close()
    _, page = _render(db, run_id)
    expected = [status[(t.test_id, r)] for t in CONTROL_TESTS for r in regions]
    assert [c[0] for c in page.cells] == expected
    known = {"pass", "fail", "review", "manual", "not_applicable", "not_collected"}
    assert [c[1] for c in page.cells] == [f"status s-{s if s in known else 'other'}" for s in expected]
    assert {f"history:history of {t.test_id}" for t in CONTROL_TESTS} <= set(page.svgs)


def test_an_unknown_status_is_drawn_neutrally(world, tmp_path: Path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(world[0], db)
    con = duckdb.connect(str(db))
    con.execute("update evidence.evidence_control_tests set status = 'brand_new' where run_id = ? and test_id = 'T08'",
                [world[1]])
    con.close()
    html, page = _render(db, world[1])
    assert [c for c in page.cells if c[0] == "brand_new"] == [("brand_new", "status s-other")] * 2
    assert "s-brand_new" not in html


def test_banners_say_when_the_host_is_not_intercom_and_the_export_is_not_signed(world, tmp_path: Path) -> None:
    db, run_id = world
    _, page = _render(db, run_id)
    assert not [b for b in page.banners if "Not a production Intercom host" in b], "the world uses Intercom's hosts"
    assert [b for b in page.banners if "does not record a signature" in b]
    _, unsigned = _render(db, run_id, signing={"signed": False})
    assert [b for b in unsigned.banners if b.startswith("Unsigned export")]
    _, signed = _render(db, run_id, signing={"signed": True, "public_key_fingerprint": "sha256:abc"})
    assert [b for b in signed.banners if "sha256:abc" in b]
    copy = tmp_path / "proxy.duckdb"
    shutil.copyfile(db, copy)
    con = duckdb.connect(str(copy))
    con.execute("update evidence.evidence_collection_run set api_host = '127.0.0.1:8080' where region = 'eu'")
    con.close()
    _, proxied = _render(copy, run_id)
    flagged = [b for b in proxied.banners if "Not a production Intercom host" in b]
    assert len(flagged) == 1 and "eu" in flagged[0] and "127.0.0.1:8080" in flagged[0]


def test_login_chart_counts_the_periods_logins_by_sign_in_method(world) -> None:
    from iru_pipeline.evidence.raw import create_raw_views
    from iru_pipeline.evidence.report import _login_rows

    db, run_id = world
    con = duckdb.connect(str(db), read_only=True)
    try:
        start, end = con.execute("select any_value(period_start), any_value(as_of) from "
                                 "evidence.evidence_collection_run where run_id = ?", [run_id]).fetchone()
        logs = con.execute("select workspace_id, activity_type, created_at, metadata from intercom.activity_logs"
                           ).fetchall()
        create_raw_views(con)
        got = _login_rows(con, start, end)
    finally:
        con.close()
    expected = Counter((workspace, (json.loads(meta) if meta else {}).get("sign_in_method") or "unknown")
                       for workspace, kind, at, meta in logs if kind == "admin_login_success" and start <= at <= end)
    assert {(r["workspace_id"], r["method"]): r["logins"] for r in got} == dict(expected)
    assert expected, "the world has logins"


def test_report_holds_contacts_only_as_aggregates(world) -> None:
    db, run_id = world
    html, page = _render(db, run_id)
    con = duckdb.connect(str(db), read_only=True)
    try:
        identifiers = [v for (v,) in con.execute("select email_hmac from intercom.contacts").fetchall() if v and len(v) >= 16]
    finally:
        con.close()
    assert identifiers and not [v for v in identifiers if v in html]
    assert page.svgs["chart-retention"] == 1 and page.svgs["chart-logins"] == 1


def test_history_strip_draws_one_rectangle_per_run_of_equal_days() -> None:
    from iru_pipeline.evidence.report_charts import status_segments

    start = date(2026, 1, 1)
    statuses = ["pass"] * 40 + ["no_run"] + ["pass"] * 3 + ["fail"] * 2 + ["warning"]
    days = [("us", start + timedelta(days=k), s) for k, s in enumerate(statuses)]
    runs: list[list[Any]] = []  # [status, first index, count], computed by walking the days
    for k, s in enumerate(statuses):
        if runs and runs[-1][0] == s:
            runs[-1][2] += 1
        else:
            runs.append([s, k, 1])
    expected = [{"row": "us", "status": s, "key": "other" if s == "warning" else s,
                 "start": (start + timedelta(days=i)).isoformat(), "end": (start + timedelta(days=i + n)).isoformat()}
                for s, i, n in runs]
    assert status_segments(reversed(days)) == expected
    assert len(expected) == 5


def test_more_workspaces_than_chart_rows_are_drawn_together() -> None:
    """Above `CHART_WORKSPACES` a test's history is the number of workspaces per status and
    day, and retention one bar per record type over every workspace (the tables keep each
    workspace's figures)."""
    from datetime import date

    from iru_pipeline.evidence import report_charts as charts
    from iru_pipeline.evidence.report import CHART_WORKSPACES, _retention_together

    n = CHART_WORKSPACES * 2 + 6
    days = [(f"ws{i}", date(2026, 1, 1), "fail" if i % 3 == 0 else "pass") for i in range(n)]
    days += [(f"ws{i}", date(2026, 1, 2), "pass") for i in range(n)]
    spec = charts.status_counts_spec(days, date(2026, 1, 1), date(2026, 1, 2))
    got = {(d["day"], d["status"]): d["workspaces"] for d in spec["data"]["values"]}
    failing = len(range(0, n, 3))
    assert got == {("2026-01-01", "fail"): failing, ("2026-01-01", "pass"): n - failing, ("2026-01-02", "pass"): n}
    assert "<svg" in charts.render(spec)

    rows = [{"object_type": "contact", "median_age_days": m, "oldest_age_days": o, "retention_days": r}
            for m, o, r in ((10, 40, 365), (30, 900, 365), (None, None, 180))]
    assert _retention_together(rows) == [{"record": "all workspaces contact", "median_age_days": 30,
                                          "oldest_age_days": 900, "retention_days": 180}]
