"""`iru-pipeline rekey --old-key-env VAR`: move the stored pseudonyms to a new PII key.

Pseudonyms are one-way (HMAC), so they cannot be converted by themselves. The old key (read
from the environment variable VAR, never from the command line) is checked against the
DuckDB file's key binding; every contact of every stored workspace is then read again from
Intercom (clear e-mail, phone and external id, held in memory only), which maps each old
pseudonym to the new one. In one transaction: the contacts' HMAC columns and the pseudonyms
inside activity-log texts are rewritten, pseudonyms that no current contact maps (contacts
deleted since) are cleared, dlt's staging copies are emptied, and the binding moves to the
new key. Any failure before the commit leaves the file as it was. After it the database is
copied into a fresh file that replaces it (the old values stayed in freed blocks), and the dlt
working dirs, which may hold the last run's rows, are removed. Evidence already collected
keeps its run's pseudonyms (its collection run records the key's fingerprint).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline.config import ConfigError, Settings
from iru_pipeline.env_names import token_env
from iru_pipeline.intercom_client import IntercomClient
from iru_pipeline.intercom_records.pii import Pseudonymizer
from iru_pipeline.pii_key import KEY_SCHEME, KEY_TABLE, pii_key_fingerprint, verify_pii_key
from iru_pipeline.regions import REGIONS

HMAC_COLUMNS = {"email_hmac": ("email", "email"), "phone_hmac": ("phone", "phone"),
                "external_id_hmac": ("external_id", "external_id")}
"""Contacts' pseudonym columns: column -> (Pseudonymizer method, contact field)."""
_TEXT_PSEUDONYM = re.compile(r"<(email|phone):([0-9a-f]{8})(@[^>]*)?>")
"""How `Pseudonymizer.scrub_text` writes a pseudonym into free text."""
_UNMAPPED = "unmapped"
Mapping = dict[tuple[str, str, str], str | None]
"""(workspace id, kind, old pseudonym) -> new pseudonym."""


def rekey(settings: Settings, old_key: str, log: Callable[[str], None]) -> int:
    """Re-pseudonymise the DuckDB file of `settings` from `old_key` to IRU_PII_KEY.
    Returns how many stored pseudonyms were rewritten."""
    if settings.pii_key is None:
        raise ConfigError("IRU_PII_KEY is not set: set it to the new key")
    new_key = settings.pii_key.reveal()
    if old_key == new_key:
        raise ConfigError("the old key and IRU_PII_KEY are the same: set IRU_PII_KEY to the new key")
    workspaces = _check_old_key(settings, old_key)
    mapping: Mapping = {}
    for name, workspace_id in workspaces:
        mapping.update(_read_mapping(settings, name, workspace_id, old_key, new_key))
        log(f"[{name}] {sum(1 for k in mapping if k[0] == workspace_id)} pseudonyms mapped from the contacts "
            "in Intercom")
    return _rewrite(settings, mapping, new_key, log)


def _check_old_key(settings: Settings, old_key: str) -> list[tuple[str, str]]:
    path = settings.duckdb_path
    if not path.exists():
        raise ConfigError(f"IRU_DUCKDB_PATH={path} does not exist: there is nothing to re-key")
    con = duckdb.connect(str(path), read_only=True)
    try:
        try:
            bound = verify_pii_key(con, path, old_key)
        except ConfigError:
            raise ConfigError(f"the old key is not the key {path} was written with: nothing was changed; "
                              "set the --old-key-env variable to that key") from None
        if bound is None:
            raise ConfigError(f"{path} has no PII key binding to check the old key against: run "
                              "`iru-pipeline run` once with the old key, then re-key") from None
        has_contacts = con.execute("select count(*) from information_schema.tables where table_schema = "
                                   "'intercom' and table_name = 'contacts'").fetchall()[0][0]
        ids = [r[0] for r in con.execute("select distinct workspace_id from intercom.contacts order by 1"
                                         ).fetchall()] if has_contacts else []
        names = {workspace_id: _bound_name(con, workspace_id) for workspace_id in ids}
    finally:
        con.close()
    configured = {ws.name for ws in settings.workspaces}
    out = []
    for workspace_id, name in names.items():
        if name is None or name not in configured:
            which = f"workspace {name} ({workspace_id})" if name else f"workspace {workspace_id}"
            fix = f"set {token_env(name)}" if name in REGIONS else "configure it (workspaces file)"
            raise ConfigError(f"{path} holds contacts of {which}, which is not configured: {fix} so its "
                              "contacts can be read again")
        out.append((name, str(workspace_id)))
    return out


def _bound_name(con: Any, workspace_id: str) -> str | None:
    from iru_pipeline.workspace_binding import bound_name

    return bound_name(con, workspace_id)


def _read_mapping(settings: Settings, name: str, workspace_id: str, old_key: str, new_key: str) -> Mapping:
    old, new = Pseudonymizer(old_key, workspace_id), Pseudonymizer(new_key, workspace_id)
    ws = settings.workspace(name)
    mapping: Mapping = {}
    with IntercomClient(ws.region_code, ws.base_url, ws.token, workspace=ws.name, token_setting=ws.token_setting,
                        base_url_setting=ws.base_url_setting) as client:
        for page in client.iter_cursor("/contacts", "data", per_page=150, resource="contacts"):
            for contact in page.items:
                for kind, fld in HMAC_COLUMNS.values():
                    before = getattr(old, kind)(contact.get(fld))
                    if before:
                        mapping[(workspace_id, kind, before)] = getattr(new, kind)(contact.get(fld))
    return mapping


