"""The auditor export: one folder per evidence run (evidence-research §6).

    <out>/<as_of, UTC>_<run_id>/
        manifest.json     run, workspaces (region, API host and version), period, parameters hash,
                          PII mode, inputs, streams, tests, files (rows, columns, bytes, sha256),
                          and the hash chain (this run's and the previous run's manifest hash)
        SHA256SUMS        every other file; verify with `sha256sum -c SHA256SUMS`
        summary.md        the tests table per workspace and the caveats, for a person to read
        report.html       the run as a page with charts, self-contained (evidence/report.py)
        params.json       the parameters the run used
        tables/<t>.csv    one per evidence table, RFC 4180
        tables/<t>.json   the same rows, typed

Everything is read from DuckDB, nothing from the clock or the machine exporting, so exporting
a run twice gives the same bytes. The CSV files are the bytes the run's manifest hash was
computed over at collection time: `verify_export` recomputes the chain from the folder alone.
What is exported is what the evidence tables hold: admins in clear, contacts only as
aggregates; no token, no PII key (only its fingerprint).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from iru_pipeline.config import ConfigError, Settings
from iru_pipeline.evidence.controls import CONTROL_TESTS
from iru_pipeline.evidence.manifest import (
    TableRows,
    chained_tables,
    fetch_table,
    json_value,
    manifest_sha256,
    sha256_hex,
    table_csv,
    table_json,
    verify_chain,
)
from iru_pipeline.evidence.report import report_file
from iru_pipeline.evidence.tables import EVIDENCE_TABLES, MANIFEST_TABLE

EXPORT_SCHEMA = "iru-evidence-export/1"
SUMS_FILE = "SHA256SUMS"
_SUMS_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


@dataclass(frozen=True)
class ExportFile:
    path: str
    data: bytes
    table: str | None = None
    rows: int | None = None
    columns: list[str] | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "bytes": len(self.data), "sha256": sha256_hex(self.data)}
        if self.table is not None:
            out.update(table=self.table, rows=self.rows, columns=self.columns)
        return out


@dataclass
class ExportResult:
    folder: Path
    files: list[ExportFile] = field(default_factory=list)
    manifest_sha256: str | None = None


def latest_run_id(con: Any) -> str | None:
    if not _has_table(con, MANIFEST_TABLE):
        return None
    row = con.execute(f"select arg_max(run_id, as_of) from evidence.{MANIFEST_TABLE}").fetchone()
    return row[0] if row else None


def has_run(con: Any, run_id: str) -> bool:
    """Whether the run wrote its collection manifest (i.e. there is something to export)."""
    return _has_table(con, MANIFEST_TABLE) and bool(con.execute(
        f"select count(*) from evidence.{MANIFEST_TABLE} where run_id = ?", [run_id]).fetchone()[0])


def _has_table(con: Any, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = 'evidence' and table_name = ?", [table]
    ).fetchone()[0])


def build_export(con: Any, run_id: str) -> tuple[str, list[ExportFile], str | None]:
    """The folder name and the files of one run's export (not written)."""
    con.execute("set TimeZone = 'UTC'")
    run = fetch_table(con, MANIFEST_TABLE, run_id) if _has_table(con, MANIFEST_TABLE) else None
    if run is None or not run.rows:
        raise ConfigError(f"no evidence run {run_id!r} in the database: list runs with "
                          f"`select distinct run_id, as_of from evidence.{MANIFEST_TABLE} order by as_of`")
    tables = {t.name: fetch_table(con, t.name, run_id) for t in EVIDENCE_TABLES}
    files: list[ExportFile] = []
    for t in EVIDENCE_TABLES:
        rows = tables[t.name]
        files.append(ExportFile(f"tables/{t.name}.csv", table_csv(rows), t.name, len(rows.rows), rows.columns))
        files.append(ExportFile(f"tables/{t.name}.json", table_json(rows), t.name, len(rows.rows), rows.columns))
    runs = _records(tables[MANIFEST_TABLE])
    first = runs[0]
    params = first["params_json"] or {}
    files.append(ExportFile("params.json", _pretty_json(params)))
    files.append(report_file(con, run_id))
    manifest = _manifest(first, runs, tables, files)
    files.append(ExportFile("manifest.json", _pretty_json(manifest)))
    files.append(ExportFile("summary.md", _summary(first, runs, tables, files).encode("utf-8")))
    sums = "".join(f"{sha256_hex(f.data)}  {f.path}\n" for f in sorted(files, key=lambda f: f.path))
    files.append(ExportFile(SUMS_FILE, sums.encode("utf-8")))
    folder = f"{datetime.fromisoformat(first['as_of'].replace('Z', '+00:00')):%Y%m%dT%H%M%SZ}_{run_id}"
    return folder, files, first["manifest_sha256"]


