"""`iru-pipeline verify`: an untouched signed export passes; every tampering an auditor must
catch is caught, in one line, with a non-zero exit."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from iru_pipeline.cli import main
from iru_pipeline.evidence.signing import generate_key_pair, load_signer
from iru_pipeline.export import export_run
from iru_pipeline_tests.helpers import (
    build_world_db,
    derive_world,
    world_run,
    write_as_chain_version_1,
    write_as_chain_version_2,
    write_world_inputs,
)

RUNS = ("run-1", "run-2", "run-3")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three evidence runs of the world, each exported and signed; returns the paths by name
    (`run-1`.. the export folders, `key`, `pub`, `other_pub`, `db`)."""
    folder = tmp_path_factory.mktemp("verify")
    (folder / "data").mkdir()
    db = build_world_db(folder / "data" / "iru.duckdb")
    files = write_world_inputs(folder / "inputs")
    now = datetime.now(UTC)
    for k, run_id in enumerate(RUNS):
        derive_world(db, world_run(files, run_id, now + timedelta(minutes=k)))
    keys = folder / "keys"
    pub, _ = generate_key_pair(keys / "signing.pem")
    other_pub, _ = generate_key_pair(keys / "other.pem")
    signer = load_signer(keys / "signing.pem", db.parent)
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {run_id: export_run(con, run_id, folder / "exports", signer).folder for run_id in RUNS}
    finally:
        con.close()
    return {**out, "key": keys / "signing.pem", "pub": pub, "other_pub": other_pub, "db": db}


