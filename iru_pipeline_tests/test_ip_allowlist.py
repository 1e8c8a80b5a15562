"""The IP allowlist: a snapshot resource declared once in the registry, loaded end to end.

Its permission is write-capable, so it is an optional resource: loaded only when asked for
(`intercom_source(optional_resources=("ip_allowlist",))`), never by a default run."""

from __future__ import annotations

import json
from pathlib import Path

import dlt
import httpx
import pytest

from iru_pipeline.cli import main
from iru_pipeline.evidence.raw import RAW_COLUMNS
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import PERMISSIONS, IntercomClient, RetryPolicy
from iru_pipeline.intercom_records.registry import RESOURCES
from iru_pipeline.intercom_source import RESOURCE_NAMES, SyncReport, intercom_source
from iru_pipeline.storage import duckdb_destination
from iru_pipeline_tests.helpers import SNAPSHOT_TABLES, Loaded, query, small_fake, sync_results

RETRY = RetryPolicy(max_retries=2, backoff_base=0.01)


def _served(fake: FakeIntercom, region: str) -> dict:
    """`GET /ip_allowlist` as the fake answers it over HTTP."""
    response = httpx.get(f"{fake.base_url(region)}/ip_allowlist",
                         headers={"Authorization": f"Bearer {fake.token(region)}", "Intercom-Version": "2.16"})
    assert response.status_code == 200
    return response.json()


def _load(fake: FakeIntercom, region: str, db: Path, pipelines: Path) -> SyncReport:
    """The source with the allowlist asked for, through dlt into DuckDB, as a run loads it."""
    report = SyncReport(region)
    with IntercomClient(region, fake.base_url(region), fake.token(region), retry=RETRY) as client:
        source = intercom_source(region=region, client=client, pii_key="k" * 32, report=report,
                                 optional_resources=("ip_allowlist",))
        pipeline = dlt.pipeline(pipeline_name=f"allowlist_{region}", pipelines_dir=str(pipelines),
                                destination=duckdb_destination(db), dataset_name="intercom", progress=None)
        pipeline.run(source.with_resources("workspaces", "ip_allowlist"), loader_file_format="parquet")
    return report


def _rows(db: Path, region: str) -> list[tuple]:
    """(workspace_id, id, enabled, ranges, current) in load order."""
    rows = query(db, "select workspace_id, id, enabled, ip_allowlist::varchar, _dlt_valid_to is null "
                     "from intercom.ip_allowlist where region = ? order by _dlt_valid_from", [region])
    return [(w, i, e, json.loads(r), cur) for w, i, e, r, cur in rows]


def test_every_consumer_reads_the_allowlist_from_its_one_declaration() -> None:
    spec = next(r for r in RESOURCES if r.name == "ip_allowlist")
    assert spec.optional and spec.keeps_history and spec.probe == ("GET", "/ip_allowlist", {})
    assert PERMISSIONS["ip_allowlist"] == spec.permission
    assert RAW_COLUMNS["ip_allowlist"][:5] == ("region varchar", "workspace_id varchar", "id varchar",
                                               "enabled boolean", "ip_allowlist varchar[]")
    assert "ip_allowlist" in SNAPSHOT_TABLES
    # A default run (and so its Dagster assets and sync_results) does not include it.
    assert "ip_allowlist" not in RESOURCE_NAMES
    assert tuple(intercom_source().resources) == RESOURCE_NAMES
    asked = intercom_source(optional_resources=("ip_allowlist",)).resources
    assert tuple(asked) == tuple(r.name for r in RESOURCES)
    with pytest.raises(ValueError, match="not an optional resource: contactz"):
        intercom_source(optional_resources=("contactz",))


def test_loaded_allowlist_equals_what_the_fake_serves(tmp_path: Path) -> None:
    db = tmp_path / "iru.duckdb"
    with small_fake(regions=("us", "eu", "au"), contacts=10, conversations=10) as fake:
        served = {region: _served(fake, region) for region in fake.regions}
        reports = {region: _load(fake, region, db, tmp_path / "p") for region in fake.regions}
        workspace_ids = {region: fake.workspace(region).workspace_id for region in fake.regions}
    for region, body in served.items():
        assert body["type"] == "ip_allowlist" and isinstance(body["enabled"], bool)
        wid = workspace_ids[region]
        assert _rows(db, region) == [(wid, wid, body["enabled"], sorted(set(body["ip_allowlist"])), True)], region
        assert reports[region].resource("ip_allowlist").status == "ok"
    # The regions differ (on with ranges, off and empty), so a constant row would not pass.
    assert len({(b["enabled"], tuple(b["ip_allowlist"])) for b in served.values()}) == 3


def test_a_changed_allowlist_keeps_its_history(tmp_path: Path) -> None:
    db = tmp_path / "iru.duckdb"
    with small_fake(regions=("us",), contacts=10, conversations=10) as fake:
        before = _served(fake, "us")
        _load(fake, "us", db, tmp_path / "p")
        fake.workspace("us").set_ip_allowlist(False, ["10.1.0.0/16"])
        assert _served(fake, "us")["ip_allowlist"] == ["10.1.0.0/16"]
        _load(fake, "us", db, tmp_path / "p")
        wid = fake.workspace("us").workspace_id
    assert _rows(db, "us") == [
        (wid, wid, before["enabled"], sorted(before["ip_allowlist"]), False),
        (wid, wid, False, ["10.1.0.0/16"], True),
    ]


def test_a_token_without_the_allowlist_permission_skips_it_only(tmp_path: Path) -> None:
    db = tmp_path / "iru.duckdb"
    with small_fake(regions=("us",), contacts=10, conversations=10) as fake:
        fake.faults("us").update(forbidden_paths=("/ip_allowlist",), forbidden_kind="scope")
        report = _load(fake, "us", db, tmp_path / "p")
        wid = fake.workspace("us").workspace_id
    allowlist = report.resource("ip_allowlist")
    assert allowlist.status == "skipped" and allowlist.status_code == 403
    assert "manage_ip_allowlist" in (allowlist.reason or "")
    assert report.resource("workspaces").status == "ok"
    assert query(db, "select id from intercom.workspaces") == [(wid,)]


def test_a_default_run_does_not_ask_for_the_allowlist(loaded: Loaded) -> None:
    db = loaded.settings.duckdb_path
    assert query(db, "select count(*) from information_schema.tables "
                     "where table_schema = 'intercom' and table_name = 'ip_allowlist'") == [(0,)]
    assert "ip_allowlist" not in {r["resource"] for r in sync_results(db)}


def test_check_shows_the_missing_optional_permission_without_failing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with small_fake(regions=("us",), contacts=10, conversations=10) as fake:
        fake.faults("us").update(forbidden_paths=("/ip_allowlist",), forbidden_kind="scope")
        for key, value in {**fake.env(), "IRU_DUCKDB_PATH": str(tmp_path / "x.duckdb")}.items():
            monkeypatch.setenv(key, value)
        assert main(["check"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("ip_allowlist"))
    assert " optional " in line and "manage_ip_allowlist" in line
    assert "MISSING" not in out and "US  " in out and "OK" in out
