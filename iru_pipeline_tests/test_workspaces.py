"""Workspaces, not regions: any number of workspaces from the workspaces file, several in one
region, each loaded under its own name with its own cursors and its own rows, keyed by
(workspace_id, id); and many workspaces in one Dagster run."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.fake_intercom.fake import ExtraWorkspace
from iru_pipeline.fake_intercom.workspaces_file import served_workspaces
from iru_pipeline_tests.helpers import (
    COMPARED,
    SNAPSHOT_TABLES,
    TEST_PII_KEY,
    committed_cursors,
    fake_ids,
    query,
    run_with_env,
)

BRANDS = ("brand-b",)


def _workspaces_env(fake: FakeIntercom, data_dir: Path) -> dict[str, str]:
    """A workspaces file naming every workspace the fake serves (`us-001`, `us-002`, ...), and
    the environment pointing the pipeline at it: tokens in the variables the file names."""
    served = served_workspaces(fake)
    lines = []
    env = {"IRU_DUCKDB_PATH": str(data_dir / "iru.duckdb"), "IRU_PII_KEY": TEST_PII_KEY,
           "IRU_WORKSPACES_FILE": str(data_dir / "workspaces.toml")}
    for ws in served:
        lines += [f"[workspaces.{ws.name}]", f'region = "{ws.region}"', f'token_env = "{ws.token_env}"',
                  f'base_url = "{ws.base_url}"', ""]
        env[ws.token_env] = fake.token(ws.region, ws.key)
    (data_dir / "workspaces.toml").write_text("\n".join(lines))
    return env


def _ids(db: Path, table: str, workspace_id: str) -> list[str]:
    current = " and _dlt_valid_to is null" if table in SNAPSHOT_TABLES else ""
    if not query(db, "select 1 from information_schema.tables where table_schema = 'intercom' and table_name = ?",
                 [table]):
        return []  # nothing of it was ever served (no deleted conversation in a small fake)
    return sorted(r[0] for r in query(db, f"select id from intercom.{table} where workspace_id = ?{current}",
                                      [workspace_id]))


def _assert_each_workspace_exact(db: Path, fake: FakeIntercom, region: str) -> None:
    for key in fake.workspace_keys(region):
        ws = fake.workspace(region, key)
        for resource in COMPARED:
            got, want = _ids(db, resource, ws.workspace_id), fake_ids(ws, resource)
            assert got == sorted(want), f"{key}/{resource}: {len(got)} stored, {len(want)} served"


def _load_ids(db: Path, table: str, workspace_id: str) -> list[tuple[Any, ...]]:
    return query(db, f"select id, _dlt_load_id from intercom.{table} where workspace_id = ? order by all",
                 [workspace_id])


@pytest.fixture
def two_in_us() -> Any:
    """Two workspaces hosted in the US with the same seed and sizes: the same record ids."""
    with FakeIntercom(seed=31, regions=("us",), contacts=120, conversations=80, activity_logs=60,
                      extra_workspaces={"us": [ExtraWorkspace(key) for key in BRANDS]}) as fake:
        yield fake


def test_two_workspaces_of_one_region_with_the_same_ids_load_side_by_side_exactly(two_in_us, tmp_path) -> None:
    fake = two_in_us
    first, second = (fake.workspace("us", key) for key in fake.workspace_keys("us"))
    assert first.workspace_id != second.workspace_id
    shared = set(fake_ids(first, "contacts")) & set(fake_ids(second, "contacts"))
    assert shared == set(fake_ids(first, "contacts")), "the two workspaces' contact ids overlap entirely"
    env = _workspaces_env(fake, tmp_path)
    db = tmp_path / "iru.duckdb"

    _settings, result = run_with_env(env, with_evidence=False)
    assert not result.failed, [o.error for o in result.outcomes]
    assert len(result.outcomes) == 1, "one Dagster run loads both"
    _assert_each_workspace_exact(db, fake, "us")
    bindings = dict(query(db, "select name, workspace_id from iru_meta.workspace_bindings"))
    assert bindings == {"us-001": first.workspace_id, "us-002": second.workspace_id}
    for name in bindings:  # each name has its own dlt pipeline, hence its own cursors
        assert set(committed_cursors(db, name) or {}) >= {"contacts", "conversations"}, name

    # The second workspace changes (records updated, an admin removed); the first does not.
    untouched = {t: _load_ids(db, t, first.workspace_id) for t in ("contacts", "conversations", "admins")}
    second.update_contacts(count=7)
    second.update_conversations(count=5)
    removed = sorted(fake_ids(second, "admins"))[-1]
    second.remove_admin(removed)
    _settings, again = run_with_env(env, with_evidence=False)
    assert not again.failed, [o.error for o in again.outcomes]

    _assert_each_workspace_exact(db, fake, "us")
    assert removed not in _ids(db, "admins", second.workspace_id)
    assert removed in _ids(db, "admins", first.workspace_id), "the same admin id of the other workspace stays"
    retired = query(db, "select workspace_id from intercom.admins where id = ? and _dlt_valid_to is not null",
                    [removed])
    assert retired == [(second.workspace_id,)], "history is retired in its own workspace only"
    for table, rows in untouched.items():
        assert _load_ids(db, table, first.workspace_id) == rows, f"{table} of the unchanged workspace was rewritten"
    loaded = dict(query(db, "select workspace || '/' || resource, rows_loaded from intercom.sync_results "
                            "where run_id = ? and resource in ('contacts', 'conversations')",
                        [again.outcomes[0].run_id]))
    assert loaded == {"us-001/contacts": 0, "us-001/conversations": 0,
                      "us-002/contacts": 7, "us-002/conversations": 5}


def test_a_token_swapped_to_another_workspace_stops_that_name_only(two_in_us, tmp_path, capsys, monkeypatch) -> None:
    """Pointing us-001's variable at the other workspace's token: us-001 stops with the one
    line naming both ids, and loads nothing under its name; us-002 loads."""
    fake = two_in_us
    first, second = (fake.workspace("us", key) for key in fake.workspace_keys("us"))
    env = _workspaces_env(fake, tmp_path)
    db = tmp_path / "iru.duckdb"
    run_with_env(env, with_evidence=False)
    first_rows = {t: _load_ids(db, t, first.workspace_id) for t in ("contacts", "admins")}

    swapped = {**env, "IRU_FAKE_TOKEN_US_001": env["IRU_FAKE_TOKEN_US_002"]}
    for name, value in swapped.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "--workspace", "us-001"]) == 1
    err = capsys.readouterr().out
    line = (f"[us-001] wrong region or token: the token is of workspace {second.workspace_id} "
            f"({second.profile.app_name}), but {db} holds us-001 as workspace {first.workspace_id} "
            f"({first.profile.app_name}); nothing was loaded. Put {first.workspace_id}'s token back in "
            "IRU_FAKE_TOKEN_US_001, or replace us-001's data by "
            f"{second.workspace_id} with `iru-pipeline rebind --workspace us-001`")
    assert line in err, err
    for table, rows in first_rows.items():
        assert _load_ids(db, table, first.workspace_id) == rows
    assert query(db, "select name, workspace_id from iru_meta.workspace_bindings order by 1") == [
        ("us-001", first.workspace_id), ("us-002", second.workspace_id)]


def test_twenty_workspaces_in_a_file_run_as_one_dagster_run(tmp_path) -> None:
    """Twenty small workspaces (four regions' worth in one host each) load in one run of the
    `ingest_workspaces` job, one step, each workspace's partition materialised by itself."""
    extra = {region: [ExtraWorkspace(f"w{i}") for i in range(6)] for region in ("us", "eu")}
    extra["au"] = [ExtraWorkspace(f"w{i}") for i in range(5)]
    with FakeIntercom(seed=5, contacts=12, conversations=8, activity_logs=6, admins=3, teams=2, tags=3,
                      extra_workspaces=extra) as fake:
        env = _workspaces_env(fake, tmp_path)
        names = [ws.name for ws in served_workspaces(fake)]
        assert len(names) == 20
        lines: list[logging.LogRecord] = []
        handler = logging.Handler(logging.DEBUG)
        handler.emit = lines.append  # type: ignore[method-assign]
        progress = logging.getLogger("iru_pipeline.progress")
        level = progress.level
        progress.addHandler(handler)
        progress.setLevel(logging.DEBUG)
        try:
            settings, result = run_with_env(env, with_evidence=False)
        finally:
            progress.removeHandler(handler)
            progress.setLevel(level)
        assert not result.failed and not result.partial, [o.error for o in result.outcomes]
        db = tmp_path / "iru.duckdb"
        for region in fake.regions:
            _assert_each_workspace_exact(db, fake, region)

        instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == ["ingest_workspaces"], "one run, no run per workspace"
        (run,) = runs
        steps = {e.step_key for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
        assert steps == {"intercom"}, "one step loads them all"
        # Progress: one INFO line per workspace says its outcome; the resources' lines are DEBUG.
        info = [r.getMessage() for r in lines if r.levelno == logging.INFO and "] done: " in r.getMessage()]
        assert lines, "no progress line reached the test"
        # (Dagster's handler prefixes the record it shares with this one: run id, step.)
        assert [re.search(r"\[([a-z0-9-]+)\] done: ", m).group(1) for m in info] == names, info
        assert all(" 10 resources ok, " in m for m in info), info
        detail = [r.getMessage() for r in lines if r.levelno >= logging.INFO and ": done, " in r.getMessage()]
        assert detail == [], detail[:3]
        contacts = dg.AssetKey(["intercom", "contacts"])
        materialised = instance.get_materialized_partitions(contacts)
        assert materialised == set(names)
        events = instance.fetch_materializations(contacts, limit=100).records
        by_partition = {r.asset_materialization.partition: r.asset_materialization.metadata for r in events}
        for ws in served_workspaces(fake):  # each partition's metadata is that workspace's own
            rows = by_partition[ws.name]["rows_extracted"].value
            assert rows == len(fake_ids(fake.workspace(ws.region, ws.key), "contacts")), ws.name


def test_a_workspace_whose_token_is_gone_at_run_time_fails_alone(two_in_us, tmp_path, monkeypatch) -> None:
    """A run of many workspaces reads each one's token when that workspace loads: one whose
    variable was unset since (or never set, for a run launched by the schedule) fails with the
    one line naming the variable, and the other workspace loads."""
    from iru_pipeline.config import load_settings
    from iru_pipeline.runner import run_pipeline
    from iru_pipeline_tests.helpers import FAST_RETRY

    fake = two_in_us
    env = _workspaces_env(fake, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    monkeypatch.delenv("IRU_FAKE_TOKEN_US_001")
    result = run_pipeline(settings, with_evidence=False, intercom_options=FAST_RETRY)
    (outcome,) = result.outcomes
    assert outcome.error == ("1 of 2 workspaces not loaded (the others were): [us-001] IRU_FAKE_TOKEN_US_001 is not "
                             "set: set it to the access token of workspace us-001"), outcome.error
    db = tmp_path / "iru.duckdb"
    second = fake.workspace("us", fake.workspace_keys("us")[1])
    for resource in COMPARED:
        assert _ids(db, resource, second.workspace_id) == sorted(fake_ids(second, resource)), resource
    assert fake.stats("us")["total_requests"] == 0, "nothing was asked with the first workspace's token"
