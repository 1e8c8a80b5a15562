"""The PII key a DuckDB file's pseudonyms were made with, bound to the file.

The first run that writes stores a salted, slow fingerprint of IRU_PII_KEY (never the key);
every later run checks its key against it before any request or write, so a changed key
stops with a one-line error instead of silently making pseudonyms that no longer join the
stored ones (`iru-pipeline rekey` moves them to a new key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline.config import ConfigError
from iru_pipeline.storage import database_turn, lock_holders

KEY_TABLE = "iru_meta.pii_key"
"""One row: the salted, slow fingerprint of the PII key the stored pseudonyms were made with."""
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
KEY_SCHEME = "scrypt-n16384-r8-p1"
KEY_ID_HEX = 16
"""`key_id`, the part of the fingerprint recorded with evidence runs and exports."""


def pii_key_fingerprint(key: str, salt: bytes) -> str:
    """scrypt of the key with the database's random salt: the same key gives a different
    fingerprint in every database, and guessing a key from it costs a scrypt per guess."""
    return hashlib.scrypt(key.encode(), salt=salt, **_SCRYPT).hex()


def _key_changed(path: Path) -> ConfigError:
    return ConfigError(
        f"IRU_PII_KEY is not the key {path} was written with, so new pseudonyms would not join the stored "
        "ones: set IRU_PII_KEY back to that key, or re-key the stored pseudonyms with "
        "`iru-pipeline rekey --old-key-env VAR` (VAR holding the old key)")


def _has_table(con: Any, schema: str, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? "
                            "and table_name = ?", [schema, table]).fetchone()[0])


def _legacy_key_ids(con: Any) -> set[str]:
    """Key ids of evidence runs written before the binding existed (an unsalted 48-bit hash)."""
    if not _has_table(con, "evidence", "evidence_collection_run"):
        return set()
    rows = con.execute("select distinct hmac_key_id from evidence.evidence_collection_run "
                       "where length(hmac_key_id) = 12").fetchall()
    return {r[0] for r in rows}


def _legacy_key_id(key: str) -> str:
    # The fingerprint earlier versions recorded; computed only to recognise it and replace it.
    return hashlib.sha256(b"iru-pii-key-id:" + key.encode()).hexdigest()[:12]


def verify_pii_key(con: Any, path: Path, key: str) -> str | None:
    """The key id of the database's bound key if `key` is it; None when no key is bound yet
    (and `key` matches what earlier versions recorded, if anything); else ConfigError."""
    if _has_table(con, "iru_meta", "pii_key"):
        row = con.execute(f"select salt, fingerprint from {KEY_TABLE}").fetchone()
        if row is not None:
            if not hmac.compare_digest(pii_key_fingerprint(key, bytes(row[0])), row[1]):
                raise _key_changed(path)
            return str(row[1])[:KEY_ID_HEX]
    legacy = _legacy_key_ids(con)
    if legacy and _legacy_key_id(key) not in legacy:
        raise _key_changed(path)
    return None


def bind_pii_key(path: Path, key: Any) -> str:
    """Check the PII key against the one the DuckDB file is bound to, binding it on first use
    (also on a file written before bindings existed, whose evidence runs recorded an unsalted
    key id: that id is checked, then replaced by the new key id). Returns the key id.
    Raises ConfigError, before anything is written, when the key differs."""
    secret = key.reveal() if hasattr(key, "reveal") else str(key)
    con = duckdb.connect(str(path))
    try:
        known = verify_pii_key(con, path, secret)
        if known is not None:
            return known
        salt = os.urandom(16)
        fingerprint = pii_key_fingerprint(secret, salt)
        con.execute("begin")
        con.execute("create schema if not exists iru_meta")
        con.execute(f"create table if not exists {KEY_TABLE} (scheme varchar not null, salt blob not null, "
                    "fingerprint varchar not null, bound_at timestamptz not null)")
        con.execute(f"insert into {KEY_TABLE} values (?, ?, ?, now())", [KEY_SCHEME, salt, fingerprint])
        if _legacy_key_ids(con):
            con.execute("update evidence.evidence_collection_run set hmac_key_id = ? where hmac_key_id = ?",
                        [fingerprint[:KEY_ID_HEX], _legacy_key_id(secret)])
        con.execute("commit")
        return fingerprint[:KEY_ID_HEX]
    finally:
        con.close()


def check_pii_key(settings: Any) -> None:
    """Before any request: a run with another PII key than the stored pseudonyms' stops here.
    Reads only; skipped while another run of the pipeline holds the file or its turn (the
    ingestion asset checks again, and binds the key on first use, before it writes)."""
    path = settings.duckdb_path
    if settings.pii_key is None or not path.exists() or path.stat().st_size == 0 or lock_holders(path):
        return
    with database_turn(path, shared=True, wait=False, create=False) as turn:
        if not turn:
            return
        con = duckdb.connect(str(path), read_only=True)
        try:
            verify_pii_key(con, path, settings.pii_key.reveal())
        finally:
            con.close()


