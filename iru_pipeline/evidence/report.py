"""report.html: one evidence run as a page a compliance lead reads without SQL.

One self-contained file (inline CSS, inline SVG charts, a few lines of inline JavaScript to sort
the access review; no font, script, image or style fetched when opened), written into every
export beside the tables (`report_file`) and so by the `evidence/auditor_export` asset.

What it shows, top to bottom: the workspaces, period, parameters and caveats, with banners for
a non-production API host and for a missing signature; the control tests x workspaces grid
coloured by status; per test what it checks, its framework mappings, population, failing and
to-review counts and items, and its history over the period (`evidence_control_test_history`)
as a strip chart; the access review as a sortable table; charts of admin activity by type,
logins by sign-in method, first-reply and resolution times against the SLAs, and record ages
against the retention limits. Contacts appear only as aggregates.

Deterministic: everything comes from DuckDB (this run's evidence rows, and for the activity and
login charts the activity logs between the run's period start and its as_of), rows are sorted,
no clock is read, and the charts render to the same SVG bytes for the same data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from iru_pipeline.evidence import report_charts as charts
from iru_pipeline.evidence.controls import CONTROL_TESTS
from iru_pipeline.evidence.raw import create_raw_views
from iru_pipeline.evidence.rendering import WorkspaceKey, fetch_table, json_value, workspace_key, workspace_label
from iru_pipeline.regions import REGIONS

if TYPE_CHECKING:
    from iru_pipeline.evidence.period import Period
    from iru_pipeline.export import ExportFile

REPORT_FILE = "report.html"
HISTORY_TABLE = "evidence_control_test_history"
TOP_ACTIVITY_TYPES = 8
"""Activity types drawn by name in the activity chart; the rest are summed as `other`."""
_OFFICIAL_HOSTS = frozenset(urlsplit(r.default_base_url).hostname for r in REGIONS.values())
_ACCESS_COLUMNS = (
    "workspace", "admin_id", "admin_name", "admin_email", "role_name", "is_privileged", "team_names",
    "last_activity_at", "last_login_at", "last_sign_in_method", "days_inactive", "staleness",
    "identity_status", "exception_kinds", "status", "findings",
)
_FINDING_COLUMNS = (
    "workspace", "test_id", "finding_kind", "subject_label", "severity", "status", "first_detected_at", "last_seen_at",
    "resolved_at", "resolution", "reviewed_by", "time_to_resolve_hours",
)
_TO_REVIEW_COLUMNS = ("to_review", "review", "reviewing", "warnings")
"""Names the to-review count of a control test may have; the first present is shown."""
CHART_WORKSPACES = 12
"""Up to this many workspaces, the charts draw each one (a row, a bar, a colour); above it they
draw the workspaces together (the history as counts of workspaces per status and day) and the
tables carry each workspace's figures: a row per workspace of 200 is neither readable nor
quick to render (Vega took about 5 s per strip at 200)."""


def _records(con: Any, table: str, run_id: str) -> list[dict[str, Any]]:
    rows = fetch_table(con, table, run_id)
    return [{c: json_value(v, t) for c, v, t in zip(rows.columns, row, rows.types, strict=True)} for row in rows.rows]


def _labelled(rows: list[dict[str, Any]], labels: dict[WorkspaceKey, str]) -> list[dict[str, Any]]:
    """The rows with `workspace`: the label of the run row naming the same workspace."""
    return [dict(r, workspace=labels.get(workspace_key(r)) or workspace_label(r)) for r in rows]


def _to_review(test: dict[str, Any]) -> int | None:
    return next((test[c] for c in _TO_REVIEW_COLUMNS if c in test), None)


def _day(value: str) -> date:
    return date.fromisoformat(value[:10])


def _signature_note(signing: dict[str, Any] | None) -> tuple[str, str]:
    """(banner level, text) for the export's signature, from what the manifest says (if anything)."""
    if signing is None:
        return "warn", ("This report does not record a signature: check the export folder with "
                        "`sha256sum -c SHA256SUMS` and its manifest before relying on it.")
    if not signing.get("signed"):
        return "warn", "Unsigned export: anyone holding the folder could rewrite it and every hash in it."
    fingerprint = signing.get("public_key_fingerprint") or signing.get("key_fingerprint") or "not recorded"
    return "ok", f"Signed export (Ed25519), public key fingerprint {fingerprint}."


def _test_caveats(tests: list[dict[str, Any]]) -> list[str]:
    """Why a test is neither pass nor fail in a workspace (not collected, manual, to review)."""
    return [f"{t['test_id']} ({t['workspace']}, {t['status']}): {'; '.join(t['findings'] or [])}"
            for t in tests if t["status"] not in ("pass", "fail") and t["findings"]]


