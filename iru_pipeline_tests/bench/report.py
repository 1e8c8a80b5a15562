"""The printed table, the targets and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from iru_pipeline_tests.bench.proc import REPO_ROOT

PACKAGES = ("iru-pipeline", "dlt", "dagster", "dagster-dlt", "duckdb", "pyarrow", "httpx", "orjson")
ROWS_PER_CALL = 150


def ceiling_rows_per_s(rate_limit: int) -> float | None:
    """What the fake's limit allows: L requests per 10-second window, 150 rows each."""
    return rate_limit / 10 * ROWS_PER_CALL if rate_limit > 0 else None


def machine_info() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    mem_kb = None
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(fh.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as fh:
            cpu_model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), None)
    except OSError:
        pass
    return {
        "cores": os.cpu_count(), "cpu_model": cpu_model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
        "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# ------------------------------------------------------------------------------- the table

COLUMNS = (
    ("scenario", 40, "<"), ("rows", 9, ">"), ("wall s", 8, ">"), ("rows/s", 8, ">"), ("extr s", 7, ">"),
    ("norm s", 7, ">"), ("load s", 7, ">"), ("API", 6, ">"), ("RSS MB", 7, ">"), ("ceil", 6, ">"),
    ("target", 22, "<"), ("verdict", 7, "<"),
)


def _fmt(value: Any, kind: str = "") -> str:
    if value is None or value == "":
        return "-"
    if kind == "ratio":
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    header = " ".join(f"{name:{align}{width}}" for name, width, align in COLUMNS)
    lines = [header, "-" * len(header)]
    for r in rows:
        cells = [r["name"], _fmt(r.get("rows")), _fmt(r.get("wall_s")), _fmt(r.get("rows_per_s")),
                 _fmt(r.get("extract_s")), _fmt(r.get("normalize_s")), _fmt(r.get("load_s")),
                 _fmt(r.get("api_calls")), _fmt(r.get("peak_rss_mb")), _fmt(r.get("ceiling_ratio"), "ratio"),
                 r.get("target") or "-", r.get("verdict") or "-"]
        line = " ".join(f"{str(c)[:w]:{a}{w}}" for c, (_, w, a) in zip(cells, COLUMNS))
        lines.append(line.rstrip())
        if r.get("note"):
            lines.append(f"{'':4}{r['note']}")
    return "\n".join(lines)


def format_targets(targets: list[dict[str, Any]]) -> str:
    lines = ["targets:"]
    for t in targets:
        lines.append(f"  {t['verdict']:<5} {t['name']}: {t['measured']}  (target {t['target']}; {t['scenario']})")
    return "\n".join(lines)


def write_json(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"bench-{stamp}.json"
    text = json.dumps(report, indent=1, default=str)
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path
