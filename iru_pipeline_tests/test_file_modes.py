"""Owner-only by default: everything `iru-pipeline run` and `export` create under the data
folder (the DuckDB file, the dlt pipelines dir, Dagster home, exports) is readable by its
owner only, whatever the operator's umask; a stricter umask keeps its extra bits."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from iru_pipeline.storage import restrict_umask
from iru_pipeline_tests.helpers import PipelineProcess, pipeline_env, small_fake


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_run_and_export_create_owner_only_files_under_a_permissive_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    previous = os.umask(0o022)  # the usual default: files 0644, folders 0755
    try:
        with small_fake() as fake:
            env = pipeline_env(fake, data)
            run = PipelineProcess(env, "run", cwd=tmp_path)
            assert run.finish() == 0, run.terminal[-2000:]
            export = PipelineProcess(env, "export", cwd=tmp_path)
            assert export.finish() == 0, export.terminal[-2000:]
    finally:
        os.umask(previous)

    assert _mode(data / "iru.duckdb") == 0o600
    for folder in (".dlt_pipelines", "dagster_home", "exports"):
        assert _mode(data / folder) == 0o700, folder
    created = [p for p in data.rglob("*") if not p.is_symlink()]
    assert len(created) > 20  # the run wrote DuckDB, dlt state, Dagster storage and an export
    readable_by_others = [f"{p.relative_to(data)} {_mode(p):o}" for p in created if _mode(p) & 0o077]
    assert readable_by_others == []


def test_the_umask_becomes_owner_only_and_a_stricter_one_is_kept() -> None:
    previous = os.umask(0o022)
    try:
        assert restrict_umask() == 0o022
        assert os.umask(0o027) == 0o077
        restrict_umask()
        assert os.umask(0o177) == 0o077
        restrict_umask()
        assert os.umask(0o022) == 0o177, "a stricter umask keeps its extra bits"
    finally:
        os.umask(previous)
