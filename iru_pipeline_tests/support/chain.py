"""Databases as the previous version wrote them: evidence runs chained by version 1."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb

from iru_pipeline.export import export_run


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


V1_TABLES = ("evidence_collection_stream", "evidence_admin_access_review", "evidence_offboarding_check",
             "evidence_access_change_events", "evidence_workspace_security_config", "evidence_high_risk_activity",
             "evidence_data_retention", "evidence_personal_data_inventory", "evidence_support_request_sla",
             "evidence_control_tests")
"""The tables the previous version chained (it had no evidence_collection_proof)."""


def write_as_chain_version_1(db: Path, exports: Path) -> dict[str, str]:
    """Turn a database into what the previous version wrote: no proof table, no files_sha256,
    chain_version or chain_columns column, and every run chained by the version 1 definition, computed here from
    its documentation: sha256 of the canonical JSON of {schema, run_id, as_of, params_sha256,
    previous_manifest_sha256, tables: {table: sha256 of tables/<table>.csv}} (the CSV bytes are
    those of an export, which the previous version wrote the same). Returns run id -> hash."""
    con = duckdb.connect(str(db))
    try:
        runs = con.execute("select run_id from evidence.evidence_collection_run group by run_id "
                           "order by max(chain_seq)").fetchall()
        folders = {run_id: export_run(con, run_id, exports).folder for (run_id,) in runs}
        con.execute("drop view evidence.latest_evidence_collection_proof; drop table evidence.evidence_collection_proof")
        con.execute("alter table evidence.evidence_collection_run drop column files_sha256")
        con.execute("alter table evidence.evidence_collection_run drop column chain_version")
        con.execute("alter table evidence.evidence_collection_run drop column chain_columns")
        previous, hashes = None, {}
        for run_id, folder in folders.items():
            manifest = json.loads((folder / "manifest.json").read_text())
            tables = {t: sha((folder / "tables" / f"{t}.csv").read_bytes()) for t in V1_TABLES}
            body = {"schema": "iru-evidence-manifest/1", "run_id": run_id, "as_of": manifest["as_of"],
                    "params_sha256": manifest["params_sha256"], "previous_manifest_sha256": previous,
                    "tables": tables}
            digest = sha(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
            con.execute("update evidence.evidence_collection_run set tables_sha256 = ?::json, "
                        "previous_manifest_sha256 = ?, manifest_sha256 = ? where run_id = ?",
                        [json.dumps(tables, sort_keys=True, separators=(",", ":")), previous, digest, run_id])
            previous = hashes[run_id] = digest
    finally:
        con.close()
    shutil.rmtree(exports)
    return hashes


def write_as_chain_version_2(db: Path, exports: Path) -> dict[str, str]:
    """Turn a database into what chain version 2 wrote: no stored documents, every run chained
    by the version 2 definition, computed here from its documentation: sha256 of the canonical
    JSON of {schema: "iru-evidence-manifest/2", run_id, as_of, params_sha256,
    previous_manifest_sha256, files: {path: sha256}} over params.json and every tables/* file
    (tables/evidence_collection_run.* without the chain columns). Returns run id -> hash."""
    from iru_pipeline.evidence.manifest import chain_bytes

    con = duckdb.connect(str(db))
    try:
        runs = con.execute("select run_id from evidence.evidence_collection_run group by run_id "
                           "order by max(chain_seq)").fetchall()
        folders = {run_id: export_run(con, run_id, exports).folder for (run_id,) in runs}
        con.execute("drop table evidence.evidence_run_documents")
        previous, hashes = None, {}
        for run_id, folder in folders.items():
            manifest = json.loads((folder / "manifest.json").read_text())
            paths = ["params.json"] + [p.relative_to(folder).as_posix() for p in (folder / "tables").iterdir()]
            files = {p: sha(chain_bytes(p, (folder / p).read_bytes())) for p in sorted(paths)}
            body = {"schema": "iru-evidence-manifest/2", "run_id": run_id, "as_of": manifest["as_of"],
                    "params_sha256": manifest["params_sha256"], "previous_manifest_sha256": previous,
                    "files": files}
            digest = sha(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
            con.execute("update evidence.evidence_collection_run set files_sha256 = ?::json, chain_version = 2, "
                        "previous_manifest_sha256 = ?, manifest_sha256 = ? where run_id = ?",
                        [json.dumps(files, sort_keys=True, separators=(",", ":")), previous, digest, run_id])
            previous = hashes[run_id] = digest
    finally:
        con.close()
    shutil.rmtree(exports)
    return hashes
