"""Which Intercom workspace a region's stored data belongs to, bound to the DuckDB file.

A token belongs to one workspace (`/me` -> `app.id_code`). The first run that loads a region
records that workspace id in `iru_meta.workspace_bindings`; every later run compares its
token's workspace with it before anything is loaded, and a token of another workspace stops
that region with one line (`docs/ingestion.md`, One workspace per region). Without it the run
would reuse the old workspace's cursors, skip the new one's history and mix both workspaces'
rows under one region.

The key is a name (today the region code: `us`, `eu`, `au`), so a binding can later be keyed by
a workspace name the user chooses instead. A file written before bindings existed is bound to
the workspace id its `intercom.workspaces` rows already hold, never to the new token's.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline.config import ConfigError
from iru_pipeline.intercom_client.errors import KIND_WORDS
from iru_pipeline.intercom_records.registry import RESOURCES
from iru_pipeline.regions import REGIONS
from iru_pipeline.storage import database_turn, lock_holders

BINDINGS_TABLE = "iru_meta.workspace_bindings"
DATASET = "intercom"
STAGING = "intercom_staging"
_DDL = (f"create table if not exists {BINDINGS_TABLE} (name varchar primary key, region varchar not null, "
        "workspace_id varchar not null, workspace_name varchar, bound_at timestamptz not null)")


@dataclass(frozen=True)
class Workspace:
    """A workspace as `/me` reports it, or as a binding recorded it."""

    workspace_id: str
    name: str | None = None

    @classmethod
    def from_me(cls, me: dict[str, Any]) -> Workspace:
        app = got if isinstance(got := me.get("app"), dict) else {}
        return cls(str(app.get("id_code")), _shown(app.get("name")))

    def __str__(self) -> str:
        return f"{self.workspace_id} ({self.name})" if self.name else self.workspace_id


def _shown(name: Any) -> str | None:
    """A workspace name fit for the one-line error."""
    return " ".join(str(name or "").split())[:40] or None


def _has_table(con: Any, schema: str, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? "
                            "and table_name = ?", [schema, table]).fetchone()[0])


def _recorded(con: Any, region: str) -> Workspace | None:
    if not _has_table(con, "iru_meta", "workspace_bindings"):
        return None
    row = con.execute(f"select workspace_id, workspace_name from {BINDINGS_TABLE} where name = ?",
                      [region]).fetchone()
    return Workspace(row[0], row[1]) if row is not None else None


def bound_workspace(con: Any, region: str) -> Workspace | None:
    """The workspace `region` is bound to: its binding row, else (a file written before bindings
    existed) the workspace its newest `intercom.workspaces` row holds, else None (nothing stored)."""
    recorded = _recorded(con, region)
    if recorded is not None:
        return recorded
    if _has_table(con, DATASET, "workspaces"):
        row = con.execute(f"select workspace_id, name from {DATASET}.workspaces where region = ? "
                          "and workspace_id is not null order by _dlt_valid_to is null desc, _dlt_valid_from desc "
                          "limit 1", [region]).fetchone()
        if row is not None:
            return Workspace(row[0], _shown(row[1]))
    return None


def workspace_changed(path: Path, region: str, bound: Workspace, reported: Workspace) -> ConfigError:
    """The one line of a token whose workspace is not the one `region`'s data belongs to."""
    token_env = REGIONS[region].token_env if region in REGIONS else "the region's token"
    return ConfigError(
        f"[{region}] {KIND_WORDS['auth']}: the token is of workspace {reported}, but {path} holds region {region} "
        f"of workspace {bound}; nothing was loaded. Put {bound.workspace_id}'s token back in {token_env}, or "
        f"replace region {region}'s data by {reported.workspace_id} with `iru-pipeline rebind --region {region}`")


