"""Proof of collection: every snapshot response is recorded as a hash with Intercom's request
id, status and time, reaches the evidence and the export, and a non-Intercom host is flagged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import httpx

from iru_pipeline.export import export_run
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import API_VERSION, IntercomClient, IntercomPermissionError
from iru_pipeline.intercom_client.proofs import is_intercom_api_host
from iru_pipeline_tests.helpers import pipeline_env, run_with_env

SNAPSHOT_ENDPOINTS = {"GET /me", "GET /admins", "GET /teams", "GET /tags", "GET /data_attributes",
                      "GET /conversations/attributes"}


def direct_body(fake: FakeIntercom, region: str, path: str, params: dict | None = None) -> bytes:
    """The same request made without our client, to hash what the API returns."""
    response = httpx.get(f"{fake.base_url(region)}{path}", params=params,
                         headers={"Authorization": f"Bearer {fake.token(region)}", "Accept": "application/json",
                                  "Intercom-Version": API_VERSION})
    assert response.status_code == 200
    return response.content


def test_only_intercoms_https_api_hosts_count_as_intercom() -> None:
    assert all(is_intercom_api_host(h) for h in ("api.intercom.io", "api.eu.intercom.io", "api.au.intercom.io",
                                                  "https://api.eu.intercom.io"))
    assert not any(is_intercom_api_host(h) for h in (
        "http://api.intercom.io", "127.0.0.1:8080", "http://127.0.0.1:8080", "https://proxy.acme.test",
        "api.intercom.io.evil.test", "https://api.intercom.io:8443", "localhost", None, ""))


def test_the_client_records_snapshot_responses_as_hashes_only() -> None:
    with FakeIntercom(seed=3, contacts=20, conversations=10, regions=("us",)) as fake:
        fake.faults("us").update(forbidden_paths=("/tags",), forbidden_kind="scope")
        with IntercomClient("us", fake.base_url("us"), fake.token("us")) as client:
            client.get("/admins", resource="admins")
            client.post("/contacts/search", {"query": {"field": "updated_at", "operator": ">", "value": 0}},
                        resource="contacts")
            try:
                client.get("/tags", resource="tags")
                raise AssertionError("the fake was told to forbid /tags")
            except IntercomPermissionError as exc:
                refused_id = exc.request_id
            proofs = client.proofs.proofs()
        admins_body = direct_body(fake, "us", "/admins")
    assert [p.endpoint for p in proofs] == ["GET /admins", "GET /tags"]  # no contact search page
    admins, tags = proofs
    assert admins.body_sha256 == hashlib.sha256(admins_body).hexdigest() and admins.body_bytes == len(admins_body)
    assert (admins.http_status, admins.resource, admins.api_base_url) == (200, "admins", fake.base_url("us"))
    assert (tags.http_status, tags.request_id) == (403, refused_id) and refused_id
    assert all(len(p.body_sha256) == 64 and p.received_at.tzinfo is not None for p in proofs)


def test_proofs_reach_the_evidence_the_manifest_and_the_summary(tmp_path: Path) -> None:
    with FakeIntercom(seed=5, contacts=30, conversations=20, regions=("us",)) as fake:
        fake.faults("us").update(forbidden_paths=("/tags",), forbidden_kind="scope")
        settings, result = run_with_env(pipeline_env(fake, tmp_path, ("us",)))
        assert not result.failed, [o.error for o in result.outcomes]
        admins_body = direct_body(fake, "us", "/admins")
        me_body = direct_body(fake, "us", "/me")
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        rows = con.execute(
            "select endpoint, status, api_base_url, intercom_api_host, http_status, request_id, body_sha256, "
            "findings from evidence.evidence_collection_proof order by endpoint, received_at").fetchall()
        raw = con.execute("select count(*), count(distinct run_id) from intercom.collection_proofs").fetchone()
        run_id = con.execute("select distinct run_id from evidence.evidence_collection_proof").fetchone()[0]
        folder = export_run(con, run_id, tmp_path / "exports").folder
    finally:
        con.close()
    assert {r[0] for r in rows} == SNAPSHOT_ENDPOINTS and raw == (len(rows), 1)
    by_endpoint = {r[0]: r for r in rows}
    assert by_endpoint["GET /admins"][6] == hashlib.sha256(admins_body).hexdigest()
    assert by_endpoint["GET /me"][6] == hashlib.sha256(me_body).hexdigest()
    assert by_endpoint["GET /tags"][4] == 403 and by_endpoint["GET /tags"][5]
    assert "HTTP 403" in by_endpoint["GET /tags"][7]
    # The fake is on loopback: every row is for review and says why.
    assert {(r[1], r[2], r[3]) for r in rows} == {("review", fake.base_url("us"), False)}
    assert all(f"collected from {fake.base_url('us')}, not an Intercom API host" in r[7] for r in rows)

    manifest = json.loads((folder / "manifest.json").read_text())
    assert {p["endpoint"] for p in manifest["collection_proofs"]} == SNAPSHOT_ENDPOINTS
    assert {p["body_sha256"] for p in manifest["collection_proofs"]} == {r[6] for r in rows}
    assert manifest["workspaces"][0]["official_intercom_host"] is False
    assert "tables/evidence_collection_proof.csv" in manifest["chain"]["files_sha256"]
    head = (folder / "summary.md").read_text().split("## ")[0]
    workspace = manifest["workspaces"][0]  # named by its name and id, its region alongside
    assert f"**Not collected from Intercom's API host.** Workspace {workspace['name']} · {workspace['id']} · us " \
           f"was read from `{fake.base_url('us')}`" in head and "**Unsigned export.**" in head


def test_the_evidence_holds_each_workspaces_latest_collection_proofs(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from iru_pipeline_tests.helpers import build_world_db, derive_world, world_run, write_world_inputs

    db = build_world_db(tmp_path / "iru.duckdb")
    derive_world(db, world_run(write_world_inputs(tmp_path / "inputs"), "run-1", datetime.now(UTC)))
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("select region, endpoint, ingestion_run_id, status, http_status, request_id, body_sha256, "
                       "findings from evidence.evidence_collection_proof order by region, endpoint").fetchall()
    con.close()
    # world.sql: us's older ing-us-0 response is not the latest collection; eu's /tags was refused.
    assert rows == [
        ("eu", "GET /me", "ing-eu-1", "info", 200, None, "c" * 64, []),
        ("eu", "GET /tags", "ing-eu-1", "info", 403, "req-456", "d" * 64, ["HTTP 403"]),
        ("us", "GET /admins", "ing-us-1", "info", 200, None, "b" * 64, []),
        ("us", "GET /me", "ing-us-1", "info", 200, "rid-us-me", "a" * 64, []),
    ]
