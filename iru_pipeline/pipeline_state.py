"""The dlt state of a region's pipeline: disposable on disk, authoritative in DuckDB.

Each run rebuilds a region's dlt working dir (`.dlt_pipelines/intercom_<region>/`) from the
state row dlt keeps in DuckDB (`intercom._dlt_pipeline_state`), so a working dir whose
`state.json` cannot be read (empty after a crash, garbage) is simply discarded, with a
one-line notice. The DuckDB row is where the cursors live: one that cannot be read stops that
region with a message naming the table, the pipeline and the fix, instead of dlt's parser
error. Both are read with dlt's own decoders, so "readable" means what dlt will accept.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
from dlt.common.versioned_state import decompress_state, json_decode_state
from dlt.pipeline.state_sync import migrate_state_to_current

STATE_TABLE = "_dlt_pipeline_state"
LOADS_TABLE = "_dlt_loads"


class UnreadableStateError(RuntimeError):
    """A region's committed dlt state in DuckDB cannot be read: nothing was requested."""


def discard_unreadable_working_dir(pipelines_dir: Path, pipeline_name: str,
                                   notice: Callable[[str], None] | None = None) -> bool:
    """Remove the pipeline's working dir when its `state.json` cannot be read; True if it did."""
    working_dir = pipelines_dir / pipeline_name
    state_file = working_dir / "state.json"
    if not state_file.is_file():
        return False
    try:
        migrate_state_to_current(pipeline_name, json_decode_state(state_file.read_text(encoding="utf-8")))
        return False
    except Exception as exc:  # dlt's decoders raise many kinds; any means dlt could not start
        reason = _reason(exc)
    shutil.rmtree(working_dir, ignore_errors=True)
    if notice is not None:
        notice(f"{state_file} could not be read ({reason}); discarded the working dir, "
               "the cursors are restored from DuckDB")
    return True


def check_committed_state(duckdb_path: Path, dataset: str, pipeline_name: str) -> None:
    """Raise UnreadableStateError when the state row dlt will restore from cannot be read."""
    if not duckdb_path.exists():
        return
    con = duckdb.connect(str(duckdb_path))
    try:
        tables = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [dataset]).fetchall()}
        if not {STATE_TABLE, LOADS_TABLE} <= tables:
            return
        # The row dlt restores: the newest one of a completed load (its own query).
        row = con.execute(
            f"select s.state, s._dlt_load_id from {dataset}.{STATE_TABLE} s join {dataset}.{LOADS_TABLE} l "
            "on l.load_id = s._dlt_load_id where s.pipeline_name = ? and l.status = 0 "
            "order by l.load_id desc limit 1", [pipeline_name]).fetchone()
    finally:
        con.close()
    if row is None:
        return
    state, load_id = row
    try:
        migrate_state_to_current(pipeline_name, decompress_state(state))
    except Exception as exc:  # as above: whatever dlt's decoder raises, dlt could not restore it
        raise UnreadableStateError(
            f"{dataset}.{STATE_TABLE}: the state row of pipeline {pipeline_name} from load {load_id} cannot be "
            f"read ({_reason(exc)}); delete it (DELETE FROM {dataset}.{STATE_TABLE} WHERE pipeline_name = "
            f"'{pipeline_name}' AND _dlt_load_id = '{load_id}') and run again: the cursors then resume from "
            "the row before it, re-reading what came since"
        ) from None


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
