"""The many-workspaces bench scenario's plumbing, on three workspaces: the fake process serves
them with a workspaces file and its tokens' env file, `iru-pipeline run` loads every one of them
from that file, and the figures the bench reports (rows, API calls per resource and workspace,
the split of the wall time) are read back from the run. No timing is asserted."""

from __future__ import annotations

import tomllib
from pathlib import Path

from iru_pipeline.intercom_source.settings import RESOURCE_NAMES
from iru_pipeline_tests.bench.many_workspaces import SMALL, ManyWorkspacesFake, overheads, run_once

N = 3


def test_three_small_workspaces_loaded_from_the_fakes_workspaces_file(tmp_path: Path) -> None:
    with ManyWorkspacesFake(N, SMALL, tmp_path) as fake:
        names = list(tomllib.loads(fake.file.read_text())["workspaces"])
        assert names == ["us-001", "us-002", "us-003"]
        tokens = fake.tokens_env()
        assert sorted(tokens) == ["IRU_FAKE_TOKEN_US_001", "IRU_FAKE_TOKEN_US_002", "IRU_FAKE_TOKEN_US_003"]
        assert len(set(tokens.values())) == N
        assert all(token not in fake.file.read_text() for token in tokens.values())

        log = tmp_path / "bench.log"
        first = run_once(fake, tmp_path / "data", log)
        assert first["exit_code"] == 0, first.get("error")
        assert first["workspaces_in_sync_results"] == N
        assert first["workspaces_called"] == N
        assert first["rows_by_resource"]["contacts"] == N * SMALL["contacts"]
        assert first["rows_by_resource"]["conversations"] == N * SMALL["conversations"]
        assert set(first["max_calls_per_resource_client"]) == set(RESOURCE_NAMES)
        assert first["api_calls"] == sum(s["total_requests"] for s in fake.stats().values())
        assert {"before_first_workspace_s", "workspaces_s", "after_last_workspace_s"} <= set(first)
    assert all(token not in log.read_text() for token in tokens.values())


def test_overhead_per_further_workspace() -> None:
    many = {"wall_s": 210.0, "workspaces_s": 200.0, "exit_code": 0, "workspaces_in_sync_results": 101}
    one = {"wall_s": 10.0, "workspaces_s": 4.0, "exit_code": 0, "workspaces_in_sync_results": 1}
    # 100 further workspaces cost 200 s of wall time (196 s of ingestion) over the same rows in one.
    assert overheads(many, one, 101, "first") == {"first_overhead_per_workspace_s": 2.0,
                                                  "first_ingest_overhead_per_workspace_s": 1.96}
    failed = overheads({**many, "exit_code": 1}, one, 101, "quiet")
    assert failed["quiet_overhead_per_workspace_s"] == 2.0 and "exited 1" in failed["quiet_overhead_caveat"]
    assert overheads({**many, "workspaces_in_sync_results": 100}, one, 101, "first") == {}
