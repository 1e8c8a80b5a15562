"""Signing keys: keygen writes an owner-only key pair; IRU_SIGNING_KEY_FILE is refused in one
line when it is unsafe; the key never reaches the export, only its public fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from iru_pipeline.cli import main
from iru_pipeline.config import ConfigError, load_settings
from iru_pipeline_tests.helpers import TEST_PII_KEY, build_world_db, derive_world, world_run, write_world_inputs


def keygen(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["keygen", "--out", str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_keygen_writes_an_owner_only_key_pair_and_prints_the_fingerprint(tmp_path: Path, capsys,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRU_DUCKDB_PATH", str(tmp_path / "data" / "iru.duckdb"))
    old = os.umask(0o022)  # a usual umask: the key must still be owner-only
    try:
        code, out, _ = keygen(tmp_path / "keys" / "k.pem", capsys)
    finally:
        os.umask(old)
    assert code == 0
    key_file, pub_file = tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pem.pub"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = serialization.load_pem_public_key(pub_file.read_bytes())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert f"public key:  {pub_file}" in out and hashlib.sha256(raw).hexdigest() in out
    assert key_file.read_bytes().decode() not in out  # the private key is never printed
    # never overwritten
    code, _, err = keygen(key_file, capsys)
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1


def test_keygen_refuses_the_data_folder(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("IRU_DUCKDB_PATH", str(tmp_path / "data" / "iru.duckdb"))
    code, _, err = keygen(tmp_path / "data" / "k.pem", capsys)
    assert code == 2 and "inside the data folder" in err and not (tmp_path / "data" / "k.pem").exists()


@pytest.mark.parametrize("problem", ["group_readable", "in_data_folder", "not_a_key", "missing"])
def test_an_unsafe_signing_key_setting_is_one_line_naming_it(tmp_path: Path, problem: str) -> None:
    from iru_pipeline.evidence.signing import generate_key_pair

    (tmp_path / "data").mkdir()
    key = (tmp_path / "data" if problem == "in_data_folder" else tmp_path / "keys") / "k.pem"
    if problem != "missing":
        generate_key_pair(key)
    if problem == "group_readable":
        key.chmod(0o640)
    if problem == "not_a_key":
        key.write_text("not a key")
    env = {"IRU_DUCKDB_PATH": str(tmp_path / "data" / "iru.duckdb"), "IRU_SIGNING_KEY_FILE": str(key)}
    with pytest.raises(ConfigError) as info:
        load_settings(env, require_workspaces=False, require_pii_key=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"IRU_SIGNING_KEY_FILE={key}")
    expected = {"group_readable": "chmod 600", "in_data_folder": "inside the data folder",
                "not_a_key": "not an unencrypted PEM private key", "missing": "cannot be read"}[problem]
    assert expected in message
    if problem != "missing":
        assert key.read_text() not in message


def test_run_refuses_an_unsafe_key_before_any_request(tmp_path: Path, capsys,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("IRU_DUCKDB_PATH", str(tmp_path / "data" / "iru.duckdb"))
    assert main(["keygen", "--out", str(tmp_path / "k.pem")]) == 0
    (tmp_path / "k.pem").chmod(0o644)
    monkeypatch.setenv("IRU_SIGNING_KEY_FILE", str(tmp_path / "k.pem"))
    # A host nobody listens on: any request would fail differently from the setting error.
    monkeypatch.setenv("INTERCOM_ACCESS_TOKEN_US", "tok")
    monkeypatch.setenv("INTERCOM_BASE_URL_US", "http://127.0.0.1:9")
    monkeypatch.setenv("IRU_PII_KEY", TEST_PII_KEY)
    capsys.readouterr()
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "IRU_SIGNING_KEY_FILE" in err[0] and "chmod 600" in err[0]
    assert not (tmp_path / "data" / "iru.duckdb").exists()


def test_a_signed_export_names_the_key_by_fingerprint_and_never_holds_it(tmp_path: Path, capsys,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    db = build_world_db(tmp_path / "data" / "iru.duckdb")
    files = write_world_inputs(tmp_path / "inputs")
    derive_world(db, world_run(files, "run-1", datetime.now(UTC)))
    monkeypatch.setenv("IRU_DUCKDB_PATH", str(db))
    assert main(["export", "--out", str(tmp_path / "unsigned")]) == 0
    unsigned = next((tmp_path / "unsigned").iterdir())
    assert (unsigned / "summary.md").read_text().split("\n\n")[1].startswith("> **Unsigned export.**")
    assert not (unsigned / "manifest.sig").exists()

    assert main(["keygen", "--out", str(tmp_path / "keys" / "k.pem")]) == 0
    monkeypatch.setenv("IRU_SIGNING_KEY_FILE", str(tmp_path / "keys" / "k.pem"))
    capsys.readouterr()
    assert main(["export", "--out", str(tmp_path / "signed")]) == 0
    printed = capsys.readouterr().out
    signed = next((tmp_path / "signed").iterdir())
    public = serialization.load_pem_public_key((tmp_path / "keys" / "k.pem.pub").read_bytes())
    fp = hashlib.sha256(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()
    manifest = json.loads((signed / "manifest.json").read_text())
    assert manifest["signing"] == {"algorithm": "Ed25519", "public_key_sha256": fp, "signature_file": "manifest.sig",
                                   "signs": "manifest.json"}
    public.verify((signed / "manifest.sig").read_bytes(), (signed / "manifest.json").read_bytes())
    summary = (signed / "summary.md").read_text()
    assert "Unsigned" not in summary and fp in summary and fp in printed
    private = serialization.load_pem_private_key((tmp_path / "keys" / "k.pem").read_bytes(), None)
    raw_private = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    everything = b"".join(p.read_bytes() for p in signed.rglob("*") if p.is_file()) + printed.encode()
    assert raw_private not in everything and (tmp_path / "keys" / "k.pem").read_bytes() not in everything
    assert str(tmp_path / "keys") not in everything.decode("utf-8", "replace")  # not even the key's path
    # exporting again gives the same bytes, signature included
    assert main(["export", "--out", str(tmp_path / "again")]) == 0
    again = next((tmp_path / "again").iterdir())
    for p in signed.rglob("*"):
        if p.is_file():
            assert (again / p.relative_to(signed)).read_bytes() == p.read_bytes(), p
