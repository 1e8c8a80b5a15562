"""Deterministic bytes of an evidence run's export files, and the hash chain across runs.

The export (`iru_pipeline.export`) writes exactly `content_files()` (`tables/<t>.csv`,
`tables/<t>.json`, `params.json`); the collection-run asset renders the same bytes when the
run is written and chains their hashes into the run's manifest hash, stored in DuckDB. So
anyone holding an export can recompute the manifest hash from the folder alone, and any file
edited after collection breaks the chain, whatever hashes are rewritten beside it.

Chain version 3 (runs written by this version, `chain_version = 3`): as version 2 below, with
schema "iru-evidence-manifest/3" and one more file, `summary.md`, hashed as the document
rendered when the run is sealed (`summary.py`: the export adds a header, signing notice and
this hash, which `verify` checks against manifest.json and removes before hashing). The
document's bytes are stored with the run (`evidence.evidence_run_documents`) and exported as
they are, so a later version's rendering changes neither an old run's summary nor its chain.
report.html is not chained: it is rendered at export time (it states the signing and takes
seconds to draw), so manifest.json and its signature cover it, and SHA256SUMS only.

Chain version 2 (runs written before version 3, `chain_version = 2`):

    manifest_sha256 = sha256(canonical JSON of {schema: "iru-evidence-manifest/2", run_id, as_of,
                             params_sha256, previous_manifest_sha256,
                             files: {path: sha256 of chain_bytes(path, file)}})

over every table file (CSV and JSON) and params.json. `tables/evidence_collection_run.*`
hold the chain itself, so they are hashed with the chain columns (`CHAIN_COLUMNS`) left out
(`chain_bytes`). The tables and columns there were when the run was written are recorded
(`chain_columns`), and the run's files are always rendered from those only: a column or
table added by a later version changes neither an old run's export nor its chain. The
human-readable files (summary.md, reports) are renderings of these files;
`manifest.json` lists and hashes them, and the signature (`signing.py`) covers them.

Chain version 1 (runs written before; `chain_version` NULL) covered the CSV files only:

    manifest_sha256 = sha256(canonical JSON of {schema: "iru-evidence-manifest/1", run_id, as_of,
                             params_sha256, previous_manifest_sha256, tables: {table: sha256 of CSV}})

with the tables named in the run's `tables_sha256`; such runs are still verified that way.

File formatting (the same rows always give the same bytes): evidence/rendering.py.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from iru_pipeline.evidence.params import canonical_json
from iru_pipeline.evidence.rendering import (
    TableRows,
    fetch_table,
    json_rows,
    json_value,
    pretty_json,
    sha256_hex,
    table_csv,
    table_json,
    timestamp_text,
)
from iru_pipeline.evidence.tables import CHAINED_TABLES, EVIDENCE_TABLES, MANIFEST_TABLE, TABLES_BY_NAME

MANIFEST_SCHEMA = "iru-evidence-manifest/1"
MANIFEST_SCHEMA_V2 = "iru-evidence-manifest/2"
MANIFEST_SCHEMA_V3 = "iru-evidence-manifest/3"
CHAIN_VERSION = 3
DOCUMENTS_TABLE = "evidence_run_documents"
"""The documents rendered when a run is sealed (chain version 3 on): run_id, path, sha256, content."""
CHAIN_COLUMNS = ("tables_sha256", "files_sha256", "previous_manifest_sha256", "manifest_sha256", "chain_seq",
                 "chain_version", "chain_columns")
"""Columns of evidence_collection_run that hold the chain: left out of what the chain hashes."""
PARAMS_FILE = "params.json"
_PENDING = ""


def table_digests(con: Any, run_id: str, tables: Sequence[str] = CHAINED_TABLES) -> dict[str, str]:
    return {name: sha256_hex(table_csv(fetch_table(con, name, run_id))) for name in tables}


def run_tables(con: Any, run_id: str, pinned: Mapping[str, Sequence[str]] | None = None) -> dict[str, TableRows]:
    """This run's rows of every evidence table, in export order. `pinned` (the run's
    `chain_columns`): only the tables and columns there were when the run was written, so a
    column or table added by a later version changes neither the run's files nor its chain."""
    if pinned is None:
        return {t.name: fetch_table(con, t.name, run_id) for t in EVIDENCE_TABLES}
    return {t.name: fetch_table(con, t.name, run_id, pinned[t.name]) for t in EVIDENCE_TABLES if t.name in pinned}


