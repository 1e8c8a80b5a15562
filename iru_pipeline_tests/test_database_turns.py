"""The pipeline's processes take turns on the DuckDB file. DuckDB fails at once, without a
retry in dlt, when a process opens a file another process has open; so whatever opens the
file outside a writing step (a run's start-up check, the summary read between two steps,
`export`) must never do so while another run's step may be opening it. Each test puts a
"step" in a child process that holds the turn and opens the file over and over, as dlt does
during a load, and counts the opens that failed on a lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import duckdb

from iru_pipeline.config import Secret
from iru_pipeline.pii_key import check_pii_key
from iru_pipeline.storage import database_turn, ensure_writable_database, reading_database
from iru_pipeline_tests.helpers import TEST_PII_KEY

STEP = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import duckdb
    from iru_pipeline.storage import database_turn

    db, seconds, released = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    failed = opened = 0
    with database_turn(db):
        print("holding", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                con = duckdb.connect(str(db))
                con.execute("insert into t values (1)")
                con.close()
                opened += 1
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                failed += 1
        released.write_text("released")
    print(f"opened={opened} failed={failed}", flush=True)
""")


def _database(tmp_path: Path) -> Path:
    db = tmp_path / "iru.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table t (x integer)")
    con.close()
    return db


def _start_step(db: Path, seconds: float, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    released = tmp_path / "released"
    step = subprocess.Popen([sys.executable, "-c", STEP, str(db), str(seconds), str(released)],
                            stdout=subprocess.PIPE, text=True)
    assert step.stdout is not None
    assert step.stdout.readline().strip() == "holding"
    return step, released


def _finish_step(step: subprocess.Popen[str]) -> tuple[int, int]:
    out, _ = step.communicate(timeout=60)
    assert step.returncode == 0
    counts = dict(part.split("=") for part in out.split())
    return int(counts["opened"]), int(counts["failed"])


def test_the_start_up_checks_leave_the_file_alone_while_another_runs_step_holds_the_turn(tmp_path: Path) -> None:
    db = _database(tmp_path)
    settings = SimpleNamespace(duckdb_path=db, pii_key=Secret(TEST_PII_KEY))
    step, _released = _start_step(db, 2.0, tmp_path)
    checks, lines = 0, []
    while step.poll() is None:
        ensure_writable_database(db, log=lines.append)  # never raises: the holder is a run of ours
        check_pii_key(settings)
        checks += 1
    opened, failed = _finish_step(step)
    assert checks > 10 and opened > 10, "both sides had time to meet"
    assert failed == 0, f"the start-up check opened the file under a writing step {failed} times"
    assert any("waits its turn" in line for line in lines)


def test_a_read_between_steps_waits_for_the_step_instead_of_breaking_it(tmp_path: Path) -> None:
    db = _database(tmp_path)
    step, released = _start_step(db, 1.5, tmp_path)
    seen: list[tuple[bool, int]] = []

    def read() -> None:
        with reading_database(db) as con:
            seen.append((released.exists(), con.execute("select count(*) from t").fetchone()[0]))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    opened, failed = _finish_step(step)
    for reader in readers:
        reader.join(timeout=30)
    assert failed == 0
    assert seen == [(True, opened)] * 3, "each read came after the step and saw all it wrote"


def test_a_turn_is_free_again_when_its_holder_is_killed(tmp_path: Path) -> None:
    db = _database(tmp_path)
    step, _released = _start_step(db, 60.0, tmp_path)
    with database_turn(db, wait=False) as turn:
        assert turn is False
    step.kill()
    step.wait(timeout=30)
    with database_turn(db, wait=False) as turn:
        assert turn is True


def test_readers_share_the_turn_and_a_writer_waits_for_them(tmp_path: Path) -> None:
    db = _database(tmp_path)
    with database_turn(db, shared=True) as first, database_turn(db, shared=True, wait=False) as second:
        assert (first, second) == (True, True)
        with database_turn(db, wait=False) as writer:
            assert writer is False
    with database_turn(db, wait=False) as writer:
        assert writer is True
