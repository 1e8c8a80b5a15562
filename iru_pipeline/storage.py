"""Checks on the DuckDB file before a run: reachable, a database, not locked by another process."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
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


def wait_for_database(path: Path, timeout: float = 120.0, log: Callable[[str], None] | None = None) -> None:
    """Wait until the DuckDB file can be opened for writing.

    The `duckdb_writer` pool lets one step write at a time, but a process that just finished
    its step may hold DuckDB's file lock a moment longer (until its connections are closed),
    and an ad-hoc SQL session may hold it too. dlt does not retry a lock conflict, so the
    ingestion waits for the lock here, bounded, instead of failing the run."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            duckdb.connect(str(path)).close()
            return
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            if log:
                pid = re.search(r"PID (\d+)", str(exc))
                log(f"DuckDB file {path} is locked{f' by process {pid.group(1)}' if pid else ''}; waiting {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
