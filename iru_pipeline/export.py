"""The auditor export: one folder per evidence run.

    <out>/<as_of, UTC>_<run_id>/
        tables/<t>.csv    one per evidence table, RFC 4180
        tables/<t>.json   the same rows, typed
        params.json       the parameters the run used
        summary.md        the tests table per workspace and the caveats, for a person to read
        report.html       the run as a page with charts, self-contained (evidence/report.py)
        period/*          with --period only: the control-test history and the findings over the
                          period (evidence/period.py), in `period_<start>-<end>_<as_of>_<run_id>/`
        (any other file added to `files` in build_export is listed the same way)
        manifest.json     run, workspaces (region, API host and version), period, parameters hash,
                          PII mode, inputs, streams, proofs of collection, tests, every file above
                          (bytes, sha256; rows and columns for tables), the signing key's
                          fingerprint and the hash chain
        manifest.sig      Ed25519 signature of manifest.json (only with IRU_SIGNING_KEY_FILE)
        SHA256SUMS        every other file; `sha256sum -c SHA256SUMS`

Everything is read from DuckDB, nothing from the clock or the machine exporting, so exporting
a run twice gives the same bytes (Ed25519 signatures are deterministic). The table files,
params.json and summary.md (less the header the export adds: signing notice and manifest hash;
evidence/summary.py) are the bytes the run's chained manifest hash was computed over at
collection time (manifest.py), so `iru-pipeline verify` recomputes the chain from the folder
alone. report.html, period/* and manifest.json are rendered here, outside the chain.
What is exported is what the evidence tables hold: admins in clear, contacts only as
aggregates; no token, no PII key (only its fingerprint), no signing key (only its public
fingerprint).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iru_pipeline.config import ConfigError, Settings
from iru_pipeline.evidence.manifest import (
    CHAIN_VERSION,
    MANIFEST_SCHEMA,
    MANIFEST_SCHEMA_V2,
    MANIFEST_SCHEMA_V3,
    content_files,
    pinned_columns,
    run_tables,
    stored_documents,
    verify_chain,
)
from iru_pipeline.evidence.period import Period, latest_run_in_period, parse_period, period_files
from iru_pipeline.evidence.rendering import TableRows, pretty_json, sha256_hex
from iru_pipeline.evidence.report import report_file
from iru_pipeline.evidence.signing import ALGORITHM, SIGNATURE_FILE, Signer
from iru_pipeline.evidence.summary import SUMMARY_FILE, export_header, records, summary_document, with_header
from iru_pipeline.evidence.tables import MANIFEST_TABLE, PROOF_TABLE
from iru_pipeline.export_verify import MANIFEST_FILE, SUMS_FILE, verify_export
from iru_pipeline.intercom_client.proofs import is_intercom_api_host

EXPORT_SCHEMA = "iru-evidence-export/2"
__all__ = ["build_export", "export_cli", "export_run", "verify_export"]


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


def build_export(con: Any, run_id: str, signer: Signer | None = None, period: Period | None = None
                 ) -> tuple[str, list[ExportFile], str | None]:
    """The folder name and the files of one run's export (not written). With a signer, the
    manifest records its public key's fingerprint and `manifest.sig` signs manifest.json. With a
    period, the period's files (evidence/period.py) are added and named in the manifest."""
    con.execute("set TimeZone = 'UTC'")
    if not has_run(con, run_id):
        raise ConfigError(f"no evidence run {run_id!r} in the database: list runs with "
                          f"`select distinct run_id, as_of from evidence.{MANIFEST_TABLE} order by as_of`")
    tables = run_tables(con, run_id, pinned_columns(con, run_id))
    runs = _records(tables[MANIFEST_TABLE])
    first = runs[0]
    files: list[ExportFile] = []
    content = content_files(tables)
    for path, data in content.items():
        name = path.removeprefix("tables/").rpartition(".")[0] if path.startswith("tables/") else None
        rows = tables[name] if name else None
        files.append(ExportFile(path, data, name, None if rows is None else len(rows.rows),
                                None if rows is None else rows.columns))
    if period is not None:
        for path, (rows, data) in period_files(con, run_id, period).items():
            files.append(ExportFile(path, data, path.rpartition(".")[0], len(rows.rows), rows.columns))
    signing = {"signed": signer is not None, "public_key_fingerprint": signer.fingerprint if signer else None}
    files.append(report_file(con, run_id, signing, period))
    # Chain version 3 on: the summary stored when the run was sealed (and chained); before, rendered now.
    document = stored_documents(con, run_id).get(SUMMARY_FILE)
    text = document.decode("utf-8") if document is not None else summary_document(tables, content)
    header = export_header(signer.fingerprint if signer else None, first["manifest_sha256"])
    files.append(ExportFile(SUMMARY_FILE, with_header(text, header).encode("utf-8")))
    # Every file appended to `files` before this line, whatever it is, is listed and hashed in
    # manifest.json, so the signature covers it and `verify` checks it.
    manifest = _pretty_json(_manifest(first, runs, tables, files, signer, period))
    files.append(ExportFile(MANIFEST_FILE, manifest))
    if signer is not None:
        files.append(ExportFile(SIGNATURE_FILE, signer.sign(manifest)))
    sums = "".join(f"{sha256_hex(f.data)}  {f.path}\n" for f in sorted(files, key=lambda f: f.path))
    files.append(ExportFile(SUMS_FILE, sums.encode("utf-8")))
    folder = export_folder_name(datetime.fromisoformat(first["as_of"].replace("Z", "+00:00")), run_id)
    if period is not None:
        folder = f"period_{period.start:%Y%m%d}-{period.end:%Y%m%d}_{folder}"
    return folder, files, first["manifest_sha256"]


