"""The report's charts: Vega-Lite specifications built from evidence rows, rendered to inline SVG.

Rendering goes through `vl-convert-python` (Vega-Lite compiled and drawn by Vega's SVG renderer
inside the package, no browser and no network): the same specification gives the same bytes,
so the report stays part of the deterministic export. Text stays `<text>` in a generic font
family; nothing in the SVG refers to a file or a URL.

Each `*_spec` function is pure (rows in, specification out) so tests can check what a chart
shows without parsing SVG; `render` turns a specification into SVG markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from markupsafe import Markup

STATUS_COLOURS: dict[str, str] = {
    "pass": "#2f8f46",
    "fail": "#c8372d",
    "review": "#e0a100",
    "manual": "#3b6fd4",
    "not_applicable": "#9aa5b1",
    "not_collected": "#8a5a3b",
    "no_run": "#e6e8eb",
    "other": "#c4c4c4",
}
"""Colours of the control-test statuses; `other` is any status this report does not know,
drawn neutrally rather than guessed."""

_FONT = "sans-serif"
_WIDTH = 640


def status_key(status: str | None) -> str:
    """The colour key of a status: itself when known, `other` for anything else."""
    return status if status in STATUS_COLOURS and status != "other" else "other"


def render(spec: dict[str, Any]) -> Markup:
    """A Vega-Lite specification as inline SVG markup (deterministic for a given spec)."""
    import vl_convert

    svg = vl_convert.vegalite_to_svg(spec)
    return Markup(svg)  # noqa: S704 - SVG produced by Vega's renderer, which escapes every text it draws


def _base(data: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": data},
        "config": {"font": _FONT, "view": {"stroke": None}, "axis": {"labelFontSize": 10, "titleFontSize": 11},
                   "legend": {"labelFontSize": 10, "titleFontSize": 11}},
        "background": "white",
        **extra,
    }


def status_segments(days: Iterable[tuple[str, date, str]]) -> list[dict[str, Any]]:
    """(row label, day, status) per day -> runs of consecutive days with the same status, so a
    year of unchanged results is one rectangle, not 365."""
    segments: list[dict[str, Any]] = []
    for label, day, status in sorted(days):
        last = segments[-1] if segments else None
        if last and last["row"] == label and last["status"] == status and last["_end"] == day:
            last["_end"] = day + timedelta(days=1)
            continue
        segments.append({"row": label, "status": status, "_start": day, "_end": day + timedelta(days=1)})
    return [{"row": s["row"], "status": s["status"], "key": status_key(s["status"]),
             "start": s["_start"].isoformat(), "end": s["_end"].isoformat()} for s in segments]


def status_strip_spec(days: Iterable[tuple[str, date, str]], first: date, last: date) -> dict[str, Any]:
    """A strip per row (workspace) over the period's days, coloured by each day's status."""
    segments = status_segments(days)
    rows = sorted({s["row"] for s in segments})
    keys = [k for k in STATUS_COLOURS if any(s["key"] == k for s in segments)]
    return _base(
        segments,
        width=_WIDTH, height=max(16 * len(rows), 16),
        mark={"type": "rect", "stroke": "white", "strokeWidth": 0.5},
        encoding={
            "x": {"field": "start", "type": "temporal", "scale": {"type": "utc", "domain": [
                first.isoformat(), (last + timedelta(days=1)).isoformat()]},
                  "axis": {"title": None, "format": "%Y-%m-%d", "labelOverlap": True,
                           "tickCount": {"interval": "day", "step": max(1, ((last - first).days + 1) // 6)}}},
            "x2": {"field": "end"},
            "y": {"field": "row", "type": "nominal", "sort": rows, "axis": {"title": None}},
            "color": {"field": "key", "type": "nominal", "title": "status",
                      "scale": {"domain": keys, "range": [STATUS_COLOURS[k] for k in keys]}},
            "tooltip": [{"field": "row"}, {"field": "status"}, {"field": "start"}, {"field": "end"}],
        },
    )


def status_counts_spec(days: Iterable[tuple[str, date, str]], first: date, last: date) -> dict[str, Any]:
    """How many workspaces had each status on each day, stacked: the strip of a report over more
    workspaces than rows fit (`report.CHART_WORKSPACES`); the tables keep each workspace's days."""
    counts: dict[tuple[date, str], int] = {}
    for _label, day, status in days:
        counts[(day, status)] = counts.get((day, status), 0) + 1
    data = [{"day": day.isoformat(), "status": status, "key": status_key(status), "workspaces": n}
            for (day, status), n in sorted(counts.items())]
    keys = [k for k in STATUS_COLOURS if any(d["key"] == k for d in data)]
    return _base(
        data,
        width=_WIDTH, height=90,
        mark={"type": "bar"},
        encoding={
            "x": {"field": "day", "type": "ordinal", "timeUnit": "utcyearmonthdate", "title": None,
                  "axis": {"format": "%Y-%m-%d", "labelOverlap": True}},
            "y": {"field": "workspaces", "type": "quantitative", "aggregate": "sum", "title": "workspaces"},
            "color": {"field": "key", "type": "nominal", "title": "status",
                      "scale": {"domain": keys, "range": [STATUS_COLOURS[k] for k in keys]}},
            "tooltip": [{"field": "day"}, {"field": "status"}, {"field": "workspaces"}],
        },
    )