def _caveats(runs: list[dict[str, Any]]) -> list[str]:
    out = [f"{r['workspace']}: not collected in the latest attempt: {', '.join(r['missing_capabilities'])}"
           for r in runs if r["missing_capabilities"]]
    out += [
        "MFA enforcement is not exposed by the Intercom API: T07 needs a Settings > Security screenshot unless "
        "every login used SSO.",
        "Removal times found from snapshots are upper bounds.",
        "DSAR and security-report timing is only as good as the tagging of conversations.",
        "Days are UTC days; a day without an evidence run is shown as no_run, never as the day before's result.",
    ]
    return out


def _grid(workspaces: list[str], tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(t["test_id"], t["workspace"]): t for t in tests}
    rows = []
    for ct in CONTROL_TESTS:
        cells = []
        for workspace in workspaces:
            t = by_key.get((ct.test_id, workspace))
            status = t["status"] if t else "no_run"
            cells.append({"status": status, "key": charts.status_key(status), "failing": t["failing"] if t else None,
                          "to_review": _to_review(t) if t else None, "population": t["population"] if t else None})
        rows.append({"test": ct, "cells": cells})
    return rows


def _test_sections(workspaces: list[str], tests: list[dict[str, Any]], history: list[dict[str, Any]],
                   period: tuple[date, date]) -> list[dict[str, Any]]:
    sections = []
    for ct in CONTROL_TESTS:
        results = [dict(t, key=charts.status_key(t["status"]), to_review=_to_review(t))
                   for t in tests if t["test_id"] == ct.test_id]
        results.sort(key=lambda t: workspaces.index(t["workspace"]) if t["workspace"] in workspaces
                     else len(workspaces))
        days = [(h["workspace"], _day(h["day"]), h["status"]) for h in history if h["test_id"] == ct.test_id]
        spec = charts.status_strip_spec if len(workspaces) <= CHART_WORKSPACES else charts.status_counts_spec
        strip = charts.render(spec(days, *period)) if days else None
        sections.append({"test": ct, "results": results, "strip": strip})
    return sections


