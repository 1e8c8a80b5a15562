"""Deterministic bytes of an evidence table's rows, and the manifest hash chain across runs.

The export (`iru_pipeline.export`) writes exactly `table_csv()` / `table_json()` for each table;
the collection-run asset hashes the same CSV bytes into the run's manifest hash. So the
`tables_sha256` recorded in DuckDB at collection time equal the sha256 of the exported
`tables/*.csv`, and anyone holding an export can recompute the manifest hash (§6).

    manifest_sha256 = sha256(canonical JSON of {schema, run_id, as_of, params_sha256,
                                                previous_manifest_sha256, tables})

Formatting rules (evidence-research §6): UTC timestamps in ISO 8601 with `Z`, rows sorted by
the table's key then every other column, columns in table order, RFC 4180 CSV (UTF-8, CRLF,
minimal quoting; lists as JSON arrays, booleans `true`/`false`, NULL empty), JSON typed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from iru_pipeline.evidence.params import canonical_json
from iru_pipeline.evidence.tables import CHAINED_TABLES, MANIFEST_TABLE, TABLES_BY_NAME

MANIFEST_SCHEMA = "iru-evidence-manifest/1"


@dataclass(frozen=True)
class TableRows:
    name: str
    columns: list[str]
    types: list[str]
    rows: list[tuple]


def fetch_table(con: Any, table: str, run_id: str) -> TableRows:
    """This run's rows of one evidence table, in the export's order."""
    cols = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'evidence' and table_name = ? order by ordinal_position",
        [table],
    ).fetchall()
    if not cols:
        return TableRows(table, [], [], [])
    names = [c[0] for c in cols]
    key = list(TABLES_BY_NAME[table].order_by)
    order = ", ".join(f'"{c}" nulls first' for c in key + [n for n in names if n not in key])
    rows = con.execute(f'select * from evidence."{table}" where run_id = ? order by {order}', [run_id]).fetchall()
    return TableRows(table, names, [c[1].upper() for c in cols], rows)


def _timestamp(value: datetime) -> str:
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(fmt)


def json_value(value: Any, sql_type: str = "") -> Any:
    """A DuckDB value as a JSON value (typed)."""
    if value is None:
        return None
    if sql_type == "JSON" and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def csv_cell(value: Any, sql_type: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if sql_type == "JSON" and isinstance(value, str):
        return canonical_json(json.loads(value))
    if isinstance(value, (list, tuple, dict)):
        return canonical_json(json_value(value))
    converted = json_value(value, sql_type)
    return "" if converted is None else str(converted)


def table_csv(t: TableRows) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(t.columns)
    for row in t.rows:
        writer.writerow([csv_cell(v, typ) for v, typ in zip(row, t.types)])
    return buf.getvalue().encode("utf-8")


def table_json(t: TableRows) -> bytes:
    objects = [
        json.dumps({c: json_value(v, typ) for c, v, typ in zip(t.columns, row, t.types)},
                   ensure_ascii=False, separators=(",", ":"))
        for row in t.rows
    ]
    body = "[\n" + ",\n".join(objects) + "\n]\n" if objects else "[]\n"
    return body.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chained_tables(recorded: dict[str, str] | None) -> tuple[str, ...]:
    """The tables a run's manifest hash covers: those it recorded when it was written. A run
    written before a table was added does not cover it, so adding an evidence table leaves the
    earlier runs verifiable; dropping a recorded table from the record changes the hash."""
    return tuple(recorded) if recorded else CHAINED_TABLES


def table_digests(con: Any, run_id: str, tables: Sequence[str] = CHAINED_TABLES) -> dict[str, str]:
    return {name: sha256_hex(table_csv(fetch_table(con, name, run_id))) for name in tables}


def manifest_sha256(run_id: str, as_of: datetime, params_sha256: str, previous: str | None,
                    tables: dict[str, str]) -> str:
    body = {
        "schema": MANIFEST_SCHEMA,
        "run_id": run_id,
        "as_of": _timestamp(as_of),
        "params_sha256": params_sha256,
        "previous_manifest_sha256": previous,
        "tables": dict(sorted(tables.items())),
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
    if seq is None:  # a run from before chain_seq: the unnumbered runs up to its as_of came before it
        where, params = "chain_seq is null and as_of <= ?", [as_of]
    else:
        where, params = "(chain_seq < ? or chain_seq is null)", [seq]
    con.execute(f"insert into prior_runs select distinct run_id from evidence.{MANIFEST_TABLE} "
                f"where run_id <> ? and {where}", [run_id, *params])


def register_run_manifest(con: Any, run_id: str, as_of: datetime, params_sha256: str) -> str:
    """Hash this run's tables, chain to the previous run, and expose the result to
    `sql/collection_run.sql` as the temp table `run_manifest`. Returns the manifest hash."""
    tables = table_digests(con, run_id)
    seq, previous = chain_position(con, run_id, as_of)
    digest = manifest_sha256(run_id, as_of, params_sha256, previous, tables)
    con.execute(
        "create or replace temp table run_manifest as "
        "select ?::json as tables_sha256, ?::varchar as previous_manifest_sha256, ?::varchar as manifest_sha256, "
        "?::bigint as chain_seq",
        [canonical_json(dict(sorted(tables.items()))), previous, digest, seq],
    )
    return digest


def verify_chain(con: Any) -> list[str]:
    """Recompute every run's manifest hash from the stored rows and check the links, in chain
    order (`chain_position`).
    Returns the problems found (empty: the stored evidence is as it was written)."""
    runs = con.execute(
        f"select run_id, any_value(as_of), any_value(params_sha256), any_value(previous_manifest_sha256), "
        f"any_value(manifest_sha256), count(distinct manifest_sha256), any_value(tables_sha256) "
        f"from evidence.{MANIFEST_TABLE} "
        "group by run_id order by max(chain_seq) nulls first, any_value(as_of), run_id"
    ).fetchall()
    problems: list[str] = []
    previous: str | None = None
    for run_id, as_of, params_sha, prev, stored, variants, recorded in runs:
        if variants != 1:
            problems.append(f"run {run_id}: its rows disagree on the manifest hash")
        if prev != previous:
            problems.append(f"run {run_id}: previous_manifest_sha256 does not match the run before it")
        tables = chained_tables(json.loads(recorded) if isinstance(recorded, str) else recorded)
        recomputed = manifest_sha256(run_id, as_of, params_sha, prev, table_digests(con, run_id, tables))
        if recomputed != stored:
            problems.append(f"run {run_id}: evidence rows changed after the run (manifest hash differs)")
        previous = stored
    return problems
