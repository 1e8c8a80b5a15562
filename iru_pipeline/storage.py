"""Checks on the DuckDB file before a run: reachable, a database, not locked by another process."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from iru_pipeline.config import ConfigError


def ensure_writable_database(path: Path) -> None:
    """Open the database for writing once, so a lock or a bad file is reported in one line
    before any request is made."""
    try:
        con = duckdb.connect(str(path))
        con.close()
    except duckdb.IOException as exc:
        message = str(exc)
        if "lock" in message.lower():
            pid = re.search(r"PID (\d+)", message)
            holder = f" (process {pid.group(1)})" if pid else ""
            raise ConfigError(
                f"IRU_DUCKDB_PATH={path} is locked by another process{holder}: close SQL sessions on it "
                "(or open them with read_only=True only between runs) and retry"
            ) from None
        raise ConfigError(f"IRU_DUCKDB_PATH={path} cannot be opened: {message.splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise ConfigError(
            f"IRU_DUCKDB_PATH={path} is not a usable DuckDB database ({str(exc).splitlines()[0]}): "
            "move it away or choose another path"
        ) from None
