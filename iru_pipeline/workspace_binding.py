"""Which Intercom workspace a configured name's stored data belongs to, bound to the DuckDB file.

A token belongs to one workspace (`/me` -> `app.id_code`). The first run that loads a name
(`acme-us` from the workspaces file, or `us`, `eu`, `au` for the INTERCOM_ACCESS_TOKEN_*
variables) records that workspace id in `iru_meta.workspace_bindings`; every later run compares
its token's workspace with it before anything is loaded, and a token of another workspace
stops that name with one line (`docs/ingestion.md`, One name, one workspace). Without it the
run would reuse the old workspace's cursors (the name's dlt pipeline), skip the new one's
history and mix both workspaces under one name. One workspace is bound to one name: a second
name whose token reports a bound workspace stops too (two pipelines would share its rows).

A file written while regions were the unit is bound by region code, to the workspace id its
`intercom.workspaces` rows already hold, never to the new token's.
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


def _recorded(con: Any, name: str) -> Workspace | None:
    if not _has_table(con, "iru_meta", "workspace_bindings"):
        return None
    row = con.execute(f"select workspace_id, workspace_name from {BINDINGS_TABLE} where name = ?",
                      [name]).fetchone()
    return Workspace(row[0], row[1]) if row is not None else None


def bound_name(con: Any, workspace_id: str) -> str | None:
    """The name `workspace_id` is bound to; in a file from before bindings, the region code its
    `intercom.workspaces` rows hold; None when neither says."""
    if _has_table(con, "iru_meta", "workspace_bindings"):
        row = con.execute(f"select name from {BINDINGS_TABLE} where workspace_id = ? order by name",
                          [workspace_id]).fetchone()
        if row is not None:
            return str(row[0])
    if _has_table(con, DATASET, "workspaces"):
        row = con.execute(f"select region from {DATASET}.workspaces where workspace_id = ? limit 1",
                          [workspace_id]).fetchone()
        if row is not None:
            return str(row[0])
    return None


def _bound_to_other_name(con: Any, name: str, workspace_id: str) -> str | None:
    if not _has_table(con, "iru_meta", "workspace_bindings"):
        return None
    row = con.execute(f"select name from {BINDINGS_TABLE} where workspace_id = ? and name <> ? order by name",
                      [workspace_id, name]).fetchone()
    return row[0] if row is not None else None


def bound_workspace(con: Any, name: str) -> Workspace | None:
    """The workspace `name` is bound to: its binding row, else (a file written before bindings
    existed, where a region code named the one workspace of a region) the workspace its newest
    `intercom.workspaces` row holds, else None (nothing stored)."""
    recorded = _recorded(con, name)
    if recorded is not None:
        return recorded
    region = name
    if region in REGIONS and _has_table(con, DATASET, "workspaces"):
        row = con.execute(f"select workspace_id, name from {DATASET}.workspaces where region = ? "
                          "and workspace_id is not null order by _dlt_valid_to is null desc, _dlt_valid_from desc "
                          "limit 1", [region]).fetchone()
        if row is not None:
            return Workspace(row[0], _shown(row[1]))
    return None


def _token_setting(name: str, token_setting: str | None) -> str:
    if token_setting:
        return token_setting
    return REGIONS[name].token_env if name in REGIONS else f"workspace {name}'s token setting"


def workspace_changed(path: Path, name: str, bound: Workspace, reported: Workspace,
                      token_setting: str | None = None) -> ConfigError:
    """The one line of a token whose workspace is not the one `name`'s data belongs to."""
    return ConfigError(
        f"[{name}] {KIND_WORDS['auth']}: the token is of workspace {reported}, but {path} holds {name} as "
        f"workspace {bound}; nothing was loaded. Put {bound.workspace_id}'s token back in "
        f"{_token_setting(name, token_setting)}, or replace {name}'s data by {reported.workspace_id} with "
        f"`iru-pipeline rebind --workspace {name}`")


