"""Scan everything the pipeline wrote for strings that must never be there."""

from __future__ import annotations

from pathlib import Path

import duckdb

from iru_pipeline.fake_intercom import MESSAGE_BODY_MARKER, FakeIntercom
from iru_pipeline_tests.support.env import TEST_PII_KEY


def files_containing(root: Path, needles: dict[str, str]) -> list[tuple[str, str]]:
    """(file, needle name) for every file under `root` whose bytes contain a needle, or, for a
    Parquet file, whose text cells do: Parquet dictionary-encodes and compresses strings, so a
    byte scan alone could miss them."""
    hits = []
    encoded = {name: value.encode() for name, value in needles.items()}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".parquet":
            data += _parquet_text(path)
        for name, value in encoded.items():
            if value in data:
                hits.append((str(path.relative_to(root)), name))
    return hits


def _parquet_text(path: Path) -> bytes:
    """Every cell of the file as text, joined by a separator no needle holds."""
    con = duckdb.connect()
    try:
        source = "read_parquet('" + str(path).replace("'", "''") + "')"
        columns = [c[0] for c in con.execute(f"describe select * from {source}").fetchall()]
        return chr(31).join(_column_text(con, source, c) for c in columns).encode()
    finally:
        con.close()


def _column_text(con: duckdb.DuckDBPyConnection, source: str, column: str) -> str:
    """A column's cells as text, joined by a separator no needle holds."""
    row = con.execute(f'select coalesce(string_agg(cast("{column}" as varchar), chr(31)), \'\') from {source}'
                      ).fetchone()
    return row[0] if row else ""


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
            text = _column_text(con, f'"{schema}"."{table}"', column)
            hits += [(f"{schema}.{table}.{column}", name) for name, value in needles.items() if value in text]
    finally:
        con.close()
    return hits


def secret_needles(fake: FakeIntercom) -> dict[str, str]:
    """Strings that must never be written: tokens, the PII key, message content, clear contact
    e-mails and phone numbers."""
    needles = {f"token_{r}": fake.token(r) for r in fake.regions}
    needles["pii_key"] = TEST_PII_KEY
    needles["message_body"] = MESSAGE_BODY_MARKER
    for region in fake.regions:
        contacts = list(fake.workspace(region).contacts())
        for i, c in enumerate([c for c in contacts if c.get("email")][:25]):
            needles[f"contact_email_{region}_{i}"] = c["email"]
        for i, c in enumerate([c for c in contacts if c.get("phone")][:10]):
            needles[f"contact_phone_{region}_{i}"] = c["phone"]
    return needles


def assert_nothing_leaked(data_dir: Path, fake: FakeIntercom, terminal: str = "",
                          needles: dict[str, str] | None = None) -> None:
    """No needle in any file under `data_dir` (DuckDB bytes, .dlt_pipelines, dagster_home,
    exports), in any text column of the DuckDB file, or in the terminal output."""
    needles = needles or secret_needles(fake)
    assert files_containing(data_dir, needles) == []
    db = data_dir / "iru.duckdb"
    if db.exists() and db.stat().st_size > 0:
        assert tables_containing(db, needles) == []
    assert [name for name, value in needles.items() if value in terminal] == []