def pinned_columns(con: Any, run_id: str) -> dict[str, list[str]] | None:
    """The tables and columns recorded when the run was written (None before chain version 2)."""
    if not _has_column(con, "chain_columns"):
        return None
    row = con.execute(f"select any_value(chain_columns)::varchar from evidence.{MANIFEST_TABLE} where run_id = ?",
                      [run_id]).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def _has_column(con: Any, column: str) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.columns where table_schema = 'evidence' and table_name = ? "
        "and column_name = ?", [MANIFEST_TABLE, column]).fetchone()[0])


def content_files(tables: Mapping[str, TableRows]) -> dict[str, bytes]:
    """The export files that hold the run's data: `tables/<t>.csv` and `.json` per evidence
    table, and `params.json`, in export order. The chain covers exactly these."""
    files: dict[str, bytes] = {}
    for t in EVIDENCE_TABLES:
        if t.name not in tables:
            continue
        rows = tables[t.name]
        files[f"tables/{t.name}.csv"] = table_csv(rows)
        files[f"tables/{t.name}.json"] = table_json(rows)
    run = tables[MANIFEST_TABLE]
    params: Any = {}
    if run.rows:
        first = dict(zip(run.columns, run.rows[0], strict=True))
        params = json_value(first.get("params_json"), "JSON") or {}
    files[PARAMS_FILE] = pretty_json(params)
    return files


def is_chained_file(path: str) -> bool:
    if path == PARAMS_FILE:
        return True
    name, dot, ext = path.removeprefix("tables/").rpartition(".")
    return path.startswith("tables/") and dot == "." and ext in ("csv", "json") and name in TABLES_BY_NAME


def chain_bytes(path: str, data: bytes) -> bytes:
    """What the chain hashes of one file: the file itself, or for evidence_collection_run the
    same rows without the chain columns (they hold the hash being computed). Recomputable from
    the exported file alone: a CSV or JSON file re-rendered here gives back its own bytes."""
    if not path.startswith(f"tables/{MANIFEST_TABLE}."):
        return data
    if path.endswith(".json"):
        rows = json.loads(data.decode("utf-8"))
        return json_rows([{k: v for k, v in row.items() if k not in CHAIN_COLUMNS} for row in rows])
    records = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    keep = [i for i, c in enumerate(records[0] if records else []) if c not in CHAIN_COLUMNS]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    for record in records:
        writer.writerow([record[i] for i in keep])
    return buf.getvalue().encode("utf-8")


def chained_files_sha256(files: Mapping[str, bytes]) -> dict[str, str]:
    """path -> sha256 of what the chain covers, for the chained files among `files`."""
    return {path: sha256_hex(chain_bytes(path, data)) for path, data in sorted(files.items()) if is_chained_file(path)}


def manifest_sha256(run_id: str, as_of: datetime, params_sha256: str, previous: str | None,
                    tables: dict[str, str]) -> str:
    """Chain version 1 (runs written before chain version 2)."""
    body = {
        "schema": MANIFEST_SCHEMA,
        "run_id": run_id,
        "as_of": timestamp_text(as_of),
        "params_sha256": params_sha256,
        "previous_manifest_sha256": previous,
        "tables": dict(sorted(tables.items())),
    }
    return sha256_hex(canonical_json(body).encode("utf-8"))


def manifest_sha256_v2(run_id: str, as_of: datetime, params_sha256: str, previous: str | None,
                       files: dict[str, str], schema: str = MANIFEST_SCHEMA_V2) -> str:
    """Chain version 2, and version 3 with `schema=MANIFEST_SCHEMA_V3` (its files include summary.md)."""
    body = {
        "schema": schema,
        "run_id": run_id,
        "as_of": timestamp_text(as_of),
        "params_sha256": params_sha256,
        "previous_manifest_sha256": previous,
        "files": dict(sorted(files.items())),
    }
    return sha256_hex(canonical_json(body).encode("utf-8"))