def verify_workspace(con: Any, path: Path, name: str, reported: Workspace,
                     token_setting: str | None = None) -> Workspace | None:
    """The bound workspace if `reported` is it, None when the name is not bound yet; else
    ConfigError (`workspace_changed`, or the workspace is bound to another name). Reads only."""
    bound = bound_workspace(con, name)
    if bound is not None and bound.workspace_id != reported.workspace_id:
        raise workspace_changed(path, name, bound, reported, token_setting)
    other = _bound_to_other_name(con, name, reported.workspace_id)
    if other is not None:
        raise ConfigError(
            f"[{name}] {KIND_WORDS['auth']}: the token is of workspace {reported}, which {path} holds as "
            f"workspace {other} already; nothing was loaded. A workspace is loaded under one name: remove one "
            f"of the two, or give {name} the token of the workspace it is meant for")
    return bound


def _record(con: Any, name: str, region: str, workspace: Workspace) -> None:
    con.execute("create schema if not exists iru_meta")
    con.execute(_DDL)
    con.execute(f"insert or replace into {BINDINGS_TABLE} values (?, ?, ?, ?, now())",
                [name, region, workspace.workspace_id, workspace.name])


def bind_workspace(path: Path, name: str, region: str, me: dict[str, Any],
                   token_setting: str | None = None) -> Workspace:
    """Check the token's workspace (its `/me`) against the one `name` is bound to, recording
    the binding on first use (a file from before bindings: the workspace its rows hold).
    Raises ConfigError, before anything is written, when the workspace differs."""
    reported = Workspace.from_me(me)
    con = duckdb.connect(str(path))
    try:
        bound = verify_workspace(con, path, name, reported, token_setting)
        if _recorded(con, name) is None:
            con.execute("begin")
            _record(con, name, region, bound or reported)
            con.execute("commit")
        return bound or reported
    finally:
        con.close()


def check_workspace(path: Path, name: str, me: dict[str, Any]) -> str | None:
    """For `check`: the one line of a changed workspace, or None. Reads only; says nothing
    while another run of the pipeline holds the file (that run checks it itself)."""
    if not path.exists() or path.stat().st_size == 0 or lock_holders(path):
        return None
    with database_turn(path, shared=True, wait=False, create=False) as turn:
        if not turn:
            return None
        con = duckdb.connect(str(path), read_only=True)
        try:
            verify_workspace(con, path, name, Workspace.from_me(me))
        except ConfigError as exc:
            return str(exc)
        finally:
            con.close()
    return None


def _resource_tables(con: Any, schema: str) -> list[str]:
    """Tables of `schema` holding loaded rows (the registry's resources)."""
    names = {r.name for r in RESOURCES}
    rows = con.execute("select table_name from information_schema.columns where table_schema = ? "
                       "and column_name = 'workspace_id'", [schema]).fetchall()
    return sorted(r[0] for r in rows if r[0] in names)


def rebind(path: Path, pipelines_dir: Path, name: str, region: str,
           me: dict[str, Any]) -> tuple[Workspace | None, int]:
    """Bind `name` to the workspace of `me` deliberately: in one transaction, remove the rows
    of the workspace it was bound to from every resource table (history included) and the
    name's dlt state (its cursors), and record the new binding, so the next run loads the new
    workspace in full and nothing of the old one is mixed with it. Evidence runs and exports
    already made keep what they derived. Returns the workspace bound before (None if none)
    and the rows removed."""
    workspace = Workspace.from_me(me)
    pipeline = f"intercom_{name}"
    con = duckdb.connect(str(path))
    try:
        before = bound_workspace(con, name)
        if before is not None and before.workspace_id == workspace.workspace_id:
            return before, 0
        removed = 0
        con.execute("begin")
        old_id = before.workspace_id if before is not None else None
        for table in _resource_tables(con, DATASET):
            count = con.execute(f"select count(*) from {DATASET}.{table} where workspace_id = ?", [old_id]).fetchall()
            removed += count[0][0]
            con.execute(f"delete from {DATASET}.{table} where workspace_id = ?", [old_id])
        for table in _resource_tables(con, STAGING):  # the latest merge load's copy (docs/ingestion.md)
            con.execute(f"delete from {STAGING}.{table} where workspace_id = ?", [old_id])
        if _has_table(con, DATASET, "_dlt_pipeline_state"):
            con.execute(f"delete from {DATASET}._dlt_pipeline_state where pipeline_name = ?", [pipeline])
        _record(con, name, region, workspace)
        con.execute("commit")
    finally:
        con.close()
    # The working dir's copy of the state is dropped too (DuckDB holds the state: docs/ingestion.md).
    shutil.rmtree(pipelines_dir / pipeline, ignore_errors=True)
    return before, removed
