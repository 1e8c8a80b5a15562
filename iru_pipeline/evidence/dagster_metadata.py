"""How evidence tables and control checks show in Dagster: their asset keys and the metadata of
a materialisation (row counts, counts per status, the schema with each column's description,
a markdown preview of the failing rows)."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from iru_pipeline.evidence.descriptions import evidence_column_schema
from iru_pipeline.evidence.tables import EvidenceTable

PREVIEW_ROWS = 20
_PREVIEW_STATUSES = ("fail", "not_collected", "failed", "skipped", "warning", "review", "pending")


def asset_name(table: str) -> str:
    """The asset's name for an evidence table: the table name without its `evidence_` prefix
    (the asset key's `evidence/` prefix says it already). DuckDB keeps the full table name."""
    return table.removeprefix("evidence_")


def evidence_key(table: str) -> dg.AssetKey:
    """`evidence/<name>` for a table name (`evidence_admin_access_review`) or asset name."""
    return dg.AssetKey(["evidence", asset_name(table)])


def table_metadata(con: Any, table: EvidenceTable, run_id: str) -> dict[str, Any]:
    """Row count, rows per status, schema, and a markdown preview of the failing rows."""
    name = table.name
    counts = dict(con.execute(
        f"select status, count(*) from evidence.{name} where run_id = ? group by status order by status", [run_id]
    ).fetchall())
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'evidence' and table_name = ? order by ordinal_position", [name]
    ).fetchall()
    metadata: dict[str, Any] = {
        "dagster/row_count": sum(counts.values()),
        "rows_by_status": dg.MetadataValue.json(counts),
        "dagster/column_schema": evidence_column_schema(name, [(c, t.lower()) for c, t in columns]),
        "table": f"evidence.{name} (latest run: evidence.latest_{name})",
    }
    shown = [s for s in _PREVIEW_STATUSES if s in counts]
    if shown:
        cols = ", ".join(f'"{c}"' for c in table.preview)
        order = ", ".join(f'"{c}"' for c in table.order_by)
        rows = con.execute(
            f"select {cols} from evidence.{name} where run_id = ? and status in ({', '.join('?' * len(shown))}) "
            f"order by list_position(?, status), {order} limit {PREVIEW_ROWS}",
            [run_id, *shown, list(_PREVIEW_STATUSES)],
        ).fetchall()
        metadata["failing_rows"] = dg.MetadataValue.md(markdown_table(list(table.preview), rows))
    return metadata


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