def _rewrite(settings: Settings, mapping: Mapping, new_key: str, log: Callable[[str], None]) -> int:
    """One transaction: contacts' HMAC columns, activity-log texts, dlt's staging copies, the key
    binding; then the file is rewritten and the dlt working dirs removed."""
    con = duckdb.connect(str(settings.duckdb_path))
    try:
        con.execute("begin")
        con.execute("create temp table rekey_map (workspace_id varchar, kind varchar, old varchar, new varchar)")
        con.executemany("insert into rekey_map values (?, ?, ?, ?)", [(*k, v) for k, v in mapping.items()])
        changed = 0
        for column, (kind, _field) in HMAC_COLUMNS.items():
            changed += con.execute(
                f"update intercom.contacts c set {column} = (select m.new from rekey_map m where "
                f"m.workspace_id = c.workspace_id and m.kind = ? and m.old = c.{column}) "
                f"where c.{column} is not null", [kind]).fetchall()[0][0]
        # dlt's merge staging keeps each table's last load (contacts, activity-log texts): no
        # old-key pseudonym may stay there. Nothing reads it; the next merge load refills it.
        for (table,) in con.execute("select table_name from information_schema.tables where table_schema = "
                                    "'intercom_staging' and table_type = 'BASE TABLE'").fetchall():
            con.execute(f'delete from intercom_staging."{table}"')
        changed += _rewrite_activity_texts(con, mapping)
        salt = os.urandom(16)
        con.execute(f"delete from {KEY_TABLE}")
        con.execute(f"insert into {KEY_TABLE} values (?, ?, ?, now())",
                    [KEY_SCHEME, salt, pii_key_fingerprint(new_key, salt)])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.close()
    try:
        _rewrite_file(settings.duckdb_path)
    except BaseException:
        log(f"the pseudonyms moved to the new key, but {settings.duckdb_path} was not rewritten: its freed "
            "blocks may still hold old ones until DuckDB reuses them")
        raise
    _drop_working_dirs(settings.pipelines_dir)
    return changed


def _rewrite_file(path: Path) -> None:
    """Copy the database into a fresh file that then replaces it. An update writes new blocks
    and frees the old ones without clearing them, so after the commit the file's bytes still
    held most old pseudonyms. DuckDB has no command that clears freed blocks; COPY FROM
    DATABASE writes the live contents only (tables, views, macros, sequences, constraints,
    comments). The caller holds the pipeline's turn on the file, so no run opens it meanwhile."""
    fresh = path.with_name(f"{path.stem}.rekeyed{path.suffix}")
    _remove(fresh)
    con = duckdb.connect(str(fresh))
    try:
        source = str(path).replace("'", "''")
        con.execute(f"attach '{source}' as rekey_source (read_only)")
        target = con.execute("select current_database()").fetchall()[0][0]
        con.execute(f'copy from database rekey_source to "{target}"')
        con.execute("detach rekey_source")
    except BaseException:
        con.close()
        _remove(fresh)
        raise
    con.close()  # checkpoints: the fresh file is whole, without a WAL
    old = path.stat()
    os.chmod(fresh, stat.S_IMODE(old.st_mode))
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        try:  # re-keyed through sudo: the file stays its owner's, who runs the pipeline
            os.chown(fresh, old.st_uid, old.st_gid)
        except PermissionError:
            pass  # not root: the owner is this user's, as for any file it writes
    os.replace(fresh, path)


def _remove(db: Path) -> None:
    for file in (db, db.with_name(db.name + ".wal")):
        file.unlink(missing_ok=True)


def _drop_working_dirs(pipelines_dir: Path) -> None:
    """The dlt working dirs may hold a load package of the last run (its rows, under the old
    key). Every run rebuilds them from DuckDB, so they go whole."""
    if pipelines_dir.is_dir():
        for working_dir in pipelines_dir.iterdir():
            if working_dir.is_dir():
                shutil.rmtree(working_dir)


def _rewrite_activity_texts(con: Any, mapping: Mapping) -> int:
    exists = con.execute("select count(*) from information_schema.tables where table_schema = 'intercom' "
                         "and table_name = 'activity_logs'").fetchall()[0][0]
    if not exists:
        return 0
    short = {(r, kind, old[:8]): (new or _UNMAPPED)[:8] for (r, kind, old), new in mapping.items()}
    rows = con.execute("select workspace_id, id, cast(activity_description as varchar), cast(metadata as varchar) "
                       "from intercom.activity_logs where contains(coalesce(cast(activity_description as varchar), '') "
                       "|| coalesce(cast(metadata as varchar), ''), '<email:') or contains(coalesce(cast("
                       "activity_description as varchar), '') || coalesce(cast(metadata as varchar), ''), '<phone:')"
                       ).fetchall()
    for workspace_id, log_id, description, metadata in rows:
        def swap(m: re.Match[str], workspace_id: str = workspace_id) -> str:
            new = short.get((workspace_id, m.group(1), m.group(2)), _UNMAPPED)
            return f"<{m.group(1)}:{new}{m.group(3) or ''}>"

        con.execute("update intercom.activity_logs set activity_description = ?, metadata = ? "
                    "where workspace_id = ? and id = ?",
                    [_TEXT_PSEUDONYM.sub(swap, description) if description else description,
                     _TEXT_PSEUDONYM.sub(swap, metadata) if metadata else metadata, workspace_id, log_id])
    return len(rows)