def verify(folder: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["verify", str(folder), *args])
    out = capsys.readouterr()
    return code, [line for line in out.out.splitlines() if line]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rewrite_sums(folder: Path) -> None:
    """What a tamperer does after editing: SHA256SUMS recomputed for every file."""
    (folder / "SHA256SUMS").write_text("".join(
        f"{sha(p.read_bytes())}  {p.relative_to(folder).as_posix()}\n"
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"))


def rehash_manifest(folder: Path) -> None:
    """The manifest's entry of every file made to match the files as they now are."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        data = (folder / entry["path"]).read_bytes()
        entry["sha256"], entry["bytes"] = sha(data), len(data)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def test_an_untouched_signed_export_passes_with_its_key_and_predecessor(chain, capsys) -> None:
    code, lines = verify(chain["run-3"], "--public-key", str(chain["pub"]), "--previous", str(chain["run-2"]),
                         capsys=capsys)
    assert code == 0, lines
    assert len(lines) == 1 and lines[0].startswith(f"{chain['run-3'].name}: OK:")
    assert "signed by key" in lines[0] and f"chained to {chain['run-2'].name}" in lines[0]


def test_every_file_edited_with_sums_regenerated_is_caught(chain, tmp_path: Path, capsys) -> None:
    original = chain["run-2"]
    paths = sorted(p.relative_to(original) for p in original.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    assert {"summary.md", "manifest.json", "manifest.sig", "params.json"} <= {p.as_posix() for p in paths}
    for rel in paths:
        copy = tmp_path / rel.as_posix().replace("/", "_")
        shutil.copytree(original, copy)
        data = bytearray((copy / rel).read_bytes())
        data[len(data) // 2] ^= 0x01  # one flipped bit
        (copy / rel).write_bytes(bytes(data))
        rewrite_sums(copy)
        code, lines = verify(copy, "--public-key", str(chain["pub"]), capsys=capsys)
        assert code == 1 and lines, rel
        assert all(line.startswith(f"{copy.name}: ") for line in lines), lines


def test_an_edited_summary_with_manifest_rehashed_without_the_key_fails_the_signature(chain, tmp_path: Path,
                                                                                     capsys) -> None:
    folder = tmp_path / "export"
    shutil.copytree(chain["run-2"], folder)
    summary = (folder / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| T08 "))
    assert "fail" in row
    (folder / "summary.md").write_text(summary.replace(row, row.replace("fail", "pass")))
    rehash_manifest(folder)
    rewrite_sums(folder)
    code, lines = verify(folder, "--public-key", str(chain["pub"]), capsys=capsys)
    assert (code, lines) == (1, ["export: summary.md does not match the hash recorded at collection time",
                                 "export: manifest.sig is not a valid signature of manifest.json by the given key"])


def unsign(folder: Path) -> None:
    """What a tamperer does to a signed export to drop the signature: no manifest.sig, no signing
    key in manifest.json, the summary's notice says unsigned (so nothing disagrees)."""
    (folder / "manifest.sig").unlink()
    manifest = json.loads((folder / "manifest.json").read_text())
    signed_notice = f"> Signed (Ed25519, public key sha256 `{manifest['signing']['public_key_sha256']}`)"
    manifest["signing"] = None
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    summary = (folder / "summary.md").read_text()
    head, notice, rest = summary.partition(signed_notice)
    assert notice, "the signed export's summary names its key"
    unsigned = ("> **Unsigned export.** Nothing proves who wrote these files: anyone holding the folder can "
                "rewrite them and every hash. Ask for an export signed with IRU_SIGNING_KEY_FILE and check "
                "it with `iru-pipeline verify FOLDER --public-key KEY.pub`.")
    (folder / "summary.md").write_text(head + unsigned + "\n" + rest.split("\n", 1)[1])


def test_an_unsigned_export_passes_untouched_and_an_edited_summary_breaks_the_chain(chain, tmp_path: Path,
                                                                                   capsys) -> None:
    untouched = tmp_path / "untouched"
    shutil.copytree(chain["run-2"], untouched)
    unsign(untouched)
    rehash_manifest(untouched)
    rewrite_sums(untouched)
    code, lines = verify(untouched, capsys=capsys)
    assert code == 0 and "NOT SIGNED" in lines[0], lines

    folder = tmp_path / "export"
    shutil.copytree(untouched, folder)
    summary = (folder / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| T08 "))
    assert "fail" in row
    (folder / "summary.md").write_text(summary.replace(row, row.replace("fail", "pass")))
    rehash_manifest(folder)
    rewrite_sums(folder)
    code, lines = verify(folder, capsys=capsys)
    assert (code, lines) == (1, ["export: summary.md does not match the hash recorded at collection time"])


def test_an_unsigned_export_whose_summary_claims_a_signature_is_caught(chain, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "export"
    shutil.copytree(chain["run-2"], folder)
    summary = (folder / "summary.md").read_text()
    unsign(folder)
    (folder / "summary.md").write_text(summary)  # the signed notice kept: it claims what is no longer true
    rehash_manifest(folder)
    rewrite_sums(folder)
    code, lines = verify(folder, capsys=capsys)
    assert (code, lines) == (1, ["export: summary.md: its signing notice or manifest hash does not say what "
                                 "manifest.json says"])


def test_an_edited_table_with_every_hash_rewritten_breaks_the_chain_even_unsigned(chain, tmp_path: Path,
                                                                                 capsys) -> None:
    folder = tmp_path / "export"
    shutil.copytree(chain["run-2"], folder)
    unsign(folder)
    table = folder / "tables" / "evidence_control_tests.json"
    assert b'"status":"fail"' in table.read_bytes()
    table.write_bytes(table.read_bytes().replace(b'"status":"fail"', b'"status":"pass"'))
    rehash_manifest(folder)
    rewrite_sums(folder)
    code, lines = verify(folder, capsys=capsys)
    assert (code, lines) == (1, ["export: tables/evidence_control_tests.json does not match the hash recorded at "
                                 "collection time"])


def test_a_run_removed_from_the_middle_of_the_chain_is_caught(chain, capsys) -> None:
    code, lines = verify(chain["run-3"], "--public-key", str(chain["pub"]), "--previous", str(chain["run-1"]),
                         capsys=capsys)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"{chain['run-3'].name}: chain broken: this run's previous_manifest_sha256")
    assert chain["run-1"].name in lines[0]


def test_the_signature_needs_the_right_public_key(chain, capsys) -> None:
    code, lines = verify(chain["run-1"], "--public-key", str(chain["other_pub"]), capsys=capsys)
    assert code == 1 and len(lines) == 1 and "is not the one manifest.json names" in lines[0]
    code, lines = verify(chain["run-1"], capsys=capsys)
    assert code == 1 and len(lines) == 1 and "pass --public-key" in lines[0]


def test_a_missing_folder_or_unreadable_key_is_a_one_line_usage_error(chain, tmp_path: Path, capsys) -> None:
    assert main(["verify", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a folder" in err[0]
    (tmp_path / "bad.pub").write_text("not a key")
    assert main(["verify", str(chain["run-1"]), "--public-key", str(tmp_path / "bad.pub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a PEM public key" in err[0]


# ------------------------------------------------------------- runs written before chain version 2

def test_runs_chained_by_version_1_still_verify_and_a_new_run_chains_onto_them(tmp_path: Path, capsys) -> None:
    from iru_pipeline.evidence.manifest import verify_chain

    (tmp_path / "data").mkdir()
    db = build_world_db(tmp_path / "data" / "iru.duckdb")
    files = write_world_inputs(tmp_path / "inputs")
    now = datetime.now(UTC)
    for k, run_id in enumerate(("old-1", "old-2")):
        derive_world(db, world_run(files, run_id, now + timedelta(minutes=k)))
    old = write_as_chain_version_1(db, tmp_path / "scratch")

    con = duckdb.connect(str(db), read_only=True)
    try:
        assert verify_chain(con) == []
        old_export = export_run(con, "old-2", tmp_path / "exports").folder
    finally:
        con.close()
    manifest = json.loads((old_export / "manifest.json").read_text())
    assert manifest["chain"]["version"] == 1 and manifest["chain"]["manifest_sha256"] == old["old-2"]
    assert verify(old_export, capsys=capsys)[0] == 0

    # The next run, by this version, upgrades the table in place and chains onto the old runs.
    new_hash = derive_world(db, world_run(files, "new-3", now + timedelta(minutes=2)))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert verify_chain(con) == []
        assert con.execute("select distinct previous_manifest_sha256, chain_version from "
                           "evidence.evidence_collection_run where run_id = 'new-3'").fetchall() == [(old["old-2"], 3)]
        new_export = export_run(con, "new-3", tmp_path / "exports").folder
    finally:
        con.close()
    assert json.loads((new_export / "manifest.json").read_text())["chain"]["manifest_sha256"] == new_hash
    assert verify(new_export, "--previous", str(old_export), capsys=capsys)[0] == 0

    # An old run's rows edited afterwards are still caught by its version 1 chain.
    con = duckdb.connect(str(db))
    con.execute("update evidence.evidence_control_tests set status = 'pass' where run_id = 'old-1' and status = 'fail'")
    problems = verify_chain(con)
    con.close()
    assert problems == ["run old-1: evidence rows changed after the run (manifest hash differs)"]


def test_a_column_added_by_a_later_version_changes_neither_old_exports_nor_the_chain(tmp_path: Path,
                                                                                    capsys) -> None:
    from iru_pipeline.evidence.manifest import verify_chain

    (tmp_path / "data").mkdir()
    db = build_world_db(tmp_path / "data" / "iru.duckdb")
    files = write_world_inputs(tmp_path / "inputs")
    derive_world(db, world_run(files, "run-1", datetime.now(UTC)))
    con = duckdb.connect(str(db), read_only=True)
    before = export_run(con, "run-1", tmp_path / "before").folder
    con.close()
    con = duckdb.connect(str(db))
    con.execute("alter table evidence.evidence_control_tests add column reviewer_note varchar")
    assert verify_chain(con) == []
    after = export_run(con, "run-1", tmp_path / "after").folder
    con.close()
    names = sorted(p.relative_to(before) for p in before.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(after) for p in after.rglob("*") if p.is_file())
    for rel in names:
        assert (before / rel).read_bytes() == (after / rel).read_bytes(), rel
    assert verify(after, capsys=capsys)[0] == 0


def test_runs_chained_by_version_2_still_verify_and_a_new_run_chains_onto_them(tmp_path: Path, capsys) -> None:
    from iru_pipeline.evidence.manifest import verify_chain

    (tmp_path / "data").mkdir()
    db = build_world_db(tmp_path / "data" / "iru.duckdb")
    files = write_world_inputs(tmp_path / "inputs")
    now = datetime.now(UTC)
    for k, run_id in enumerate(("old-1", "old-2")):
        derive_world(db, world_run(files, run_id, now + timedelta(minutes=k)))
    old = write_as_chain_version_2(db, tmp_path / "scratch")

    con = duckdb.connect(str(db), read_only=True)
    try:
        assert verify_chain(con) == []
        old_export = export_run(con, "old-2", tmp_path / "exports").folder
    finally:
        con.close()
    chain = json.loads((old_export / "manifest.json").read_text())["chain"]
    assert (chain["version"], chain["manifest_sha256"]) == (2, old["old-2"])
    assert "summary.md" not in chain["files_sha256"]
    assert verify(old_export, capsys=capsys)[0] == 0

    new_hash = derive_world(db, world_run(files, "new-3", now + timedelta(minutes=2)))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert verify_chain(con) == []
        assert con.execute("select distinct previous_manifest_sha256, chain_version from "
                           "evidence.evidence_collection_run where run_id = 'new-3'").fetchall() == [(old["old-2"], 3)]
        new_export = export_run(con, "new-3", tmp_path / "exports").folder
    finally:
        con.close()
    chain = json.loads((new_export / "manifest.json").read_text())["chain"]
    assert chain["manifest_sha256"] == new_hash and "summary.md" in chain["files_sha256"]
    assert verify(new_export, "--previous", str(old_export), capsys=capsys)[0] == 0


def test_the_stored_summary_is_chained_in_the_database(tmp_path: Path) -> None:
    """The summary document stored with a version 3 run is covered by the run's hash there too."""
    from iru_pipeline.evidence.manifest import verify_chain

    (tmp_path / "data").mkdir()
    db = build_world_db(tmp_path / "data" / "iru.duckdb")
    files = write_world_inputs(tmp_path / "inputs")
    derive_world(db, world_run(files, "run-1", datetime.now(UTC)))
    con = duckdb.connect(str(db))
    try:
        assert verify_chain(con) == []
        stored = con.execute("select content from evidence.evidence_run_documents where run_id = 'run-1' "
                             "and path = 'summary.md'").fetchone()[0]
        exported = (export_run(con, "run-1", tmp_path / "exports").folder / "summary.md").read_text()
        title, _, rest = stored.partition("\n\n")
        assert exported.startswith(title + "\n\n> **Unsigned export.**") and exported.endswith(rest)
        con.execute("update evidence.evidence_run_documents set content = replace(content, '| T08 ', '| T08* ')")
        assert verify_chain(con) == ["run run-1: evidence rows changed after the run (manifest hash differs)"]
    finally:
        con.close()
