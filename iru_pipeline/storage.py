"""Checks on the DuckDB file before a run: reachable, a database, not locked by another process."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from iru_pipeline.config import ConfigError


def ensure_writable_database(path: Path) -> None:
    """Open the database for writing once, so a lock or a bad file is reported in one line
    before any request is made. A file that does not exist yet is left uncreated."""
    if not path.exists():
        return
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


def ensure_hosts_reachable(settings: Any, timeout: float = 5.0) -> None:
    """Open a TCP connection to each enabled region's host (no HTTP request, no token sent),
    so a wrong base URL or a closed port is one line before anything is written."""
    for rs in settings.regions:
        parts = urlsplit(rs.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"{rs.region.base_url_env}: cannot connect to {parts.hostname}:{port} ({reason}); "
                f"check the URL (default {rs.region.default_base_url}) and the network"
            ) from None
