"""A region's stored data belongs to one Intercom workspace (`/me` -> `app.id_code`), bound to
the DuckDB file on the first run. A token that now belongs to another workspace stops that
region before anything is loaded (no row, no cursor, no history retired), with one line naming
both workspaces and the two ways out; the other regions still load, `check` says the same line
and writes nothing, and `iru-pipeline rebind` moves the region deliberately. A file written
before bindings existed is bound to the workspace its rows already hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from iru_pipeline.cli import main
from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline_tests.helpers import (
    assert_matches_fake,
    committed_cursors,
    data_dir_listing,
    pipeline_env,
    query,
    run_with_env,
    small_fake,
)


OTHER_ID = "q3wd8k5h"
"""Another workspace hosted in the US, served by a second fake."""


def _use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _with_us_of(env: dict[str, str], other: FakeIntercom) -> dict[str, str]:
    """`env` with the us token and host pointed at another fake: another workspace, same region."""
    return {**env, "INTERCOM_ACCESS_TOKEN_US": other.token("us"), "INTERCOM_BASE_URL_US": other.base_url("us")}


def _region_state(db: Path, region: str) -> dict[str, Any]:
    """Everything a load of `region` would change: per raw table its rows (history included),
    current rows and load ids; the cursors dlt restores; the pipeline's state rows."""
    tables = [r[0] for r in query(db, "select table_name from information_schema.columns where table_schema = "
                                      "'intercom' and column_name = 'workspace_id'")]
    state: dict[str, Any] = {}
    for table in sorted(tables):
        if table == "sync_results":
            continue
        state[table] = query(db, f"select count(*), count(distinct _dlt_load_id), count(distinct workspace_id) "
                                 f"from intercom.{table} where region = ?", [region])[0]
    state["cursors"] = committed_cursors(db, region)
    state["dlt_state_rows"] = query(db, "select count(*) from intercom._dlt_pipeline_state where pipeline_name = ?",
                                    [f"intercom_{region}"])[0][0]
    return state


def _rows_of_workspace(db: Path, workspace_id: str) -> int:
    tables = [r[0] for r in query(db, "select table_name from information_schema.columns where table_schema = "
                                      "'intercom' and column_name = 'workspace_id'")]
    return sum(query(db, f"select count(*) from intercom.{t} where workspace_id = ?", [workspace_id])[0][0]
               for t in tables)


def _binding(db: Path, region: str) -> tuple[str, str, str | None]:
    return query(db, "select region, workspace_id, workspace_name from iru_meta.workspace_bindings where name = ?",
                 [region])[0]


def _expected_line(db: Path, bound: FakeIntercom, reported: FakeIntercom) -> str:
    """The one line, from first principles: both workspaces (id and name, as `/me` gives them)."""
    old, new = bound.workspace("us"), reported.workspace("us")
    return (f"[us] wrong region or token: the token is of workspace {new.workspace_id} ({new.profile.app_name}), "
            f"but {db} holds region us of workspace {old.workspace_id} ({old.profile.app_name}); nothing was "
            f"loaded. Put {old.workspace_id}'s token back in INTERCOM_ACCESS_TOKEN_US, or replace region us's data "
            f"by {new.workspace_id} with `iru-pipeline rebind --region us`")


def test_a_token_of_another_workspace_stops_its_region_and_the_others_still_load(tmp_path: Path) -> None:
    with small_fake(seed=7, regions=("us", "eu")) as first, small_fake(seed=8, workspace_ids={"us": OTHER_ID}) as other:
        assert first.workspace("us").workspace_id != other.workspace("us").workspace_id
        env = pipeline_env(first, tmp_path)
        _settings, loaded = run_with_env(env, with_evidence=False)
        assert not loaded.failed
        db = tmp_path / "iru.duckdb"
        ws = first.workspace("us")
        assert _binding(db, "us") == ("us", ws.workspace_id, ws.profile.app_name)
        assert _binding(db, "eu")[1] == first.workspace("eu").workspace_id

        first.workspace("eu").update_contacts(count=15)  # eu has something new to load
        other.workspace("us").update_contacts(count=15)
        before = _region_state(db, "us")
        _settings, swapped = run_with_env(_with_us_of(env, other), with_evidence=False)

        assert swapped.failed and swapped.exit_code == 1
        by_label = {o.label: o for o in swapped.outcomes}
        assert by_label["ingest us"].error == _expected_line(db, first, other)
        assert by_label["ingest eu"].success
        assert _region_state(db, "us") == before, "nothing of us was loaded, moved or retired"
        assert _rows_of_workspace(db, other.workspace("us").workspace_id) == 0
        assert _binding(db, "us")[1] == ws.workspace_id
        assert_matches_fake(db, first, regions=("eu",))
        eu_updated = query(db, "select count(*) from intercom.sync_results where run_id = ? and region = 'eu' "
                               "and resource = 'contacts' and rows_loaded >= 15",
                           [by_label["ingest eu"].run_id])[0][0]
        assert eu_updated == 1


