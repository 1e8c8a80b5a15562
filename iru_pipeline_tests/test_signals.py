"""Stopping is prompt and clean: SIGINT (Ctrl-C, sent to the whole process group as a terminal
does) or SIGTERM (sent to the process, as `kill` does) stops `iru-pipeline run` during
extraction, normalisation or loading. The process (window threads and table workers
included) ends with 130 or 143 after one line, starts no further region and no evidence,
leaves no Dagster run or pool slot open and no lock held, commits no cursor past unloaded data,
and the next run completes exactly. A second Ctrl-C ends it at once.

The moments are detected from outside, as in `test_kill_and_resume.py`: extraction by the
fake's request counters, normalisation and loading by dlt's package folders. Those last a
fraction of a second, so a missed moment is retried with a fresh data folder.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline_tests.helpers import (
    PipelineProcess,
    assert_matches_fake,
    assert_no_cursor_passed_unloaded_data,
    assert_values_match_fake,
    dlt_phase,
    fresh_progress_handler,  # noqa: F401 (autouse fixture)
    lock_holders,
    pipeline_env,
    slots_held,
    small_fake,
)

ATTEMPTS = 3
STOP_TIMEOUT_S = 30.0
"""A generous bound: the point is that the run ends by itself instead of hanging, not its speed."""


@dataclass(frozen=True)
class Moment:
    name: str
    reached: Callable[[PipelineProcess, FakeIntercom, Path], bool]
    latency_ms: float = 0.0


def _extracting_windows(run: PipelineProcess, fake: FakeIntercom, data: Path) -> bool:
    # Past the plan's count probes: window threads are paging through contacts.
    return fake.stats("us")["by_route"].get("POST /contacts/search", 0) >= 12


MOMENTS = {
    "extraction": Moment("extraction", _extracting_windows, latency_ms=60),
    "normalisation": Moment("normalisation", lambda r, f, d: dlt_phase(d, "us") == "normalize"),
    "loading": Moment("loading", lambda r, f, d: dlt_phase(d, "us") == "load"),
}


def _send(run: PipelineProcess, signum: int) -> None:
    if signum == signal.SIGINT:
        os.killpg(run.proc.pid, signum)  # Ctrl-C: the terminal signals the whole group
    else:
        os.kill(run.proc.pid, signum)  # kill PID: the process alone; it must stop its workers itself


def signal_at(moment: Moment, fake: FakeIntercom, root: Path, signums: tuple[int, ...]) -> tuple[Path, PipelineProcess]:
    fake.faults("us").update(latency_ms=moment.latency_ms)
    try:
        for attempt in range(1, ATTEMPTS + 1):
            data = root / f"attempt{attempt}"
            data.mkdir()
            fake.reset_stats("us")
            run = PipelineProcess(pipeline_env(fake, data), "run", cwd=root)
            if run.wait_for(lambda run=run, data=data: moment.reached(run, fake, data), moment.name):
                for signum in signums:
                    _send(run, signum)
                return data, run
            run.finish()
        raise AssertionError(f"{moment.name}: the run finished {ATTEMPTS} times before the moment was seen")
    finally:
        fake.faults("us").update(latency_ms=0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_statuses(home: Path) -> list[str]:
    con = sqlite3.connect(f"file:{home / 'history' / 'runs.db'}?mode=ro", uri=True, timeout=1)
    try:
        return [r[0] for r in con.execute("select status from runs")]
    finally:
        con.close()


def assert_stopped_cleanly(run: PipelineProcess, data: Path, signum: int) -> None:
    code = run.finish(timeout=STOP_TIMEOUT_S)
    assert code == 128 + signum, run.terminal[-3000:]
    ours = [line for line in run.err if line.startswith("iru-pipeline:")]
    assert len(ours) == 1 and f"stopped by {signal.Signals(signum).name}" in ours[0], run.stderr[-3000:]
    assert "Traceback" not in run.terminal, run.terminal[-3000:]
    assert not run.said("evidence: started"), "nothing after the stopped region may start"
    for _ in range(100):  # table workers and anything else the run started end with it
        if not _group_alive(run.proc.pid):
            break
        time.sleep(0.1)
    assert not _group_alive(run.proc.pid), "a process of the stopped run outlived it"
    home = data / "dagster_home"
    statuses = _run_statuses(home)
    assert statuses and not set(statuses) & {"NOT_STARTED", "STARTING", "STARTED", "CANCELING"}, statuses
    assert slots_held(home) == set(), "the stopped run's duckdb_writer pool slot was freed"
    db = data / "iru.duckdb"
    if db.exists():
        assert not lock_holders(db)


def run_again_completes_exactly(fake: FakeIntercom, data: Path) -> None:
    db = data / "iru.duckdb"
    if db.exists():
        assert_no_cursor_passed_unloaded_data(db, fake, "us")
    again = PipelineProcess(pipeline_env(fake, data), "run", cwd=data.parent)
    assert again.finish() == 0, again.terminal[-3000:]
    assert_matches_fake(db, fake)
    assert_values_match_fake(db, fake)
    assert_no_cursor_passed_unloaded_data(db, fake, "us")


@pytest.mark.parametrize(("moment", "signum"), [
    pytest.param("extraction", signal.SIGINT, id="sigint-during-extraction"),
    pytest.param("extraction", signal.SIGTERM, id="sigterm-during-extraction"),
    pytest.param("normalisation", signal.SIGINT, id="sigint-during-normalisation"),
    pytest.param("loading", signal.SIGTERM, id="sigterm-during-loading"),
])
def test_a_signal_stops_the_run_cleanly_and_the_next_run_completes_it(moment: str, signum: int, tmp_path: Path) -> None:
    # Over 3,000 contacts, the sync is split into windows paged by threads; the other moments
    # need no windows.
    with small_fake(contacts=4000 if moment == "extraction" else 300) as fake:
        data, run = signal_at(MOMENTS[moment], fake, tmp_path, (signum,))
        assert_stopped_cleanly(run, data, signum)
        run_again_completes_exactly(fake, data)


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    with small_fake(contacts=4000) as fake:
        data, run = signal_at(MOMENTS["extraction"], fake, tmp_path, (signal.SIGINT,))
        time.sleep(0.05)
        _send(run, signal.SIGINT)
        assert run.finish(timeout=STOP_TIMEOUT_S) == 130, run.terminal[-3000:]
        assert "Traceback" not in run.terminal
        assert len([line for line in run.err if line.startswith("iru-pipeline:")]) == 1, run.stderr[-3000:]
        run_again_completes_exactly(fake, data)