def export_run(con: Any, run_id: str, out_dir: Path) -> ExportResult:
    """Write one run's export folder under `out_dir`, replacing an earlier export of the run."""
    name, files, digest = build_export(con, run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        for f in files:
            path = staging / f.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.data)
        if target.exists():
            shutil.rmtree(target)  # an export is regenerated whole: no stale or edited file survives
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(target, files, digest)


def export_cli(settings: Settings, out: str | None = None, run_id: str | None = None) -> int:
    """`iru-pipeline export [--out DIR] [--run RUN_ID]`."""
    import duckdb

    db = settings.duckdb_path
    if not db.exists():
        raise ConfigError(f"IRU_DUCKDB_PATH={db} does not exist: run `iru-pipeline run` (or `iru-pipeline demo`) first")
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        print(f"iru-pipeline: cannot open {db}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 1
    try:
        chosen = run_id or latest_run_id(con)
        if chosen is None:
            raise ConfigError(f"no evidence run in {db}: run `iru-pipeline run` (or `iru-pipeline demo`) first")
        problems = verify_chain(con)
        result = export_run(con, chosen, Path(out).expanduser() if out else settings.exports_dir)
    finally:
        con.close()
    print(f"exported evidence run {chosen}: {len(result.files)} files in {result.folder}")
    print(f"verify: cd {result.folder} && sha256sum -c {SUMS_FILE}")
    for problem in problems:
        print(f"iru-pipeline: evidence chain broken: {problem}", file=sys.stderr)
    return 1 if problems else 0


def verify_export(folder: Path) -> list[str]:
    """Check an export folder against its SHA256SUMS and manifest, and recompute the manifest
    hash from the table files. Returns the problems found (empty: intact)."""
    problems: list[str] = []
    sums_path = folder / SUMS_FILE
    if not sums_path.is_file():
        return [f"{SUMS_FILE} is missing"]
    listed: dict[str, str] = {}
    for number, line in enumerate(sums_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        m = _SUMS_LINE.match(line)
        if not m:
            problems.append(f"{SUMS_FILE} line {number} is malformed")
            continue
        listed[m.group(2)] = m.group(1)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {SUMS_FILE}
    for path in sorted(present - listed.keys()):
        problems.append(f"{path} is not listed in {SUMS_FILE}")
    for path, digest in sorted(listed.items()):
        file = folder / path
        if not file.is_file():
            problems.append(f"{path} is listed but missing")
        elif sha256_hex(file.read_bytes()) != digest:
            problems.append(f"{path} does not match its sha256")
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return problems + ["manifest.json is missing or not JSON"]
    manifest_files = {f.get("path"): f for f in manifest.get("files", []) if isinstance(f, dict)}
    for path, entry in sorted(manifest_files.items()):
        file = folder / str(path)
        if not file.is_file() or sha256_hex(file.read_bytes()) != entry.get("sha256"):
            problems.append(f"{path} does not match manifest.json")
    chain = manifest.get("chain", {})
    tables = {t: sha256_hex((folder / f"tables/{t}.csv").read_bytes()) if (folder / f"tables/{t}.csv").is_file() else None
              for t in chained_tables(chain.get("tables_sha256"))}
    if tables != chain.get("tables_sha256"):
        problems.append("table files do not match the hashes recorded at collection time")
    try:
        recomputed = manifest_sha256(
            manifest["run_id"], datetime.fromisoformat(manifest["as_of"].replace("Z", "+00:00")),
            manifest["params_sha256"], chain.get("previous_manifest_sha256"), chain.get("tables_sha256") or {})
    except (KeyError, TypeError, ValueError):
        recomputed = None
    if recomputed != chain.get("manifest_sha256"):
        problems.append("manifest hash does not match its recorded inputs")
    return problems


# ----------------------------------------------------------------------------- contents


def _records(t: TableRows) -> list[dict[str, Any]]:
    return [{c: json_value(v, typ) for c, v, typ in zip(t.columns, row, t.types)} for row in t.rows]


def _pretty_json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _manifest(first: dict[str, Any], runs: list[dict[str, Any]], tables: dict[str, TableRows],
              files: list[ExportFile]) -> dict[str, Any]:
    streams = _records(tables["evidence_collection_stream"])
    tests = _records(tables["evidence_control_tests"])
    return {
        "schema_version": EXPORT_SCHEMA,
        "run_id": first["run_id"],
        "as_of": first["as_of"],
        "generator": {"name": "iru-pipeline", "version": first["tool_version"], "python": first["python_version"],
                      "duckdb": first["duckdb_version"], "dagster": first["dagster_version"], "dlt": first["dlt_version"]},
        "collected": {
            "collector_host": first["collector_host"],
            "started_at": min((r["collection_started_at"] for r in runs if r["collection_started_at"]), default=None),
            "finished_at": max((r["collection_finished_at"] for r in runs if r["collection_finished_at"]), default=None),
        },
        "period": {"start": first["period_start"], "end": first["period_end"]},
        "workspaces": [
            {"region": r["region"], "id": r["workspace_id"], "name": r["workspace_name"],
             "reported_region": r["reported_region"], "api_host": r["api_host"], "api_version": r["api_version"],
             "token_admin_id": r["token_admin_id"], "collection_status": r["status"],
             "missing_capabilities": r["missing_capabilities"]}
            for r in runs
        ],
        "params_sha256": first["params_sha256"],
        "pii_mode": first["pii_mode"],
        "hmac_key_id": first["hmac_key_id"],
        "inputs": first["inputs_json"] or [],
        "streams": [
            {k: s[k] for k in ("region", "stream", "status", "endpoint", "scope_required", "mode", "window_start",
                               "window_end", "cursor_before", "cursor_after", "rows_loaded", "api_calls",
                               "api_retries", "api_429s", "error_code", "fields_dropped")}
            for s in streams
        ],
        "tests": [
            {k: t[k] for k in ("region", "test_id", "test_name", "status", "population", "failing", "warnings")}
            for t in tests
        ],
        "files": [f.describe() for f in files],
        "chain": {
            "algorithm": "manifest_sha256 = sha256 of the canonical JSON (sorted keys, no spaces) of {schema: "
                         "'iru-evidence-manifest/1', run_id, as_of, params_sha256, previous_manifest_sha256, "
                         "tables: {table: sha256 of tables/<table>.csv}}",
            "tables_sha256": first["tables_sha256"],
            "previous_manifest_sha256": first["previous_manifest_sha256"],
            "manifest_sha256": first["manifest_sha256"],
        },
    }


def _md(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table_md(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return lines


def _summary(first: dict[str, Any], runs: list[dict[str, Any]], tables: dict[str, TableRows],
             files: list[ExportFile]) -> str:
    tests = _records(tables["evidence_control_tests"])
    regions = [r["region"] for r in runs]
    by_test: dict[str, dict[str, dict[str, Any]]] = {}
    for t in tests:
        by_test.setdefault(t["test_id"], {})[t["region"]] = t
    lines = [
        f"# Intercom compliance evidence: run {first['run_id']}",
        "",
        f"- Evidence as of: {first['as_of']} (UTC)",
        f"- Period evaluated: {first['period_start']} to {first['period_end']}",
        f"- Parameters: sha256 `{first['params_sha256']}` (params.json)",
        f"- PII mode: {first['pii_mode']}: contacts appear only as aggregates; contact identifiers are stored as "
        f"keyed HMAC pseudonyms (key fingerprint `{first['hmac_key_id'] or 'not recorded'}`); admins are in clear",
        f"- Manifest sha256 `{first['manifest_sha256']}`, previous run `{first['previous_manifest_sha256'] or 'none'}`",
        "",
        "## Workspaces",
        "",
        *_table_md(["region", "workspace", "name", "reported region", "API host", "API version", "collection",
                    "missing"],
                   [[r["region"], r["workspace_id"], r["workspace_name"], r["reported_region"], r["api_host"],
                     r["api_version"], r["status"], r["missing_capabilities"]] for r in runs]),
        "",
        "## Control tests",
        "",
        "Status per workspace, with failing / population where a test failed or warned.",
        "",
    ]
    rows = []
    for test in CONTROL_TESTS:
        cells = []
        for region in regions:
            t = by_test.get(test.test_id, {}).get(region)
            if t is None:
                cells.append("")
            elif t["status"] in ("fail", "warning"):
                cells.append(f"{t['status']} ({t['failing'] + t['warnings']}/{t['population']})")
            else:
                cells.append(t["status"])
        rows.append([test.test_id, test.name, *cells, ", ".join(test.soc2), ", ".join(test.iso27001),
                     ", ".join(test.gdpr)])
    lines += _table_md(["test", "control", *regions, "SOC 2", "ISO 27001", "GDPR"], rows)
    lines += ["", "## Caveats", ""]
    caveats = []
    for t in tests:
        if t["status"] in ("not_collected", "manual") or (t["status"] == "warning" and t["findings"]):
            caveats.append(f"{t['test_id']} ({t['region']}, {t['status']}): {'; '.join(t['findings'])}")
    for r in runs:
        if r["missing_capabilities"]:
            caveats.append(f"{r['region']}: not collected in the latest attempt: {', '.join(r['missing_capabilities'])}")
    caveats += [
        "MFA enforcement is not exposed by the Intercom API: T07 needs a Settings > Security screenshot showing "
        "the URL and the date unless every login used SSO.",
        "Removal times found from snapshots are upper bounds (between `last_present_at` and `removal_detected_at`).",
        "DSAR and security-report timing is only as good as the tagging of conversations.",
        "Admins who were removed before the first collection have no snapshot history.",
    ]
    lines += [f"- {c}" for c in caveats]
    lines += ["", "## Files", ""]
    lines += _table_md(["file", "rows", "sha256"],
                       [[f.path, "" if f.rows is None else f.rows, sha256_hex(f.data)] for f in files])
    lines += ["", "## Verify", "", "```", f"sha256sum -c {SUMS_FILE}", "```", ""]
    return "\n".join(lines)