def test_check_says_the_same_line_and_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    with small_fake(seed=7) as first, small_fake(seed=8, workspace_ids={"us": OTHER_ID}) as other:
        env = pipeline_env(first, tmp_path)
        run_with_env(env, with_evidence=False)
        db = tmp_path / "iru.duckdb"
        before = data_dir_listing(tmp_path)
        _use(monkeypatch, _with_us_of(env, other))
        capsys.readouterr()
        assert main(["check"]) == 1
        out = capsys.readouterr().out
        assert f"  error          {_expected_line(db, first, other)}" in out.splitlines(), out
        assert data_dir_listing(tmp_path) == before, "check wrote nothing"

        _use(monkeypatch, env)  # the bound workspace's token: no complaint
        assert main(["check"]) == 0
        assert "rebind" not in capsys.readouterr().out


def test_rebind_replaces_the_region_by_the_new_workspace_and_the_next_run_loads_it_in_full(
        tmp_path: Path, monkeypatch, capsys) -> None:
    with small_fake(seed=7, regions=("us", "eu")) as first, small_fake(seed=8, workspace_ids={"us": OTHER_ID}) as other:
        env = pipeline_env(first, tmp_path)
        run_with_env(env, with_evidence=False)
        db = tmp_path / "iru.duckdb"
        eu_before = _region_state(db, "eu")
        old_id, new = first.workspace("us").workspace_id, other.workspace("us")
        swapped_env = _with_us_of(env, other)
        _use(monkeypatch, swapped_env)
        capsys.readouterr()

        assert main(["rebind", "--region", "us"]) == 0
        out = capsys.readouterr().out
        assert f"now bound to workspace {new.workspace_id} ({new.profile.app_name})" in out, out
        assert _binding(db, "us") == ("us", new.workspace_id, new.profile.app_name)
        assert _rows_of_workspace(db, old_id) == 0, "the old workspace's rows (history included) are gone"
        assert committed_cursors(db, "us") is None, "and its cursors"
        assert _region_state(db, "eu") == eu_before, "another region is untouched"

        _settings, result = run_with_env(swapped_env, with_evidence=False)
        assert not result.failed, [o.error for o in result.outcomes]
        assert_matches_fake(db, other, regions=("us",))
        assert_matches_fake(db, first, regions=("eu",))
        assert query(db, "select count(distinct workspace_id) from intercom.contacts where region = 'us'") == [(1,)]

        assert main(["rebind", "--region", "us"]) == 0  # a second time: nothing to do
        assert "already" in capsys.readouterr().out
        assert_matches_fake(db, other, regions=("us",))


def test_a_database_from_before_bindings_binds_to_the_workspace_it_holds(tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    """The file as the previous version wrote it: the same run, without the binding table. The
    swapped token is refused by `check` and by `iru-pipeline run` (exit 1, the line once)."""
    with small_fake(seed=7) as first, small_fake(seed=8, workspace_ids={"us": OTHER_ID}) as other:
        env = pipeline_env(first, tmp_path)
        run_with_env(env, with_evidence=False)
        db = tmp_path / "iru.duckdb"
        con = duckdb.connect(str(db))
        try:
            con.execute("drop table iru_meta.workspace_bindings")
        finally:
            con.close()
        before = _region_state(db, "us")

        listing = data_dir_listing(tmp_path)
        _use(monkeypatch, _with_us_of(env, other))
        capsys.readouterr()
        assert main(["check"]) == 1
        assert _expected_line(db, first, other) in capsys.readouterr().out
        assert data_dir_listing(tmp_path) == listing

        assert main(["run"]) == 1, "the only region stopped: the run failed"
        out = capsys.readouterr().out
        assert out.count(_expected_line(db, first, other)) == 1, out
        assert _region_state(db, "us") == before
        assert query(db, "select count(*) from information_schema.tables where table_schema = 'iru_meta' "
                         "and table_name = 'workspace_bindings'") == [(0,)], "a refused run binds nothing"

        first.workspace("us").update_contacts(count=10)
        _settings, result = run_with_env(env, with_evidence=False)
        assert not result.failed, [o.error for o in result.outcomes]
        ws = first.workspace("us")
        assert _binding(db, "us") == ("us", ws.workspace_id, ws.profile.app_name)
        assert_matches_fake(db, first)