def _activity_rows(con: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = con.execute(
        """with a as (
               select workspace_id, region, date_trunc('week', created_at) as week, activity_type
               from raw_activity_logs where created_at >= ? and created_at <= ?),
           top as (select activity_type from a group by 1 order by count(*) desc, 1 limit ?)
           select workspace_id, region, strftime(week, '%Y-%m-%d') as week,
                  case when activity_type in (select activity_type from top) then activity_type else 'other' end,
                  count(*)
           from a group by all order by all""",
        [start, end, TOP_ACTIVITY_TYPES]).fetchall()
    return [{"workspace_id": i, "region": r, "week": w, "activity_type": t, "events": n} for i, r, w, t, n in rows]


def _login_rows(con: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = con.execute(
        """select workspace_id, region, coalesce(metadata ->> 'sign_in_method', 'unknown') as method, count(*)
           from raw_activity_logs
           where activity_type = 'admin_login_success' and created_at >= ? and created_at <= ?
           group by all order by all""", [start, end]).fetchall()
    return [{"workspace_id": i, "region": r, "method": m, "logins": n} for i, r, m, n in rows]


def _sla_rows(sla: list[dict[str, Any]], measures: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for row in sla:
        if row["request_class"] != "all":
            continue
        for column, label in measures.items():
            if row.get(column) is not None:
                out.append({"workspace": row["workspace"], "month": row["period_month"], "team": row["team_name"] or "",
                            "measure": label, "hours": round(row[column] / 3600, 2)})
    return out


def _retention_rows(retention: list[dict[str, Any]], as_of: datetime) -> list[dict[str, Any]]:
    out = []
    for r in retention:
        oldest = r["oldest_reference_at"]
        oldest_days = (as_of - datetime.fromisoformat(oldest.replace("Z", "+00:00"))).days if oldest else None
        out.append({"record": f"{r['workspace']} {r['object_type']}", "object_type": r["object_type"],
                    "median_age_days": r["median_age_days"],
                    "oldest_age_days": oldest_days, "retention_days": r["retention_days"],
                    "over_retention": r["over_retention"], "population": r["population"]})
    return out


def _retention_together(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One bar per record type over every workspace: the oldest record of any, the largest of
    their medians, the strictest limit."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_type.setdefault(r["object_type"], []).append(r)
    out = []
    for object_type, group in sorted(by_type.items()):
        def top(column: str, group: list[dict[str, Any]] = group) -> Any:
            return max((r[column] for r in group if r[column] is not None), default=None)
        out.append({"record": f"all workspaces {object_type}", "median_age_days": top("median_age_days"),
                    "oldest_age_days": top("oldest_age_days"),
                    "retention_days": min((r["retention_days"] for r in group if r["retention_days"] is not None),
                                          default=None)})
    return out


def _charts(con: Any, run_id: str, first: dict[str, Any], as_of: datetime,
            labels: dict[WorkspaceKey, str]) -> dict[str, Any]:
    start = datetime.fromisoformat(first["period_start"].replace("Z", "+00:00"))
    create_raw_views(con)
    activity = _labelled(_activity_rows(con, start, as_of), labels)
    logins = _labelled(_login_rows(con, start, as_of), labels)
    sla = _labelled(_records(con, "evidence_support_request_sla", run_id), labels)
    params = first["params_json"] or {}
    reply = _sla_rows(sla, {"p50_first_reply_s": "p50", "p90_first_reply_s": "p90"})
    close = _sla_rows(sla, {"p50_time_to_first_close_s": "p50"})
    retention = _retention_rows(_labelled(_records(con, "evidence_data_retention", run_id), labels), as_of)
    render = charts.render
    together = len(labels) > CHART_WORKSPACES
    if together:  # one mark per workspace stops being readable, and Vega renders it for minutes
        everyone = f"all {len(labels)} workspaces"
        activity, logins, reply, close = ([dict(r, workspace=everyone) for r in rows]
                                          for rows in (activity, logins, reply, close))
    return {
        "activity": render(charts.activity_spec(activity)) if activity else None,
        "logins": render(charts.logins_spec(logins)) if logins else None,
        "first_reply": render(charts.sla_spec(reply, params.get("first_reply_sla_hours", 24),
                                              "Time to first admin reply (inbound conversations)")) if reply else None,
        "resolution": render(charts.sla_spec(close, params.get("resolution_sla_hours", 120),
                                             "Time to first close (inbound conversations)")) if close else None,
        "retention": render(charts.retention_spec(_retention_together(retention) if together else retention))
        if retention else None,
        "together": together,
        "retention_rows": retention,
    }


def report_context(con: Any, run_id: str, signing: dict[str, Any] | None = None,
                   period: Period | None = None) -> dict[str, Any]:
    """Everything the template shows, read from DuckDB (the run must have rows: build_export checks).
    `period`: the audit window of a period export, named in the header."""
    con.execute("set TimeZone = 'UTC'")
    runs = [dict(r, workspace=workspace_label(r)) for r in _records(con, "evidence_collection_run", run_id)]
    first = runs[0]
    labels = {workspace_key(r): r["workspace"] for r in runs}
    workspaces = [r["workspace"] for r in runs]
    as_of = datetime.fromisoformat(first["as_of"].replace("Z", "+00:00")).astimezone(UTC)
    tests = _labelled(_records(con, "evidence_control_tests", run_id), labels)
    history = _labelled(_records(con, HISTORY_TABLE, run_id), labels)
    days = sorted({_day(h["day"]) for h in history}) or [as_of.date()]
    access = _labelled(_records(con, "evidence_admin_access_review", run_id), labels)
    columns = [c for c in _ACCESS_COLUMNS if access and c in access[0]]
    hosts = [r for r in runs if (r["api_host"] or "").split(":")[0] not in _OFFICIAL_HOSTS]
    return {
        "run": first, "runs": runs, "workspaces": workspaces,
        "export_period": period.describe() if period is not None else None,
        "params_text": json.dumps(first["params_json"] or {}, indent=2, sort_keys=True, ensure_ascii=False),
        "non_production": hosts,
        "signature": _signature_note(signing),
        "caveats": _caveats(runs),
        "test_caveats": _test_caveats(tests),
        "grid": _grid(workspaces, tests),
        "statuses": [(s, c) for s, c in charts.STATUS_COLOURS.items()],
        "sections": _test_sections(workspaces, tests, history, (days[0], days[-1])),
        "history_days": (days[0].isoformat(), days[-1].isoformat()),
        "access_columns": columns,
        "access_rows": [[_cell(a[c]) for c in columns] for a in access],
        "findings": _findings(con, run_id, labels),
        "charts": _charts(con, run_id, first, as_of, labels),
    }


def _findings(con: Any, run_id: str, labels: dict[WorkspaceKey, str]) -> dict[str, Any]:
    """The findings tracked across runs (evidence_findings; none for a run written before it)."""
    rows = _labelled(_records(con, "evidence_findings", run_id), labels)
    columns = [c for c in _FINDING_COLUMNS if rows and c in rows[0]]
    return {"columns": columns, "rows": [[_cell(r[c]) for c in columns] for r in rows],
            "open": sum(1 for r in rows if r.get("is_open")),
            "reviewed": sum(1 for r in rows if r.get("resolution") == "reviewed"),
            "gone": sum(1 for r in rows if r.get("resolution") == "gone_from_the_data")}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("iru_pipeline.evidence", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["joined"] = lambda v: ", ".join(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
    return env


def render_report(con: Any, run_id: str, signing: dict[str, Any] | None = None,
                  period: Period | None = None) -> bytes:
    """report.html of one evidence run, as bytes (UTF-8). `signing` is the manifest's signature
    entry when the export is signed or known to be unsigned; None says nothing is known."""
    html = _environment().get_template("report.html.j2").render(**report_context(con, run_id, signing, period))
    return html.encode("utf-8")


def report_file(con: Any, run_id: str, signing: dict[str, Any] | None = None,
                period: Period | None = None) -> ExportFile:
    """report.html as a file of the run's export (listed and hashed like every other file)."""
    from iru_pipeline.export import ExportFile  # export.py builds the folder and imports this module

    return ExportFile(REPORT_FILE, render_report(con, run_id, signing, period))
