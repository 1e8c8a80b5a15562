"""Clean failures of the storage: a disk that fills up during a run, a read-only data folder
and a read-only Dagster home each end in one line naming the folder and the fix, with a
non-zero exit and no traceback; after a full disk, nothing half-written is kept: the next run
on a disk with room completes exactly.

Real small file systems: tmpfs mounts (these tests need root, and are skipped without it)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from iru_pipeline_tests.helpers import (
    PipelineProcess,
    assert_matches_fake,
    assert_no_cursor_passed_unloaded_data,
    assert_values_match_fake,
    pipeline_env,
    small_fake,
)


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    if os.geteuid() != 0 or not _mount(folder, options):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _our_lines(run: PipelineProcess) -> list[str]:
    return [line.rstrip("\n") for line in run.err if line.startswith("iru-pipeline:")]


def test_a_disk_filling_up_mid_run_ends_in_one_line_and_the_next_run_completes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with small_fake() as fake, tmpfs(data, "size=3m,mode=0700"):
        env = pipeline_env(fake, data)
        run = PipelineProcess(env, "run", cwd=tmp_path)
        assert run.finish() == 1, run.terminal[-3000:]
        assert "Traceback" not in run.terminal, run.terminal[-3000:]
        lines = _our_lines(run)
        assert len(lines) == 1 and f"cannot write to {data}" in lines[0] and "free space" in lines[0], run.stderr
        assert not run.said("evidence: started")
        db = data / "iru.duckdb"
        if db.exists():
            assert_no_cursor_passed_unloaded_data(db, fake, "us")

        subprocess.run(["mount", "-o", "remount,size=200m", str(data)], check=True)  # room again
        again = PipelineProcess(env, "run", cwd=tmp_path)
        assert again.finish() == 0, again.terminal[-3000:]
        assert_matches_fake(db, fake)
        assert_values_match_fake(db, fake)
        assert_no_cursor_passed_unloaded_data(db, fake, "us")


@pytest.mark.parametrize("read_only", ["data folder", "dagster_home"])
def test_a_read_only_folder_is_one_line_before_any_request(read_only: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    folder = data if read_only == "data folder" else data / "dagster_home"
    with small_fake() as fake, tmpfs(folder, "ro,size=1m"):
        fake.reset_stats("us")
        run = PipelineProcess(pipeline_env(fake, data), "run", cwd=tmp_path)
        assert run.finish() == 2, run.terminal[-3000:]
        assert "Traceback" not in run.terminal
        lines = _our_lines(run)
        assert len(lines) == 1 and str(folder) in lines[0] and "writable" in lines[0], run.stderr
        assert fake.stats("us")["by_route"] == {}, "nothing was requested"
