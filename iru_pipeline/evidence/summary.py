"""summary.md of an evidence run, for a person to read.

From chain version 3 the document is rendered when the run is sealed (`manifest.py`), from
the run's evidence alone, stored with the run (`evidence.evidence_run_documents`) and covered
by the run's chained manifest hash; the export writes exactly those bytes, with one header
inserted after the title that only the export knows: whether it is signed, and the run's
manifest hash (which cannot be inside what it hashes). `iru-pipeline verify` removes that
header, checking it says what manifest.json says, and recomputes the chain over the rest, so
an edited summary breaks the chain even when manifest.json and SHA256SUMS are rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from iru_pipeline.evidence.controls import CONTROL_TESTS, status_with_counts
from iru_pipeline.evidence.rendering import TableRows, json_value, sha256_hex, workspace_key, workspace_label
from iru_pipeline.evidence.tables import MANIFEST_TABLE, PROOF_TABLE
from iru_pipeline.intercom_client.proofs import is_intercom_api_host

SUMMARY_FILE = "summary.md"
SUMS_FILE = "SHA256SUMS"


def records(t: TableRows) -> list[dict[str, Any]]:
    return [{c: json_value(v, typ) for c, v, typ in zip(t.columns, row, t.types, strict=True)} for row in t.rows]


def export_header(public_key_sha256: str | None, manifest_sha256: str | None) -> str:
    """The part of summary.md written at export time: whether the export is signed (a
    signed export names its key) and the run's manifest hash."""
    if public_key_sha256 is None:
        notice = ("> **Unsigned export.** Nothing proves who wrote these files: anyone holding the folder can "
                  "rewrite them and every hash. Ask for an export signed with IRU_SIGNING_KEY_FILE and check "
                  "it with `iru-pipeline verify FOLDER --public-key KEY.pub`.")
    else:
        notice = (f"> Signed (Ed25519, public key sha256 `{public_key_sha256}`): check with "
                  "`iru-pipeline verify FOLDER --public-key KEY.pub`.")
    return f"{notice}\n\nThis run's manifest sha256: `{manifest_sha256}`."


def with_header(document: str, header: str) -> str:
    title, _, rest = document.partition("\n\n")
    return f"{title}\n\n{header}\n\n{rest}"


def without_header(summary: str, header: str) -> str | None:
    """The stored document back from an exported summary.md (None: the header is not `header`)."""
    title, _, rest = summary.partition("\n\n")
    if not rest.startswith(f"{header}\n\n"):
        return None
    return f"{title}\n\n{rest[len(header) + 2:]}"


def _host_warnings(runs: list[dict[str, Any]], tables: Mapping[str, TableRows]) -> list[str]:
    proof_urls: dict[tuple[str | None, str], set[str]] = {}
    for p in records(tables[PROOF_TABLE]) if PROOF_TABLE in tables else []:
        proof_urls.setdefault(workspace_key(p), set()).add(p["api_base_url"] or "")
    lines = []
    for r in runs:
        seen = sorted(u for u in proof_urls.get(workspace_key(r), set()) if not is_intercom_api_host(u))
        if not is_intercom_api_host(r["api_host"]) or seen:
            lines.append(f"> **Not collected from Intercom's API host.** Workspace {workspace_label(r)} was read from "
                         f"`{', '.join(seen) or r['api_host'] or 'an unknown host'}` (a proxy, a test double or a "
                         "local server), not from https://api.intercom.io, api.eu.intercom.io or "
                         "api.au.intercom.io: the evidence is only as good as that host.")
    return lines


