"""The auditor export: one folder per run, verifiable with `sha256sum -c`, byte-identical when
exported twice, and every edit detected."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from iru_pipeline.config import ConfigError, load_settings
from iru_pipeline.evidence.tables import EVIDENCE_TABLES
from iru_pipeline.export import export_cli, export_run, verify_export
from iru_pipeline_tests.helpers import (
    WORLD_PII_KEY,
    build_world_db,
    derive_world,
    world_run,
    write_world_inputs,
)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A world database with two evidence runs; returns the db and run id -> manifest hash."""
    folder = tmp_path_factory.mktemp("export")
    db = build_world_db(folder / "iru.duckdb")
    files = write_world_inputs(folder / "inputs")
    now = datetime.now(UTC)
    hashes = {run_id: derive_world(db, world_run(files, run_id, now + timedelta(minutes=k)))
              for k, run_id in enumerate(("run-1", "run-2"))}
    return db, hashes


def export(db: Path, out: Path, run_id: str = "run-2") -> Path:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return export_run(con, run_id, out).folder
    finally:
        con.close()


def sha256sum_check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=folder,
                          capture_output=True, text=True, check=False)


def test_sha256sum_verifies_the_export(two_runs, tmp_path: Path) -> None:
    db, _ = two_runs
    folder = export(db, tmp_path)
    check = sha256sum_check(folder)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = sorted(line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines())
    expected = sorted(["manifest.json", "summary.md", "params.json", "report.html"]
                      + [f"tables/{t.name}.{ext}" for t in EVIDENCE_TABLES for ext in ("csv", "json")])
    assert listed == expected
    assert verify_export(folder) == []


def test_two_exports_of_one_run_are_byte_identical(two_runs, tmp_path: Path) -> None:
    db, _ = two_runs
    first, second = export(db, tmp_path / "a"), export(db, tmp_path / "b")
    assert first.name == second.name and first.name.endswith("_run-2")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    (first / "tables" / "stray.txt").write_text("left over")
    assert export(db, tmp_path / "a") == first and not (first / "tables" / "stray.txt").exists()