def chain_position(con: Any, run_id: str, as_of: datetime) -> tuple[int | None, str | None]:
    """This run's place in the chain (`chain_seq`) and the manifest hash of the run before it.

    Runs are chained in the order their evidence is first written, not by `as_of`: two runs
    started close together may derive their evidence in either order, and chaining by start
    time then forked the chain. A run derived again keeps its place. Runs written before
    `chain_seq` existed (NULL) stay chained by `as_of`, ahead of every numbered run."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'evidence' and table_name = ?",
        [MANIFEST_TABLE],
    ).fetchone()[0]
    if not exists:
        return 1, None
    con.execute(f"alter table evidence.{MANIFEST_TABLE} add column if not exists chain_seq bigint")
    own = con.execute(
        f"select count(*), max(chain_seq) from evidence.{MANIFEST_TABLE} where run_id = ?", [run_id]).fetchone()
    if own[0] and own[1] is None:  # a run from before chain_seq, derived again
        row = con.execute(
            f"select manifest_sha256 from evidence.{MANIFEST_TABLE} where run_id <> ? and chain_seq is null "
            "and as_of <= ? order by as_of desc, run_id desc limit 1", [run_id, as_of]).fetchone()
        return None, row[0] if row else None
    seq = own[1] or con.execute(
        f"select coalesce(max(chain_seq), 0) + 1 from evidence.{MANIFEST_TABLE}").fetchone()[0]
    row = con.execute(
        f"select manifest_sha256 from evidence.{MANIFEST_TABLE} where run_id <> ? "
        "and (chain_seq < ? or chain_seq is null) order by chain_seq desc nulls last, as_of desc, run_id desc "
        "limit 1", [run_id, seq]).fetchone()
    return seq, row[0] if row else None


def register_prior_runs(con: Any, run_id: str, as_of: datetime) -> None:
    """Temp table `prior_runs`: the runs chained before this one (`chain_position`'s order).

    Evidence that reads other runs' rows (the control-test history) reads only these and the
    run itself, so deriving a run again after runs written later gives the same rows and keeps
    its manifest hash; a run that never reached its manifest does not count."""
    con.execute("create or replace temp table prior_runs (run_id varchar)")
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'evidence' and table_name = ?",
        [MANIFEST_TABLE],
    ).fetchone()[0]
    if not exists:
        return
    seq, _ = chain_position(con, run_id, as_of)
    params: list[Any]
    if seq is None:  # a run from before chain_seq: the unnumbered runs up to its as_of came before it
        where, params = "chain_seq is null and as_of <= ?", [as_of]
    else:
        where, params = "(chain_seq < ? or chain_seq is null)", [seq]
    con.execute(f"insert into prior_runs select distinct run_id from evidence.{MANIFEST_TABLE} "
                f"where run_id <> ? and {where}", [run_id, *params])


def write_run_manifest(con: Any, run_id: str, as_of: datetime, params_sha256: str,
                       write_rows: Callable[[], None]) -> str:
    """Write this run's evidence_collection_run rows (`write_rows` runs its SQL, which reads
    the temp table `run_manifest`) and seal them with the run's chained manifest hash, in one
    transaction: no reader ever sees a run without its hash. Returns the manifest hash."""
    seq, previous = chain_position(con, run_id, as_of)
    con.execute("begin transaction")
    try:
        con.execute(
            "create or replace temp table run_manifest as "
            "select null::json as tables_sha256, null::json as files_sha256, ?::varchar as previous_manifest_sha256, "
            "?::varchar as manifest_sha256, ?::bigint as chain_seq, ?::integer as chain_version, "
            "null::json as chain_columns",
            [previous, _PENDING, seq, CHAIN_VERSION],
        )
        write_rows()
        tables = run_tables(con, run_id)
        content = content_files(tables)
        files = chained_files_sha256(content) | _store_documents(con, run_id, tables, content)
        digest = manifest_sha256_v2(run_id, as_of, params_sha256, previous, files, MANIFEST_SCHEMA_V3)
        csv_digests = {name: sha256_hex(table_csv(tables[name])) for name in CHAINED_TABLES}
        pinned = {name: t.columns for name, t in tables.items()}
        con.execute(
            f"update evidence.{MANIFEST_TABLE} set tables_sha256 = ?::json, files_sha256 = ?::json, "
            "chain_columns = ?::json, manifest_sha256 = ? where run_id = ?",
            [canonical_json(dict(sorted(csv_digests.items()))), canonical_json(files), canonical_json(pinned),
             digest, run_id],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return digest


def _store_documents(con: Any, run_id: str, tables: Mapping[str, TableRows], content: Mapping[str, bytes]
                     ) -> dict[str, str]:
    """Render the run's summary.md document, store it with the run; path -> sha256 for the chain."""
    from iru_pipeline.evidence.summary import SUMMARY_FILE, summary_document  # it renders from this module's tables

    if not tables[MANIFEST_TABLE].rows:  # no workspace: no run row to seal, nothing to export
        return {}
    document = summary_document(tables, content).encode("utf-8")
    con.execute(f"create table if not exists evidence.{DOCUMENTS_TABLE} "
                "(run_id varchar not null, path varchar not null, sha256 varchar not null, content varchar not null, "
                "primary key (run_id, path))")
    con.execute(f"delete from evidence.{DOCUMENTS_TABLE} where run_id = ?", [run_id])
    digest = sha256_hex(document)
    con.execute(f"insert into evidence.{DOCUMENTS_TABLE} values (?, ?, ?, ?)",
                [run_id, SUMMARY_FILE, digest, document.decode("utf-8")])
    return {SUMMARY_FILE: digest}


