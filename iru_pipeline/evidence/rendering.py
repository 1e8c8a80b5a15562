"""The bytes of the export's table files, so the same rows always give the same bytes.

Formatting rules: UTC timestamps in ISO 8601 with `Z`, rows sorted by the table's key then
every other column, columns in table order, RFC 4180 CSV (UTF-8, CRLF, minimal quoting; lists
as JSON arrays, booleans `true`/`false`, NULL empty), JSON typed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from iru_pipeline.evidence.params import canonical_json
from iru_pipeline.evidence.tables import TABLES_BY_NAME

WorkspaceKey = tuple[str | None, str]
"""(workspace_id, region): how an evidence row names its workspace (docs/evidence.md#how-a-table-is-derived)."""


def workspace_key(row: dict[str, Any]) -> WorkspaceKey:
    return row.get("workspace_id"), row["region"]


def workspace_label(run: dict[str, Any]) -> str:
    """How the report and summary name a workspace: its name and Intercom id, then its region (an attribute).
    A workspace never reached has no id yet; its run row then carries its configured name."""
    name = run.get("workspace_name") or "unnamed workspace"
    return f"{name} · {run.get('workspace_id') or 'no workspace id yet'} · {run['region']}"


@dataclass(frozen=True)
class TableRows:
    name: str
    columns: list[str]
    types: list[str]
    rows: list[tuple]


def fetch_table(con: Any, table: str, run_id: str, columns: Sequence[str] | None = None) -> TableRows:
    """This run's rows of one evidence table, in the export's order; only `columns` if given
    (the columns the table had when the run was written)."""
    cols = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'evidence' and table_name = ? order by ordinal_position",
        [table],
    ).fetchall()
    if columns is not None:
        cols = [c for c in cols if c[0] in set(columns)]
    if not cols:
        return TableRows(table, [], [], [])
    names = [c[0] for c in cols]
    key = [c for c in TABLES_BY_NAME[table].order_by if c in names]
    order = ", ".join(f'"{c}" nulls first' for c in key + [n for n in names if n not in key])
    select = ", ".join(f'"{n}"' for n in names)
    rows = con.execute(f'select {select} from evidence."{table}" where run_id = ? order by {order}',
                       [run_id]).fetchall()
    return TableRows(table, names, [c[1].upper() for c in cols], rows)


def timestamp_text(value: datetime) -> str:
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
        return timestamp_text(value)
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
        writer.writerow([csv_cell(v, typ) for v, typ in zip(row, t.types, strict=True)])
    return buf.getvalue().encode("utf-8")


def table_json(t: TableRows) -> bytes:
    return json_rows([{c: json_value(v, typ) for c, v, typ in zip(t.columns, row, t.types, strict=True)}
                       for row in t.rows])


def json_rows(rows: Sequence[Mapping[str, Any]]) -> bytes:
    objects = [json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows]
    body = "[\n" + ",\n".join(objects) + "\n]\n" if objects else "[]\n"
    return body.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pretty_json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