def test_editing_any_exported_file_is_detected(two_runs, tmp_path: Path) -> None:
    db, _ = two_runs
    original = export(db, tmp_path / "original")
    for path in sorted(p for p in original.rglob("*") if p.is_file()):
        rel = path.relative_to(original)
        copy = tmp_path / "edited" / str(rel).replace("/", "_")
        shutil.copytree(original, copy)
        data = bytearray((copy / rel).read_bytes())
        data[len(data) // 2] ^= 0x01  # one flipped bit
        (copy / rel).write_bytes(bytes(data))
        assert sha256sum_check(copy).returncode != 0, rel
        assert verify_export(copy), rel


def test_consistent_rewrites_still_break_the_chain(two_runs, tmp_path: Path) -> None:
    """Edit a table and rewrite SHA256SUMS and manifest.json to match: the hashes recorded in
    DuckDB at collection time (manifest chain) still expose the edit."""
    db, _ = two_runs
    folder = export(db, tmp_path)
    table = folder / "tables" / "evidence_control_tests.csv"
    table.write_bytes(table.read_bytes().replace(b",fail,", b",pass,"))
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "tables/evidence_control_tests.csv":
            entry["sha256"] = _sha(table.read_bytes())
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    sums = "".join(f"{_sha(p.read_bytes())}  {p.relative_to(folder).as_posix()}\n"
                   for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "SHA256SUMS")
    (folder / "SHA256SUMS").write_text(sums)
    assert sha256sum_check(folder).returncode == 0
    assert verify_export(folder) == [
        "tables/evidence_control_tests.csv does not match the hash recorded at collection time"]
    (folder / "extra.csv").write_text("x")
    assert "extra.csv is not listed in SHA256SUMS" in verify_export(folder)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_manifest_describes_the_run_and_chains_to_the_previous(two_runs, tmp_path: Path) -> None:
    db, hashes = two_runs
    folder = export(db, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_id"] == "run-2" and manifest["as_of"].endswith("Z")
    assert manifest["chain"]["previous_manifest_sha256"] == hashes["run-1"]
    assert manifest["chain"]["manifest_sha256"] == hashes["run-2"]
    workspaces = {w["region"]: w for w in manifest["workspaces"]}
    assert (workspaces["us"]["api_host"], workspaces["us"]["api_version"], workspaces["us"]["id"]) == (
        "api.intercom.io", "2.16", "us01")
    assert workspaces["eu"]["missing_capabilities"] == ["activity_logs:api_plan_restricted"]
    assert manifest["pii_mode"] == "pseudonymous" and len(manifest["params_sha256"]) == 64
    assert {i["name"] for i in manifest["inputs"]} == {"hr_roster", "access_exceptions", "evidence_reviews"}
    assert len(manifest["streams"]) == 20 and len(manifest["tests"]) == 30
    files = {f["path"]: f for f in manifest["files"]}
    review = files["tables/evidence_admin_access_review.csv"]
    assert (review["rows"], review["columns"][:5]) == (8, ["run_id", "as_of", "workspace_id", "region", "status"])
    assert review["sha256"] == _sha((folder / review["path"]).read_bytes())
    chain = manifest["chain"]
    assert chain["version"] == 3
    run_files = {"tables/evidence_collection_run.csv", "tables/evidence_collection_run.json", "summary.md"}
    data_files = {p: f["sha256"] for p, f in files.items() if p.startswith("tables/") or p == "params.json"}
    assert set(chain["files_sha256"]) == set(data_files) | {"summary.md"}
    assert len(data_files) == 2 * len(EVIDENCE_TABLES) + 1
    assert {p: h for p, h in chain["files_sha256"].items() if p not in run_files} == {
        p: h for p, h in data_files.items() if p not in run_files}
    # summary.md is chained less the two paragraphs the export adds after its title: the signing
    # notice and this run's manifest hash (which cannot be inside what it hashes).
    title, notice, manifest_line, rest = (folder / "summary.md").read_text().split("\n\n", 3)
    assert notice.startswith("> **Unsigned export.**") and manifest_line == (
        f"This run's manifest sha256: `{hashes['run-2']}`.")
    assert chain["files_sha256"]["summary.md"] == _sha(f"{title}\n\n{rest}".encode())
    # The run's own rows hold the chain, so it covers them without the chain columns.
    rows = json.loads((folder / "tables/evidence_collection_run.json").read_text())
    chain_columns = {"tables_sha256", "files_sha256", "previous_manifest_sha256", "manifest_sha256", "chain_seq",
                     "chain_version", "chain_columns"}
    stripped = [json.dumps({k: v for k, v in r.items() if k not in chain_columns}, ensure_ascii=False,
                           separators=(",", ":")) for r in rows]
    assert chain["files_sha256"]["tables/evidence_collection_run.json"] == _sha(
        ("[\n" + ",\n".join(stripped) + "\n]\n").encode())
    assert {r["manifest_sha256"] for r in rows} == {hashes["run-2"]}
    params = json.loads((folder / "params.json").read_text())
    assert params["internal_domains"] == ["acme.test"] and params["stale_admin_days"] == 90


def test_tables_are_rfc4180_csv_in_utc_with_fixed_columns_and_order(two_runs, tmp_path: Path) -> None:
    db, _ = two_runs
    folder = export(db, tmp_path)
    raw = (folder / "tables" / "evidence_high_risk_activity.csv").read_bytes()
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    con = duckdb.connect(str(db), read_only=True)
    columns = [r[0] for r in con.execute("select column_name from information_schema.columns where table_schema = "
                                         "'evidence' and table_name = 'evidence_high_risk_activity' "
                                         "order by ordinal_position").fetchall()]
    con.close()
    header, body = table[0], table[1:]
    assert header == columns and len(body) == 8
    at = header.index("first_event_at")
    assert all(r[at].endswith("Z") and "+" not in r[at] for r in body)
    keys = [(r[header.index("region")], r[at], r[header.index("finding_id")]) for r in body]
    assert keys == sorted(keys)
    assert json.loads(body[0][header.index("event_ids")])  # lists are JSON arrays
    rows = json.loads((folder / "tables" / "evidence_high_risk_activity.json").read_text())
    assert [list(r) for r in rows][0] == columns and isinstance(rows[0]["event_count"], int)


def test_export_holds_nothing_secret(two_runs, tmp_path: Path) -> None:
    db, _ = two_runs
    folder = export(db, tmp_path)
    everything = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert WORLD_PII_KEY.encode() not in everything
    assert b"salary" not in everything.lower() and b"B4" not in everything, "roster columns beyond the spec"
    assert json.loads((folder / "manifest.json").read_text())["hmac_key_id"]  # only the fingerprint


def test_summary_is_readable_by_a_person(two_runs, tmp_path: Path) -> None:
    db, _ = two_runs
    summary = (export(db, tmp_path) / "summary.md").read_text()
    assert summary.startswith("# Intercom compliance evidence: run run-2")
    assert "| T14 | Data-subject requests answered within one month | pass | fail: 1 failing, 0 to review of 1 |" in summary
    # each workspace named by its name and Intercom id, its region alongside
    assert "T10 (Acme (EU) · eu01 · eu, not_collected): not collected: activity_logs (api_plan_restricted)" in summary
    assert "| Acme (US) | us01 | us | US |" in summary
    assert "sha256sum -c SHA256SUMS" in summary


def test_cli_exports_the_latest_run_or_the_one_asked_for(two_runs, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = two_runs
    settings = load_settings({"IRU_DUCKDB_PATH": str(db)}, require_workspaces=False, require_pii_key=False)
    assert export_cli(settings, out=str(tmp_path / "out")) == 0
    printed = capsys.readouterr().out
    folder = next((tmp_path / "out").iterdir())
    assert folder.name.endswith("_run-2") and f"cd {folder} && sha256sum -c SHA256SUMS" in printed
    assert export_cli(settings, out=str(tmp_path / "out"), run_id="run-1") == 0
    assert sorted(p.name.split("_", 1)[1] for p in (tmp_path / "out").iterdir()) == ["run-1", "run-2"]
    with pytest.raises(ConfigError, match="no evidence run 'nope'"):
        export_cli(settings, out=str(tmp_path / "out"), run_id="nope")


def test_cli_without_a_database_says_to_run_first(tmp_path: Path) -> None:
    settings = load_settings({"IRU_DUCKDB_PATH": str(tmp_path / "none.duckdb")}, require_workspaces=False,
                             require_pii_key=False)
    with pytest.raises(ConfigError, match="run `iru-pipeline run`"):
        export_cli(settings)