def activity_spec(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Admin activity per week and type (rows: workspace, week, activity_type, events)."""
    return _base(
        list(rows),
        width=_WIDTH, height=110,
        mark={"type": "bar"},
        encoding={
            "row": {"field": "workspace", "type": "nominal", "title": None},
            "x": {"field": "week", "type": "temporal", "scale": {"type": "utc"}, "timeUnit": "utcyearweek",
                  "title": "week (UTC)", "axis": {"format": "%Y-%m-%d", "labelOverlap": True}},
            "y": {"field": "events", "type": "quantitative", "aggregate": "sum", "title": "events"},
            "color": {"field": "activity_type", "type": "nominal", "title": "activity type",
                      "scale": {"scheme": "tableau10"}},
        },
    )


def logins_spec(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Successful admin logins in the period by sign-in method (rows: workspace, method, logins)."""
    return _base(
        list(rows),
        width=_WIDTH - 120, height={"step": 22},
        mark={"type": "bar"},
        encoding={
            "y": {"field": "workspace", "type": "nominal", "title": None},
            "x": {"field": "logins", "type": "quantitative", "aggregate": "sum", "title": "successful logins"},
            "color": {"field": "method", "type": "nominal", "title": "sign-in method",
                      "scale": {"scheme": "set2"}},
        },
    )


def sla_spec(rows: Sequence[dict[str, Any]], due_hours: float, title: str) -> dict[str, Any]:
    """Monthly percentiles per team of a support time against its SLA (dashed red rule)
    (rows: workspace, month, team, measure, hours)."""
    return _base(
        list(rows),
        width=_WIDTH - 120, height=150, title={"text": title, "fontSize": 12, "anchor": "start"},
        layer=[
            {"mark": {"type": "point", "filled": True, "size": 40, "opacity": 0.8},
             "encoding": {
                 "x": {"field": "month", "type": "temporal", "scale": {"type": "utc"}, "timeUnit": "utcyearmonth",
                       "title": "month created (UTC), one point per team", "axis": {"format": "%Y-%m"}},
                 "y": {"field": "hours", "type": "quantitative", "title": "hours"},
                 "color": {"field": "workspace", "type": "nominal", "scale": {"scheme": "dark2"}},
                 "shape": {"field": "measure", "type": "nominal", "title": "percentile"},
                 "tooltip": [{"field": "workspace"}, {"field": "team"}, {"field": "measure"}, {"field": "hours"}],
             }},
            {"data": {"values": [{"due": due_hours}]},
             "mark": {"type": "rule", "color": STATUS_COLOURS["fail"], "strokeDash": [4, 3]},
             "encoding": {"y": {"field": "due", "type": "quantitative"}}},
        ],
    )


def retention_spec(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Age of records against their retention limit per workspace and record type
    (rows: record, median_age_days, oldest_age_days, retention_days)."""
    labels = sorted({r["record"] for r in rows})
    y = {"field": "record", "type": "nominal", "sort": labels, "title": None}
    return _base(
        list(rows),
        width=_WIDTH - 160, height={"step": 20},
        layer=[
            {"mark": {"type": "bar", "color": "#c9d6ea"},
             "encoding": {"y": y, "x": {"field": "oldest_age_days", "type": "quantitative",
                                        "title": "age in days (light: oldest, dark: median; red tick: limit)"}}},
            {"mark": {"type": "bar", "color": "#3b6fd4", "height": 8},
             "encoding": {"y": y, "x": {"field": "median_age_days", "type": "quantitative"}}},
            {"mark": {"type": "tick", "color": STATUS_COLOURS["fail"], "thickness": 3},
             "encoding": {"y": y, "x": {"field": "retention_days", "type": "quantitative"}}},
        ],
    )