def export_folder_name(as_of: datetime, run_id: str) -> str:
    """`<as_of, UTC>_<run_id>`: the run's export folder (the asset checks link its report)."""
    return f"{as_of.astimezone(UTC):%Y%m%dT%H%M%SZ}_{run_id}"


def export_run(con: Any, run_id: str, out_dir: Path, signer: Signer | None = None,
               period: Period | None = None) -> ExportResult:
    """Write one run's export folder under `out_dir`, replacing an earlier export of the run
    (with `period`, of the run and period)."""
    name, files, digest = build_export(con, run_id, signer, period)
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


def export_cli(settings: Settings, out: str | None = None, run_id: str | None = None,
               period_text: str | None = None) -> int:
    """`iru-pipeline export [--out DIR] [--run RUN_ID | --period START..END]`: signed when
    IRU_SIGNING_KEY_FILE is set. With a period, the latest run in it and the audit window."""
    import duckdb

    from iru_pipeline.storage import reading_database

    if period_text is not None and run_id is not None:
        raise ConfigError("give --run or --period, not both: a period export holds the latest run in the period")
    period = parse_period(period_text) if period_text is not None else None
    signer = settings_signer(settings)
    db = settings.duckdb_path
    if not db.exists():
        raise ConfigError(f"IRU_DUCKDB_PATH={db} does not exist: run `iru-pipeline run` (or `iru-pipeline demo`) first")
    try:
        # Read inside the DuckDB turn: an export during a run waits for its step, never breaks it.
        with reading_database(db, log=lambda line: print(f"iru-pipeline: {line}", file=sys.stderr)) as con:
            chosen = latest_run_in_period(con, period) if period is not None else run_id or latest_run_id(con)
            if chosen is None:
                raise ConfigError(f"no evidence run in {db}: run `iru-pipeline run` (or `iru-pipeline demo`) first")
            problems = verify_chain(con)
            result = export_run(con, chosen, Path(out).expanduser() if out else settings.exports_dir, signer, period)
    except duckdb.Error as exc:
        print(f"iru-pipeline: cannot read {db}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 1
    window = f" with the period {period.label}" if period is not None else ""
    print(f"exported evidence run {chosen}{window}: {len(result.files)} files in {result.folder}")
    if signer is None:
        print("not signed: set IRU_SIGNING_KEY_FILE (see `iru-pipeline keygen`) to sign exports")
    else:
        print(f"signed with Ed25519 key {signer.fingerprint}")
    print(f"verify: iru-pipeline verify {result.folder}{' --public-key KEY.pub' if signer else ''}")
    print(f"    or: cd {result.folder} && sha256sum -c {SUMS_FILE}")
    for problem in problems:
        print(f"iru-pipeline: evidence chain broken: {problem}", file=sys.stderr)
    return 1 if problems else 0


def settings_signer(settings: Settings) -> Signer | None:
    """The export signer named by IRU_SIGNING_KEY_FILE (None: exports are unsigned)."""
    from iru_pipeline.evidence.signing import load_signer

    if settings.signing_key_file is None:
        return None
    return load_signer(settings.signing_key_file, settings.data_dir)


# ----------------------------------------------------------------------------- contents


_records = records


_pretty_json = pretty_json


def _manifest(first: dict[str, Any], runs: list[dict[str, Any]], tables: dict[str, TableRows],
              files: list[ExportFile], signer: Signer | None, period: Period | None = None) -> dict[str, Any]:
    tests = _records(tables["evidence_control_tests"])
    manifest: dict[str, Any] = {
        "schema_version": EXPORT_SCHEMA,
        "run_id": first["run_id"],
        "as_of": first["as_of"],
        "generator": {"name": "iru-pipeline", "version": first["tool_version"], "python": first["python_version"],
                      "duckdb": first["duckdb_version"], "dagster": first["dagster_version"],
                      "dlt": first["dlt_version"]},
        "collected": _collected(first, runs),
        "period": {"start": first["period_start"], "end": first["period_end"]},
        "workspaces": [_workspace(r) for r in runs],
        "params_sha256": first["params_sha256"],
        "pii_mode": first["pii_mode"],
        "hmac_key_id": first["hmac_key_id"],
        "inputs": first["inputs_json"] or [],
        **_streams_and_proofs(tables),
        "tests": [
            {k: t.get(k) for k in ("workspace_id", "region", "test_id", "test_name", "status", "population", "failing",
                                   "warnings")}
            for t in tests
        ],
        "files": [f.describe() for f in files],
        "signing": _signing(signer),
        "chain": _chain(first),
    }
    if period is not None:  # the audit window exported beside the run (evidence/period.py)
        manifest["export_period"] = {**period.describe(), "latest_run_id": first["run_id"],
                                     "files": sorted(f.path for f in files if f.path.startswith("period/"))}
    return manifest


def _collected(first: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    started = [r["collection_started_at"] for r in runs if r["collection_started_at"]]
    finished = [r["collection_finished_at"] for r in runs if r["collection_finished_at"]]
    return {"collector_host": first["collector_host"], "started_at": min(started, default=None),
            "finished_at": max(finished, default=None)}


def _workspace(r: dict[str, Any]) -> dict[str, Any]:
    return {"region": r["region"], "id": r["workspace_id"], "name": r["workspace_name"],
            "reported_region": r["reported_region"], "api_host": r["api_host"], "api_version": r["api_version"],
            "official_intercom_host": is_intercom_api_host(r["api_host"]),
            "token_admin_id": r["token_admin_id"], "collection_status": r["status"],
            "missing_capabilities": r["missing_capabilities"]}


_STREAM_KEYS = ("workspace_id", "region", "stream", "status", "endpoint", "scope_required", "mode", "window_start",
                "window_end", "cursor_before", "cursor_after", "rows_loaded", "api_calls", "api_retries", "api_429s",
                "error_code", "fields_dropped")
_PROOF_KEYS = ("workspace_id", "region", "endpoint", "resource", "received_at", "api_base_url", "http_status",
               "request_id", "body_sha256", "body_bytes")


def _streams_and_proofs(tables: dict[str, TableRows]) -> dict[str, Any]:
    streams = _records(tables["evidence_collection_stream"])
    proofs = _records(tables[PROOF_TABLE]) if PROOF_TABLE in tables else []
    return {"streams": [{k: s[k] for k in _STREAM_KEYS} for s in streams],
            "collection_proofs": [{k: p[k] for k in _PROOF_KEYS} for p in proofs]}


def _signing(signer: Signer | None) -> dict[str, Any] | None:
    if signer is None:
        return None
    return {"algorithm": ALGORITHM, "public_key_sha256": signer.fingerprint, "signature_file": SIGNATURE_FILE,
            "signs": MANIFEST_FILE}


def _chain(first: dict[str, Any]) -> dict[str, Any]:
    """How this run's stored manifest hash is computed, with its inputs (manifest.py)."""
    link = {"previous_manifest_sha256": first["previous_manifest_sha256"],
            "manifest_sha256": first["manifest_sha256"]}
    version = first.get("chain_version")
    if version in (2, CHAIN_VERSION):
        summary = (f", and {SUMMARY_FILE} without the export header (the signing notice and this run's manifest "
                   "hash, the two paragraphs after its title)") if version == CHAIN_VERSION else ""
        return {
            "version": version,
            "algorithm": "manifest_sha256 = sha256 of the canonical JSON (sorted keys, no spaces) of {schema: "
                         f"'{MANIFEST_SCHEMA_V3 if version == CHAIN_VERSION else MANIFEST_SCHEMA_V2}', run_id, "
                         "as_of, params_sha256, previous_manifest_sha256, files: {path: sha256}} over params.json "
                         f"and every tables/* file, tables/{MANIFEST_TABLE}.* without the columns that hold the "
                         f"chain{summary}",
            "files_sha256": first["files_sha256"],
            **link,
        }
    return {
        "version": 1,
        "algorithm": "manifest_sha256 = sha256 of the canonical JSON (sorted keys, no spaces) of {schema: "
                     f"'{MANIFEST_SCHEMA}', run_id, as_of, params_sha256, previous_manifest_sha256, "
                     "tables: {table: sha256 of tables/<table>.csv}}",
        "tables_sha256": first["tables_sha256"],
        **link,
    }