def verify_workspace(con: Any, path: Path, region: str, reported: Workspace) -> Workspace | None:
    """The bound workspace if `reported` is it, None when the region is not bound yet; else
    ConfigError (`workspace_changed`). Reads only."""
    bound = bound_workspace(con, region)
    if bound is not None and bound.workspace_id != reported.workspace_id:
        raise workspace_changed(path, region, bound, reported)
    return bound


def _record(con: Any, region: str, workspace: Workspace) -> None:
    con.execute("create schema if not exists iru_meta")
    con.execute(_DDL)
    con.execute(f"insert or replace into {BINDINGS_TABLE} values (?, ?, ?, ?, now())",
                [region, region, workspace.workspace_id, workspace.name])


def bind_workspace(path: Path, region: str, me: dict[str, Any]) -> Workspace:
    """Check the token's workspace (its `/me`) against the one `region` is bound to, recording
    the binding on first use (a file from before bindings: the workspace its rows hold).
    Raises ConfigError, before anything is written, when the workspace differs."""
    reported = Workspace.from_me(me)
    con = duckdb.connect(str(path))
    try:
        bound = verify_workspace(con, path, region, reported)
        if _recorded(con, region) is None:
            con.execute("begin")
            _record(con, region, bound or reported)
            con.execute("commit")
        return bound or reported
    finally:
        con.close()


def check_workspace(path: Path, region: str, me: dict[str, Any]) -> str | None:
    """For `check`: the one line of a changed workspace, or None. Reads only; says nothing
    while another run of the pipeline holds the file (that run checks it itself)."""
    if not path.exists() or path.stat().st_size == 0 or lock_holders(path):
        return None
    with database_turn(path, shared=True, wait=False, create=False) as turn:
        if not turn:
            return None
        con = duckdb.connect(str(path), read_only=True)
        try:
            verify_workspace(con, path, region, Workspace.from_me(me))
        except ConfigError as exc:
            return str(exc)
        finally:
            con.close()
    return None


def _region_tables(con: Any, schema: str) -> list[str]:
    """Tables of `schema` holding a region's loaded rows (the registry's resources)."""
    names = {r.name for r in RESOURCES}
    rows = con.execute("select table_name from information_schema.columns where table_schema = ? "
                       "and column_name = 'region'", [schema]).fetchall()
    return sorted(r[0] for r in rows if r[0] in names)


def rebind(path: Path, pipelines_dir: Path, region: str, me: dict[str, Any]) -> tuple[Workspace | None, int]:
    """Bind `region` to the workspace of `me` deliberately: in one transaction, remove the
    region's rows of every resource table (history included) and its dlt state (its cursors),
    and record the new binding, so the next run loads the new workspace in full and nothing of
    the old one is mixed with it. Evidence runs and exports already made keep what they derived.
    Returns the workspace bound before (None if none) and the rows removed."""
    workspace = Workspace.from_me(me)
    pipeline = f"intercom_{region}"
    con = duckdb.connect(str(path))
    try:
        before = bound_workspace(con, region)
        if before is not None and before.workspace_id == workspace.workspace_id:
            return before, 0
        removed = 0
        con.execute("begin")
        for table in _region_tables(con, DATASET):
            count = con.execute(f"select count(*) from {DATASET}.{table} where region = ?", [region]).fetchall()
            removed += count[0][0]
            con.execute(f"delete from {DATASET}.{table} where region = ?", [region])
        for table in _region_tables(con, STAGING):  # the latest merge load's copy (docs/ingestion.md)
            con.execute(f"delete from {STAGING}.{table} where region = ?", [region])
        if _has_table(con, DATASET, "_dlt_pipeline_state"):
            con.execute(f"delete from {DATASET}._dlt_pipeline_state where pipeline_name = ?", [pipeline])
        _record(con, region, workspace)
        con.execute("commit")
    finally:
        con.close()
    # The working dir's copy of the state is dropped too (DuckDB holds the state: docs/ingestion.md).
    shutil.rmtree(pipelines_dir / pipeline, ignore_errors=True)
    return before, removed
