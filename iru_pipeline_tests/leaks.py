"""Scan everything the pipeline wrote for strings that must never be there."""

from __future__ import annotations

from pathlib import Path

import duckdb


def files_containing(root: Path, needles: dict[str, str]) -> list[tuple[str, str]]:
    """(file, needle name) for every file under `root` whose bytes contain a needle."""
    hits = []
    encoded = {name: value.encode() for name, value in needles.items()}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for name, value in encoded.items():
            if value in data:
                hits.append((str(path.relative_to(root)), name))
    return hits


def tables_containing(db: Path, needles: dict[str, str]) -> list[tuple[str, str]]:
    """(schema.table.column, needle name) for every text-like column holding a needle.
    DuckDB compresses strings on disk, so a byte scan alone could miss them."""
    hits = []
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON') or data_type like '%[]' or data_type like 'STRUCT%'"
        ).fetchall()
        for schema, table, column in cols:
            text = con.execute(
                f'select coalesce(string_agg(cast("{column}" as varchar), chr(31)), \'\') from "{schema}"."{table}"'
            ).fetchone()[0]
            hits += [(f"{schema}.{table}.{column}", name) for name, value in needles.items() if value in text]
    finally:
        con.close()
    return hits