def stored_documents(con: Any, run_id: str) -> dict[str, bytes]:
    """path -> bytes of the documents stored when the run was sealed (none before chain version 3)."""
    exists = con.execute("select count(*) from information_schema.tables where table_schema = 'evidence' "
                         "and table_name = ?", [DOCUMENTS_TABLE]).fetchone()[0]
    if not exists:
        return {}
    rows = con.execute(f"select path, content from evidence.{DOCUMENTS_TABLE} where run_id = ? order by path",
                       [run_id]).fetchall()
    return {path: text.encode("utf-8") for path, text in rows}


def recompute_manifest_sha256(con: Any, run_id: str, as_of: datetime, params_sha256: str, previous: str | None,
                              version: int | None, tables_sha256: Mapping[str, Any] | None) -> str:
    """A stored run's manifest hash, recomputed from its rows by the chain version it was written with."""
    if version in (2, CHAIN_VERSION):
        tables = run_tables(con, run_id, pinned_columns(con, run_id))
        files = chained_files_sha256(content_files(tables))
        if version == 2:
            return manifest_sha256_v2(run_id, as_of, params_sha256, previous, files)
        files |= {path: sha256_hex(data) for path, data in stored_documents(con, run_id).items()}
        return manifest_sha256_v2(run_id, as_of, params_sha256, previous, files, MANIFEST_SCHEMA_V3)
    names = sorted(tables_sha256) if tables_sha256 else list(CHAINED_TABLES)
    return manifest_sha256(run_id, as_of, params_sha256, previous, table_digests(con, run_id, names))


def verify_chain(con: Any) -> list[str]:
    """Recompute every run's manifest hash from the stored rows and check the links, in chain
    order (`chain_position`).
    Returns the problems found (empty: the stored evidence is as it was written)."""
    has_version = _has_column(con, "chain_version")  # not in a database written before chain version 2
    runs = con.execute(
        f"select run_id, any_value(as_of), any_value(params_sha256), any_value(previous_manifest_sha256), "
        f"any_value(manifest_sha256), count(distinct manifest_sha256), "
        f"{'max(chain_version)' if has_version else 'null'}, "
        f"any_value(tables_sha256)::varchar from evidence.{MANIFEST_TABLE} "
        "group by run_id order by max(chain_seq) nulls first, any_value(as_of), run_id"
    ).fetchall()
    problems: list[str] = []
    previous: str | None = None
    for run_id, as_of, params_sha, prev, stored, variants, version, tables_json in runs:
        if variants != 1:
            problems.append(f"run {run_id}: its rows disagree on the manifest hash")
        if prev != previous:
            problems.append(f"run {run_id}: previous_manifest_sha256 does not match the run before it")
        tables = json.loads(tables_json) if tables_json else None
        if recompute_manifest_sha256(con, run_id, as_of, params_sha, prev, version, tables) != stored:
            problems.append(f"run {run_id}: evidence rows changed after the run (manifest hash differs)")
        previous = stored
    return problems
