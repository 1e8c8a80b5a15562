"""`iru-pipeline verify`: check an auditor export from the folder alone.

What is checked, each problem reported in one line:

- SHA256SUMS: well-formed, lists every file, and every file matches it;
- manifest.json: lists every file of the export (except itself, SHA256SUMS and manifest.sig),
  and every file matches its size and sha256 there;
- the hash chain: the files the chain covers (params.json, tables/*, and from chain version 3
  summary.md less its export header, which must say what manifest.json says) are recomputed and
  hashed as at collection time (evidence/manifest.py), and the run's manifest hash is recomputed
  from them, so a file edited after collection is caught even when every listed hash was rewritten;
- the signature: manifest.sig is a valid Ed25519 signature of manifest.json by the public key
  given, whose fingerprint is the one manifest.json records;
- with an earlier export, continuity: this run's previous_manifest_sha256 is that export's
  manifest hash (a run removed between them, or either one rewritten, breaks it).

An unsigned export can be rewritten whole, hashes included, by anyone holding it; only the
signature (or an earlier or later export, or the database) tells. The chain definition used is
the one the manifest names (`chain.version`, 1 for exports of runs written before version 2).
report.html, a period export's period/* files and manifest.json are outside the chain (rendered
at export time): manifest.json lists and hashes the others, and only the signature protects them
all from a rewrite.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from iru_pipeline.config import ConfigError
from iru_pipeline.evidence.manifest import (
    CHAIN_VERSION,
    MANIFEST_SCHEMA_V2,
    MANIFEST_SCHEMA_V3,
    chained_files_sha256,
    is_chained_file,
    manifest_sha256,
    manifest_sha256_v2,
)
from iru_pipeline.evidence.rendering import sha256_hex
from iru_pipeline.evidence.signing import SIGNATURE_FILE, fingerprint, load_public_key, signature_valid
from iru_pipeline.evidence.summary import SUMMARY_FILE, export_header, without_header
from iru_pipeline.evidence.tables import MANIFEST_TABLE

SUMS_FILE = "SHA256SUMS"
MANIFEST_FILE = "manifest.json"
_NOT_IN_MANIFEST = frozenset({MANIFEST_FILE, SUMS_FILE, SIGNATURE_FILE})
_SUMS_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


def verify_export(folder: Path, public_key: Any = None, previous: Path | None = None) -> list[str]:
    """The problems found in an export folder (empty: everything holds). `public_key` (an
    Ed25519 public key) checks the signature; a signed export without one is a problem, since
    its signature was not checked. `previous`: an earlier export of the same chain."""
    files = _read_files(folder)
    problems = _check_sums(folder, files)
    manifest_bytes = files.get(MANIFEST_FILE)
    try:
        manifest = json.loads(manifest_bytes or b"")
        if not isinstance(manifest, dict):
            raise ValueError
    except ValueError:
        return problems + [f"{MANIFEST_FILE} is missing or not a JSON object"]
    problems += _check_manifest_files(files, manifest)
    problems += _check_chain(files, manifest)
    problems += _check_signature(files, manifest, public_key)
    if previous is not None:
        problems += _check_previous(manifest, previous, public_key)
    return problems


def verify_cli(folder: str, public_key: str | None = None, previous: str | None = None) -> int:
    """`iru-pipeline verify FOLDER [--public-key FILE] [--previous FOLDER]`: 0 when everything
    holds, 1 with one line per problem, ConfigError (exit 2) for an unusable argument."""
    path = _export_folder(folder, "FOLDER")
    key = load_public_key(Path(public_key).expanduser()) if public_key else None
    before = _export_folder(previous, "--previous") if previous else None
    problems = verify_export(path, key, before)
    for problem in problems:
        print(f"{path.name}: {problem}")
    if problems:
        print(f"iru-pipeline: {len(problems)} problem(s): do not rely on this export", file=sys.stderr)
        return 1
    manifest = json.loads((path / MANIFEST_FILE).read_bytes())
    signed = f"signed by key {fingerprint(key)}" if key is not None else "NOT SIGNED (integrity within the folder only)"
    link = f", chained to {before.name}" if before is not None else ""
    print(f"{path.name}: OK: {len(manifest.get('files', []))} files match manifest.json and {SUMS_FILE}, "
          f"hash chain recomputed, {signed}{link}")
    return 0


def _export_folder(raw: str, what: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{what} {raw} is not a folder: give the export folder (the one holding {MANIFEST_FILE})")
    return path


def _read_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_sums(folder: Path, files: dict[str, bytes]) -> list[str]:
    if SUMS_FILE not in files:
        return [f"{SUMS_FILE} is missing"]
    problems: list[str] = []
    listed: dict[str, str] = {}
    for number, line in enumerate(files[SUMS_FILE].decode("utf-8", errors="replace").splitlines(), 1):
        m = _SUMS_LINE.match(line)
        if not m:
            problems.append(f"{SUMS_FILE} line {number} is malformed")
            continue
        listed[m.group(2)] = m.group(1)
    for path in sorted(files.keys() - listed.keys() - {SUMS_FILE}):
        problems.append(f"{path} is not listed in {SUMS_FILE}")
    for path, digest in sorted(listed.items()):
        if path not in files:
            problems.append(f"{path} is listed in {SUMS_FILE} but missing")
        elif sha256_hex(files[path]) != digest:
            problems.append(f"{path} does not match its sha256 in {SUMS_FILE}")
    return problems


def _check_manifest_files(files: dict[str, bytes], manifest: dict[str, Any]) -> list[str]:
    entries = {str(f.get("path")): f for f in manifest.get("files") or [] if isinstance(f, dict)}
    problems = [f"{path} is not listed in {MANIFEST_FILE}"
                for path in sorted(files.keys() - entries.keys() - _NOT_IN_MANIFEST)]
    for path, entry in sorted(entries.items()):
        data = files.get(path)
        if data is None:
            problems.append(f"{path} is listed in {MANIFEST_FILE} but missing")
        elif sha256_hex(data) != entry.get("sha256") or len(data) != entry.get("bytes"):
            problems.append(f"{path} does not match {MANIFEST_FILE}")
    return problems


def _check_chain(files: dict[str, bytes], manifest: dict[str, Any]) -> list[str]:
    chain: dict[str, Any] = manifest["chain"] if isinstance(manifest.get("chain"), dict) else {}
    try:
        as_of = datetime.fromisoformat(str(manifest["as_of"]).replace("Z", "+00:00"))
        run_id, params_sha256 = manifest["run_id"], manifest["params_sha256"]
    except (KeyError, ValueError):
        return [f"{MANIFEST_FILE} lacks run_id, as_of or params_sha256: the chain cannot be recomputed"]
    previous = chain.get("previous_manifest_sha256")
    if chain.get("version") in (2, CHAIN_VERSION):
        problems = _check_chained_files(files, manifest, chain)
        if problems is None:
            return [f"tables/{MANIFEST_TABLE}.* cannot be read: the chain cannot be recomputed"]
        schema = MANIFEST_SCHEMA_V3 if chain.get("version") == CHAIN_VERSION else MANIFEST_SCHEMA_V2
        recomputed = manifest_sha256_v2(run_id, as_of, params_sha256, previous, chain.get("files_sha256") or {},
                                        schema)
    else:
        recorded = chain.get("tables_sha256") or {}
        tables: dict[str, str | None] = {
            t: sha256_hex(files[f"tables/{t}.csv"]) if f"tables/{t}.csv" in files else None for t in recorded}
        problems = [] if tables == recorded else ["table files do not match the hashes recorded at collection time"]
        recomputed = manifest_sha256(run_id, as_of, params_sha256, previous, recorded)
    if recomputed != chain.get("manifest_sha256"):
        problems.append("manifest hash does not match its recorded inputs")
    return problems


def _check_chained_files(files: dict[str, bytes], manifest: dict[str, Any], chain: dict[str, Any]
                         ) -> list[str] | None:
    """Chain versions 2 and 3: each chained file against the hash recorded at collection time
    (None: the collection-run table cannot be read, so nothing can be recomputed)."""
    try:
        actual = chained_files_sha256({p: d for p, d in files.items() if is_chained_file(p)})
    except (ValueError, IndexError):
        return None
    problems: list[str] = []
    if chain.get("version") == CHAIN_VERSION:
        problems += _chained_summary(files, manifest, chain, actual)
    recorded = chain.get("files_sha256") or {}
    for path in sorted(actual.keys() | recorded.keys()):
        if actual.get(path) != recorded.get(path):
            problems.append(f"{path} does not match the hash recorded at collection time")
    return problems + _chain_columns_agree(files, chain)


def _chained_summary(files: dict[str, bytes], manifest: dict[str, Any], chain: dict[str, Any],
                     actual: dict[str, str]) -> list[str]:
    """Add summary.md's chained hash to `actual`: the file less the export header, which must be
    the one manifest.json implies (signed by the key it names, or unsigned; this run's hash)."""
    signing = manifest.get("signing")
    key = signing.get("public_key_sha256") if isinstance(signing, dict) else None
    text = files.get(SUMMARY_FILE, b"").decode("utf-8", errors="replace")
    document = without_header(text, export_header(key, chain.get("manifest_sha256")))
    if document is None:  # reported once: the rest of the file is not compared as well
        actual[SUMMARY_FILE] = (chain.get("files_sha256") or {}).get(SUMMARY_FILE, "")
        return [f"{SUMMARY_FILE}: its signing notice or manifest hash does not say what {MANIFEST_FILE} says"]
    actual[SUMMARY_FILE] = sha256_hex(document.encode("utf-8"))
    return []


def _chain_columns_agree(files: dict[str, bytes], chain: dict[str, Any]) -> list[str]:
    """The chain columns of tables/evidence_collection_run.json (left out of what the chain
    hashes) must say what the manifest says."""
    path = f"tables/{MANIFEST_TABLE}.json"
    try:
        rows = json.loads(files.get(path) or b"[]")
    except ValueError:
        return [f"{path} is not JSON"]
    for row in rows if isinstance(rows, list) else []:
        for column in ("manifest_sha256", "previous_manifest_sha256"):
            if not isinstance(row, dict) or row.get(column) != chain.get(column):
                return [f"{path}: {column} differs from {MANIFEST_FILE}"]
    return []


def _check_signature(files: dict[str, bytes], manifest: dict[str, Any], public_key: Any) -> list[str]:
    signing = manifest.get("signing")
    signature = files.get(SIGNATURE_FILE)
    if not isinstance(signing, dict):
        if signature is not None:
            return [f"{SIGNATURE_FILE} is present but {MANIFEST_FILE} records no signing key"]
        if public_key is not None:
            return [
                f"the export is not signed ({MANIFEST_FILE} records no signing key), so --public-key proves nothing"
            ]
        return []
    if signature is None:
        return [f"{MANIFEST_FILE} says the export is signed but {SIGNATURE_FILE} is missing"]
    if public_key is None:
        return [f"the export is signed: pass --public-key (key sha256 {signing.get('public_key_sha256')}) "
                "to check the signature"]
    given = fingerprint(public_key)
    if given != signing.get("public_key_sha256"):
        return [f"the public key given ({given}) is not the one {MANIFEST_FILE} names "
                f"({signing.get('public_key_sha256')})"]
    if not signature_valid(public_key, signature, files[MANIFEST_FILE]):
        return [f"{SIGNATURE_FILE} is not a valid signature of {MANIFEST_FILE} by the given key"]
    return []


def _check_previous(manifest: dict[str, Any], previous: Path, public_key: Any) -> list[str]:
    problems = [f"previous export {previous.name}: {p}" for p in verify_export(previous, public_key)]
    try:
        before = json.loads((previous / MANIFEST_FILE).read_bytes())
        before_hash = before["chain"]["manifest_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return problems + [f"previous export {previous.name}: no readable chain in {MANIFEST_FILE}"]
    claimed = (manifest.get("chain") or {}).get("previous_manifest_sha256")
    if claimed != before_hash:
        problems.append(f"chain broken: this run's previous_manifest_sha256 ({claimed}) is not the manifest hash "
                        f"of {previous.name} ({before_hash}): a run between them is missing, or one was rewritten")
    return problems
