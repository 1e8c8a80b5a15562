"""The PII key is bound to the DuckDB file like a workspace: its salted scrypt fingerprint is
recorded on first use, a run with another key stops before any request or write (one line,
exit 2), and only that fingerprint's key id is recorded with evidence and exports. Files
written before the binding existed (their evidence runs recorded an unsalted 48-bit key id)
are upgraded in place: the old id is checked against the key, then replaced."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import pytest

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_records.pii import Pseudonymizer
from iru_pipeline.pii_key import KEY_ID_HEX, pii_key_fingerprint
from iru_pipeline_tests.helpers import (  # noqa: F401
    TEST_PII_KEY,
    data_dir_listing,
    files_containing,
    fresh_progress_handler,
    pipeline_env,
    query,
    small_fake,
    tables_containing,
    write_as_chain_version_1,
)

OTHER_KEY = "5f1c0d9e2b7a48c3a1e06d5b9f24c7e8d3b1a0f6e5c4d2b9a8f7e6d5c4b3a291"  # secrets.token_hex(32)


def _use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _stored_email_pseudonyms(db: Path) -> dict[str, str | None]:
    return dict(query(db, "select id, email_hmac from intercom.contacts where region = 'us'"))


def _expected_email_pseudonyms(fake: FakeIntercom, key: str) -> dict[str, str | None]:
    ws = fake.workspace("us")
    pseudo = Pseudonymizer(key, ws.workspace_id)
    return {str(c["id"]): pseudo.email(c.get("email")) for c in ws.contacts()}


def _catalog(db: Path) -> dict[str, list[tuple]]:
    """What the file defines besides its rows: tables and views with their comments and row
    counts, columns with their types, defaults and comments, constraints, macros, sequences."""
    sql = {
        "tables": "select schema_name, table_name, comment, "  # rekey empties dlt's staging tables
                  "if(schema_name = 'intercom_staging', null, estimated_size) from duckdb_tables()",
        "columns": "select schema_name, table_name, column_name, data_type, column_default, is_nullable, comment "
                   "from duckdb_columns()",
        "views": "select schema_name, view_name, sql, comment from duckdb_views() where not internal",
        "constraints": "select schema_name, table_name, constraint_type, constraint_text from duckdb_constraints()",
        "macros": "select schema_name, function_name, macro_definition from duckdb_functions() "
                  "where function_type like '%macro' and not internal",
        "sequences": "select schema_name, sequence_name from duckdb_sequences()",
        "schemas": "select schema_name, comment from duckdb_schemas() where not internal",
    }
    return {name: sorted(query(db, q), key=repr) for name, q in sql.items()}


def _owner(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_mode, st.st_uid, st.st_gid


def _binding(db: Path) -> tuple[bytes, str]:
    (salt, fingerprint), = query(db, "select salt, fingerprint from iru_meta.pii_key")
    return bytes(salt), fingerprint


def test_a_run_with_another_key_stops_before_any_request_or_write(tmp_path: Path, monkeypatch, capsys) -> None:
    with small_fake() as fake:
        env = pipeline_env(fake, tmp_path)
        _use(monkeypatch, env)
        assert main(["run", "--region", "us"]) == 0
        db = tmp_path / "iru.duckdb"
        salt, fingerprint = _binding(db)
        assert len(salt) == 16 and fingerprint == pii_key_fingerprint(TEST_PII_KEY, salt)
        assert query(db, "select distinct hmac_key_id from evidence.evidence_collection_run") == [
            (fingerprint[:KEY_ID_HEX],)]
        before = data_dir_listing(tmp_path)
        capsys.readouterr()

        fake.reset_stats("us")
        monkeypatch.setenv("IRU_PII_KEY", OTHER_KEY)
        assert main(["run", "--region", "us"]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "IRU_PII_KEY is not the key" in lines[0] and "iru-pipeline rekey" in lines[0], err
        assert OTHER_KEY not in err and TEST_PII_KEY not in err
        assert fake.stats("us")["by_route"] == {}, "no request was made"
        assert data_dir_listing(tmp_path) == before, "nothing was written"
        assert _stored_email_pseudonyms(db) == _expected_email_pseudonyms(fake, TEST_PII_KEY)


def test_the_dagster_path_refuses_another_key_before_loading(tmp_path: Path) -> None:
    """A run launched from Dagster (no CLI pre-check) fails its region with the same line and
    writes no pseudonym of the other key."""
    from iru_pipeline_tests.helpers import run_with_env

    with small_fake() as fake:
        env = pipeline_env(fake, tmp_path)
        _settings, first = run_with_env(env, with_evidence=False)
        assert not first.failed
        fake.workspace("us").update_contacts(count=20)  # there is something new to load
        _settings, second = run_with_env({**env, "IRU_PII_KEY": OTHER_KEY}, with_evidence=False)
        assert second.failed and "IRU_PII_KEY is not the key" in (second.outcomes[0].error or "")
        db = tmp_path / "iru.duckdb"
        stored = _stored_email_pseudonyms(db)
        other = set(filter(None, _expected_email_pseudonyms(fake, OTHER_KEY).values()))
        assert not set(stored.values()) & other


def test_the_same_key_gets_another_fingerprint_in_another_database(tmp_path: Path) -> None:
    from iru_pipeline.pii_key import bind_pii_key

    ids = {bind_pii_key(tmp_path / f"{n}.duckdb", TEST_PII_KEY) for n in range(2)}
    assert len(ids) == 2
    unsalted = hashlib.sha256(b"iru-pii-key-id:" + TEST_PII_KEY.encode()).hexdigest()
    for n in range(2):
        salt, fingerprint = _binding(tmp_path / f"{n}.duckdb")
        assert unsalted[:12] not in fingerprint and TEST_PII_KEY not in fingerprint


def _as_written_before_bindings(db: Path, key: str) -> None:
    """Turn a database into what the previous version wrote: no key binding, and evidence runs
    carrying the unsalted key id sha256("iru-pii-key-id:" + key)[:12]."""
    import duckdb

    legacy = hashlib.sha256(b"iru-pii-key-id:" + key.encode()).hexdigest()[:12]
    con = duckdb.connect(str(db))
    try:
        con.execute("drop schema iru_meta cascade")
        con.execute("update evidence.evidence_collection_run set hmac_key_id = ?", [legacy])
    finally:
        con.close()
    write_as_chain_version_1(db, db.parent / "v1-exports")  # and chained its runs by version 1


def test_a_database_from_before_bindings_is_checked_against_its_old_key_id_then_upgraded(
        tmp_path: Path, monkeypatch, capsys) -> None:
    with small_fake() as fake:
        _use(monkeypatch, pipeline_env(fake, tmp_path))
        assert main(["run", "--region", "us"]) == 0
        db = tmp_path / "iru.duckdb"
        _as_written_before_bindings(db, TEST_PII_KEY)
        runs_before = query(db, "select count(distinct run_id) from evidence.evidence_collection_run")[0][0]

        monkeypatch.setenv("IRU_PII_KEY", OTHER_KEY)
        assert main(["run", "--region", "us"]) == 2, "the old key id does not match the other key"
        assert "IRU_PII_KEY is not the key" in capsys.readouterr().err

        monkeypatch.setenv("IRU_PII_KEY", TEST_PII_KEY)
        assert main(["run", "--region", "us"]) == 0
        salt, fingerprint = _binding(db)
        assert fingerprint == pii_key_fingerprint(TEST_PII_KEY, salt)
        ids = query(db, "select run_id, hmac_key_id from evidence.evidence_collection_run")
        assert len({r for r, _ in ids}) == runs_before + 1
        assert {k for _, k in ids} == {fingerprint[:KEY_ID_HEX]}, "the unsalted key id is gone from every run"
        import duckdb

        from iru_pipeline.evidence.manifest import verify_chain

        con = duckdb.connect(str(db), read_only=True)
        try:
            assert verify_chain(con) == []
        finally:
            con.close()


def _activity_pseudonyms(db: Path) -> set[str]:
    import re

    rows = query(db, "select cast(activity_description as varchar) || ' ' || coalesce(cast(metadata as varchar), '') "
                     "from intercom.activity_logs where region = 'us'")
    return {m for (text,) in rows for m in re.findall(r"<email:[^@>]*@[^>]*>|<phone:[^>]*>", text or "")}


def _expected_activity_pseudonyms(fake: FakeIntercom, db: Path, key: str) -> set[str]:
    """The activity-log pseudonyms a fresh load with `key` writes (loaded into a copy)."""
    import re

    pseudo = Pseudonymizer(key, fake.workspace("us").workspace_id)
    texts = [str(e.get("activity_description") or "") + " " + str(e.get("metadata") or "")
             for e in fake.workspace("us").activity_logs(0)]
    return {m for t in texts for m in re.findall(r"<email:[^@>]*@[^>]*>|<phone:[^>]*>", pseudo.scrub_text(t))}


def test_rekey_moves_every_stored_pseudonym_to_the_new_key_in_one_go(tmp_path: Path, monkeypatch, capsys) -> None:
    with small_fake() as fake:
        _use(monkeypatch, pipeline_env(fake, tmp_path))
        assert main(["run", "--region", "us", "--no-reconcile"]) == 0
        db = tmp_path / "iru.duckdb"
        before_texts = _activity_pseudonyms(db)
        assert before_texts, "the fake's activity logs mention contacts"
        old_salt, _ = _binding(db)
        # Earlier versions kept the last run's loaded package, its rows included, in the dlt
        # working dir (a failed load still does): one such contacts file, with the run's rows.
        left = tmp_path / ".dlt_pipelines/intercom_us/load/loaded/1.0/completed_jobs"
        left.mkdir(parents=True)
        con = duckdb.connect(str(db), read_only=True)
        con.execute(f"copy (select * from intercom.contacts) to '{left / 'contacts.0a1b2c3d4e.0.parquet'}'")
        con.close()
        if os.geteuid() == 0:  # the file of a service user, re-keyed through sudo
            os.chown(db, 65534, 65534)
        catalog, owner = _catalog(db), _owner(db)
        capsys.readouterr()

        # The old key is verified first: a wrong one changes nothing.
        monkeypatch.setenv("IRU_PII_KEY", OTHER_KEY)
        monkeypatch.setenv("IRU_OLD_PII_KEY", "f" * 8 + OTHER_KEY[8:])
        assert main(["rekey", "--old-key-env", "IRU_OLD_PII_KEY"]) == 2
        err = capsys.readouterr().err
        assert "the old key is not the key" in err and OTHER_KEY[8:] not in err
        assert _stored_email_pseudonyms(db) == _expected_email_pseudonyms(fake, TEST_PII_KEY)

        monkeypatch.setenv("IRU_OLD_PII_KEY", TEST_PII_KEY)
        assert main(["rekey", "--old-key-env", "IRU_OLD_PII_KEY"]) == 0
        assert _stored_email_pseudonyms(db) == _expected_email_pseudonyms(fake, OTHER_KEY)
        phones = dict(query(db, "select id, phone_hmac from intercom.contacts where region = 'us'"))
        ws = fake.workspace("us")
        assert phones == {str(c["id"]): Pseudonymizer(OTHER_KEY, ws.workspace_id).phone(c.get("phone"))
                          for c in ws.contacts()}
        after_texts = _activity_pseudonyms(db)
        assert after_texts and not after_texts & before_texts
        mapped = {p for p in after_texts if "unmapped" not in p}
        assert mapped <= _expected_activity_pseudonyms(fake, db, OTHER_KEY)
        salt, fingerprint = _binding(db)
        assert fingerprint == pii_key_fingerprint(OTHER_KEY, salt)
        # No old-key pseudonym is left elsewhere: in no table (dlt's staging schema included)
        # and in no file beside the DuckDB file (the package above included). Evidence already
        # collected (its tables, its signed exports) keeps its run's pseudonyms: each
        # collection run records the fingerprint of the key it used.
        old_pseudo = Pseudonymizer(TEST_PII_KEY, ws.workspace_id)
        old = {v for c in ws.contacts() for v in (old_pseudo.email(c.get("email")), old_pseudo.phone(c.get("phone")))
               if v} | before_texts
        needles = {f"old_{n}": value for n, value in enumerate(sorted(old))}
        in_tables = tables_containing(db, needles)
        assert [hit for hit in in_tables if not hit[0].startswith("evidence.")] == []
        assert {key_id for (key_id,) in query(db, "select distinct hmac_key_id from evidence.evidence_collection_run")} \
            == {pii_key_fingerprint(TEST_PII_KEY, old_salt)[:16]}
        in_files = files_containing(tmp_path, needles)
        assert [hit for hit in in_files if not hit[0].startswith(("iru.duckdb", "exports/"))] == []
        # The DuckDB file's bytes hold no more than its evidence tables do (an update frees the
        # old blocks without clearing them).
        assert {name for file, name in in_files if file.startswith("iru.duckdb")} <= {name for _, name in in_tables}
        assert _catalog(db) == catalog, "the rewritten file holds every table, column, view, macro and comment"
        assert _owner(db) == owner

        # The new key now runs; the old one is refused.
        fake.workspace("us").update_contacts(count=10)
        assert main(["run", "--region", "us", "--no-reconcile"]) == 0
        assert _stored_email_pseudonyms(db) == _expected_email_pseudonyms(fake, OTHER_KEY)
        monkeypatch.setenv("IRU_PII_KEY", TEST_PII_KEY)
        assert main(["run", "--region", "us"]) == 2


def test_a_rekey_whose_file_rewrite_fails_says_the_pseudonyms_moved(tmp_path: Path, monkeypatch, capsys) -> None:
    """The rewrite of the file comes after the commit; a full disk there (simulated: this
    machine cannot fill one for a test) fails the command, saying what did happen."""
    import errno

    from iru_pipeline import rekey as rekey_module

    with small_fake() as fake:
        _use(monkeypatch, pipeline_env(fake, tmp_path))
        assert main(["run", "--region", "us", "--no-reconcile"]) == 0
        db = tmp_path / "iru.duckdb"
        capsys.readouterr()

        def full_disk(path: Path) -> None:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr(rekey_module, "_rewrite_file", full_disk)
        monkeypatch.setenv("IRU_PII_KEY", OTHER_KEY)
        monkeypatch.setenv("IRU_OLD_PII_KEY", TEST_PII_KEY)
        assert main(["rekey", "--old-key-env", "IRU_OLD_PII_KEY"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 3, err  # the mapping, what happened, the storage problem
        assert "the pseudonyms moved to the new key, but" in err[1] and "was not rewritten" in err[1]
        assert "full" in err[2] or "space" in err[2]
        assert _stored_email_pseudonyms(db) == _expected_email_pseudonyms(fake, OTHER_KEY)