def _md(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table_md(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return lines


def _tests_table(runs: list[dict[str, Any]], tests: list[dict[str, Any]]) -> list[str]:
    workspaces = [workspace_key(r) for r in runs]
    by_test: dict[str, dict[tuple[str | None, str], dict[str, Any]]] = {}
    for t in tests:
        by_test.setdefault(t["test_id"], {})[workspace_key(t)] = t
    rows = []
    for test in CONTROL_TESTS:
        cells = []
        for workspace in workspaces:
            found = by_test.get(test.test_id, {}).get(workspace)
            cells.append("" if found is None else status_with_counts(found["status"], found["failing"],
                                                                        found["warnings"], found["population"]))
        rows.append([test.test_id, test.name, *cells, ", ".join(test.soc2), ", ".join(test.iso27001),
                     ", ".join(test.gdpr)])
    return _table_md(["test", "control", *(workspace_label(r) for r in runs), "SOC 2", "ISO 27001", "GDPR"], rows)


def _caveats(runs: list[dict[str, Any]], tests: list[dict[str, Any]]) -> list[str]:
    labels = {workspace_key(r): workspace_label(r) for r in runs}
    caveats = []
    for t in tests:
        if t["status"] in ("not_collected", "manual") or (t["status"] == "review" and t["findings"]):
            where = labels.get(workspace_key(t)) or workspace_label(t)
            caveats.append(f"{t['test_id']} ({where}, {t['status']}): {'; '.join(t['findings'])}")
    for r in runs:
        if r["missing_capabilities"]:
            missing = ", ".join(r["missing_capabilities"])
            caveats.append(f"{workspace_label(r)}: not collected in the latest attempt: {missing}")
    return caveats + [
        "MFA enforcement is not exposed by the Intercom API: T07 needs a Settings > Security screenshot showing "
        "the URL and the date unless every login used SSO.",
        "Removal times found from snapshots are upper bounds (between `last_present_at` and `removal_detected_at`).",
        "DSAR and security-report timing is only as good as the tagging of conversations.",
        "Admins who were removed before the first collection have no snapshot history.",
    ]


def summary_document(tables: Mapping[str, TableRows], files: Mapping[str, bytes]) -> str:
    """summary.md without its export header, from the run's tables and its content files
    (`manifest.content_files`: listed with their rows and sha256)."""
    runs = records(tables[MANIFEST_TABLE])
    first = runs[0]
    tests = records(tables["evidence_control_tests"])
    warnings = _host_warnings(runs, tables)
    lines = [f"# Intercom compliance evidence: run {first['run_id']}", ""]
    if warnings:
        lines += ["\n>\n".join(warnings), ""]
    lines += [
        f"- Evidence as of: {first['as_of']} (UTC)",
        f"- Period evaluated: {first['period_start']} to {first['period_end']}",
        f"- Parameters: sha256 `{first['params_sha256']}` (params.json)",
        f"- PII mode: {first['pii_mode']}: contacts appear only as aggregates; contact identifiers are stored as "
        f"keyed HMAC pseudonyms (key fingerprint `{first['hmac_key_id'] or 'not recorded'}`); admins are in clear",
        f"- Previous run's manifest sha256 `{first['previous_manifest_sha256'] or 'none'}`",
        "",
        "## Workspaces",
        "",
        *_table_md(["workspace", "id", "region", "reported region", "API host", "API version", "collection",
                    "missing"],
                   [[r["workspace_name"], r["workspace_id"], r["region"], r["reported_region"], r["api_host"],
                     r["api_version"], r["status"], r["missing_capabilities"]] for r in runs]),
        "",
        "## Control tests",
        "",
        "Status per workspace; where a test fails or needs review, the items failing and the items to review "
        "(counted apart) of its population. Statuses: pass, fail, review (a person must look), manual (needs "
        "evidence the API cannot give), not_applicable (nothing to evaluate), not_collected (input missing or "
        "failed).",
        "",
        *_tests_table(runs, tests),
        "", "## Caveats", "",
        *[f"- {c}" for c in _caveats(runs, tests)],
        "", "## Files", "",
    ]
    lines += _table_md(["file", "rows", "sha256"], [[path, _rows(tables, path), sha256_hex(data)]
                                                    for path, data in files.items()])
    lines += ["", "This file, report.html and manifest.json are listed with their sha256 in manifest.json and "
              f"{SUMS_FILE}.", "", "## Verify", "", "```", f"sha256sum -c {SUMS_FILE}",
              "iru-pipeline verify FOLDER [--public-key KEY.pub] [--previous EARLIER_FOLDER]", "```", ""]
    return "\n".join(lines)


def _rows(tables: Mapping[str, TableRows], path: str) -> int | str:
    name = path.removeprefix("tables/").rpartition(".")[0] if path.startswith("tables/") else ""
    return len(tables[name].rows) if name in tables else ""
