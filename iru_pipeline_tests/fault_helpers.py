"""Tools of the fault, kill and bad-input tests.

- values: `assert_values_match_fake` compares field values of DuckDB's rows with the fake's
  records (ids alone are `helpers.assert_matches_fake`);
- the run's record: `sync_results` rows and Dagster materialisation metadata read back;
- leaks: `assert_nothing_leaked` scans a data folder (DuckDB, dlt pipelines, Dagster home,
  exports) and the terminal output for secrets and personal data;
- child processes: `PipelineProcess` runs `python -m iru_pipeline.cli ...` in its own process
  group so a test can SIGKILL the whole group at a chosen moment, and `dlt_phase` tells from
  the dlt working dir whether a region is normalising or loading;
- the fake: `on_nth_request` runs a mutation right after the fake answered the nth request of
  a route, i.e. deterministically between two pages of a sync.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from iru_pipeline.fake_intercom import MESSAGE_BODY_MARKER, FakeIntercom
from iru_pipeline_tests.conftest import TEST_PII_KEY
from iru_pipeline_tests.helpers import query
from iru_pipeline_tests.leaks import files_containing, tables_containing

ROOT = Path(__file__).resolve().parents[1]
FAST = {"max_retries": 6, "backoff_base_seconds": 0.01}
"""Retry options for in-process runs: the product's bounds, with millisecond backoff."""


def small_fake(seed: int = 23, regions: tuple[str, ...] = ("us",), **kwargs: Any) -> FakeIntercom:
    """A fake of a few hundred records (not started: use it as a context manager)."""
    kwargs.setdefault("contacts", 300)
    kwargs.setdefault("conversations", 200)
    return FakeIntercom(seed=seed, regions=regions, **kwargs)


@pytest.fixture(autouse=True)
def fresh_progress_handler() -> Any:
    """`enable_progress` (called by `main(["run"])`) binds its handler to the sys.stderr of the
    moment, which under pytest is that test's capture: drop it around each test so progress
    lines reach this test's capsys (and caplog), and no later test writes to a closed stream."""
    import logging

    logger = logging.getLogger("iru_pipeline.progress")

    def drop() -> None:
        for handler in [h for h in logger.handlers if getattr(h, "_iru_progress", False)]:
            logger.removeHandler(handler)
        logger.propagate = True  # enable_progress turns it off; caplog needs it on

    drop()
    yield
    drop()


# --------------------------------------------------------------------------- values


def _epoch(value: Any) -> int | None:
    if value in (None, 0) or isinstance(value, bool):
        return None
    return int(value)


def _id(value: Any) -> str | None:
    return None if value in (None, 0, "0", "") else str(value)


def _expected(ws: Any, table: str) -> dict[str, tuple]:
    if table == "contacts":
        return {str(c["id"]): (_epoch(c.get("updated_at")), _epoch(c.get("last_seen_at")), c.get("role"))
                for c in ws.contacts()}
    if table == "conversations":
        return {str(c["id"]): (_epoch(c.get("updated_at")), c.get("state"), c.get("open"),
                               _id(c.get("admin_assignee_id")))
                for c in ws.conversations()}
    if table == "activity_logs":
        return {str(e["id"]): (_epoch(e.get("created_at")), e.get("activity_type")) for e in ws.activity_logs(0)}
    if table == "admins":
        return {str(a["id"]): (a.get("name"), a.get("email")) for a in ws.admins()}
    if table == "teams":
        return {str(t["id"]): (t.get("name"),) for t in ws.teams()}
    if table == "tags":
        return {str(t["id"]): (t.get("name"),) for t in ws.tags()}
    if table == "deleted_conversations":
        return {str(d["id"]): (_epoch(d.get("deleted_at")),) for d in ws.deleted_conversations()}
    raise KeyError(table)


_STORED = {
    "contacts": "epoch(updated_at)::bigint, epoch(last_seen_at)::bigint, role",
    "conversations": "epoch(updated_at)::bigint, state, open, admin_assignee_id",
    "activity_logs": "epoch(created_at)::bigint, activity_type",
    "admins": "name, email",
    "teams": "name",
    "tags": "name",
    "deleted_conversations": "epoch(deleted_at)::bigint",
}
VALUE_TABLES = tuple(_STORED)


def stored_values(db: Path, table: str, region: str) -> dict[str, tuple]:
    current = " and _dlt_valid_to is null" if table in ("admins", "teams", "tags") else ""
    rows = query(db, f"select id, {_STORED[table]} from intercom.{table} where region = ?{current}", [region])
    return {r[0]: tuple(r[1:]) for r in rows}


def assert_values_match_fake(db: Path, fake: FakeIntercom, regions: tuple[str, ...] | None = None,
                             tables: tuple[str, ...] = VALUE_TABLES) -> None:
    """Every compared table of every region: the same ids with the same values (cursor
    timestamps, states, names), so a stale row kept by a faulty run would show."""
    for region in regions or fake.regions:
        ws = fake.workspace(region)
        for table in tables:
            want, got = _expected(ws, table), stored_values(db, table, region)
            differ = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
            extra = sorted(set(got) - set(want))
            assert not differ and not extra, (
                f"{region}/{table}: {len(differ)} rows differ or are missing "
                f"(stored, fake) e.g. {list(differ.items())[:2]}; {len(extra)} unexpected e.g. {extra[:3]}")


# --------------------------------------------------------------------------- the run's record


def sync_results(db: Path, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of `intercom.sync_results` (of the given runs)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        sql = "select * from intercom.sync_results"
        params: list[Any] = []
        if run_ids is not None:
            sql += " where run_id in (select unnest(?))"
            params = [run_ids]
        cur = con.execute(sql + " order by region, resource", params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


def api_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    keys = ("api_calls", "api_retries", "api_429s", "api_5xx", "api_transport_errors")
    return {k: sum(int(r[k] or 0) for r in rows) for k in keys}


def ingestion_run_ids(result: Any) -> list[str]:
    return [o.run_id for o in result.outcomes if o.label.startswith("ingest ")]


def latest_materialization_metadata(dagster_home: Path, asset: list[str], partition: str) -> dict[str, Any]:
    """Metadata of an asset's latest materialisation, as the Dagster UI shows it."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert event is not None and event.asset_materialization is not None, f"{asset} was never materialised"
        mat = event.asset_materialization
        assert mat.partition == partition, (mat.partition, partition)
        return {k: v.value for k, v in mat.metadata.items()}
    finally:
        instance.dispose()


# --------------------------------------------------------------------------- leaks


def secret_needles(fake: FakeIntercom) -> dict[str, str]:
    """Strings that must never be written: tokens, the PII key, message content, clear contact
    e-mails and phone numbers."""
    needles = {f"token_{r}": fake.token(r) for r in fake.regions}
    needles["pii_key"] = TEST_PII_KEY
    needles["message_body"] = MESSAGE_BODY_MARKER
    for region in fake.regions:
        contacts = list(fake.workspace(region).contacts())
        for i, c in enumerate([c for c in contacts if c.get("email")][:25]):
            needles[f"contact_email_{region}_{i}"] = c["email"]
        for i, c in enumerate([c for c in contacts if c.get("phone")][:10]):
            needles[f"contact_phone_{region}_{i}"] = c["phone"]
    return needles


def assert_nothing_leaked(data_dir: Path, fake: FakeIntercom, terminal: str = "",
                          needles: dict[str, str] | None = None) -> None:
    """No needle in any file under `data_dir` (DuckDB bytes, .dlt_pipelines, dagster_home,
    exports), in any text column of the DuckDB file, or in the terminal output."""
    needles = needles or secret_needles(fake)
    assert files_containing(data_dir, needles) == []
    db = data_dir / "iru.duckdb"
    if db.exists() and db.stat().st_size > 0:
        assert tables_containing(db, needles) == []
    assert [name for name, value in needles.items() if value in terminal] == []


# --------------------------------------------------------------------------- child processes


def cli_env(env: dict[str, str]) -> dict[str, str]:
    """The test's environment without any real Intercom or iru settings, plus `env`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("INTERCOM_", "IRU_", "DAGSTER_", "PYTEST_"))}
    base.update(env)
    base["PYTHONUNBUFFERED"] = "1"
    return base


class PipelineProcess:
    """`python -m iru_pipeline.cli <args>` in its own process group, its output collected
    line by line as it comes."""

    def __init__(self, env: dict[str, str], *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iru_pipeline.cli", *args], cwd=cwd, env=cli_env(env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, lines), daemon=True)
                         for s, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:  # one at a time: a waiting test sees each line as it comes
            lines.append(line)  # noqa: PERF402

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def terminal(self) -> str:
        return self.stdout + self.stderr

    def said(self, pattern: str) -> bool:
        """A progress line (stderr) matching the regex has been printed."""
        rx = re.compile(pattern)
        return any(rx.search(line) for line in list(self.err))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 120.0, poll: float = 0.002) -> bool:
        """Poll until `condition()`; False when the process ended first (the moment was missed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            if self.proc.poll() is not None:
                return condition()
            time.sleep(poll)
        self.kill()
        raise AssertionError(f"waited {timeout:.0f}s for {what}; output so far:\n{self.terminal[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group (the CLI and anything it started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._join()

    def finish(self, timeout: float = 180.0) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout:.0f}s:\n{self.terminal[-3000:]}") from None
        self._join()
        return rc

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(timeout=10)


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def dlt_phase(data_dir: Path, region: str) -> str | None:
    """What the region's dlt pipeline is doing, from its working dir:
    "normalize" while a package is being written into `load/new`, "load" once a package in
    `load/normalized` has completed jobs (some tables loaded, the package not yet committed)."""
    load = data_dir / ".dlt_pipelines" / f"intercom_{region}" / "load"
    for package in _listdir(load / "normalized"):
        if _listdir(load / "normalized" / package / "completed_jobs"):
            return "load"
    for package in _listdir(load / "new"):
        if _listdir(load / "new" / package / "new_jobs"):
            return "normalize"
    return None


def evidence_materializations(dagster_home: Path) -> int:
    """How many evidence assets the Dagster runs recorded as materialised so far."""
    total = 0
    for db in _listdir(dagster_home / "history" / "runs"):
        if not db.endswith(".db") or db == "index.db":
            continue
        try:
            con = sqlite3.connect(f"file:{dagster_home / 'history' / 'runs' / db}?mode=ro", uri=True, timeout=0.05)
            try:
                total += con.execute(
                    "select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION' "
                    "and asset_key like '%evidence%'").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            continue
    return total


def lock_holders(path: Path) -> set[int]:
    """Pids of other processes holding DuckDB's lock on `path` (never takes the lock itself)."""
    from iru_pipeline.storage import lock_holders as holders

    found = holders(path)
    assert found is not None, "these tests read /proc/locks (Linux)"
    return found


HOLD_DUCKDB = (
    "import duckdb, sys, time\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "con.execute('create table if not exists notes (t varchar)')\n"
    "print('holding', flush=True)\n"
    "time.sleep(600)\n"
)


def hold_duckdb_open(path: Path) -> subprocess.Popen:
    """Another process with a read-write DuckDB session open on `path` (as a forgotten SQL
    shell would); returns once the lock is held. Kill it when done."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_DUCKDB, str(path)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


# --------------------------------------------------------------------------- the fake


def on_nth_request(fake: FakeIntercom, region: str, route: str, nth: int, action: Callable[[], Any]) -> list[Any]:
    """Run `action` once, right after the fake computed its answer to the nth `route` request
    (e.g. "POST /contacts/search") and before the client can ask for the next page. Returns
    a list that receives the action's result."""
    server = fake._server(region)  # the fake's per-region server: test tooling, not the pipeline
    original = server.handle_api
    count = {"n": 0}
    lock = threading.Lock()
    results: list[Any] = []

    def handle(method: str, path: str, query: Any, body: bytes, headers: Any) -> Any:
        outcome = original(method, path, query, body, headers)
        if f"{method} {path}" == route:
            with lock:
                count["n"] += 1
                if count["n"] == nth:
                    results.append(action())
        return outcome

    server.handle_api = handle
    return results


def data_dir_listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and mtime: to prove a command wrote nothing."""
    if not root.exists():
        return {}
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns) if path.is_file() else (-1, 0)
    return out


# --------------------------------------------------------------------------- cursors


CURSORS = {"contacts": "updated_at", "conversations": "updated_at", "activity_logs": "created_at",
           "deleted_conversations": "deleted_at"}


def committed_cursors(db: Path, region: str) -> dict[str, Any] | None:
    """The cursors dlt restores for a region at the start of its next run: the newest state
    row of a *completed* load (dlt joins `_dlt_loads` with status 0), or None."""
    from dlt.common.versioned_state import decompress_state

    if not db.exists():
        return None
    tables = {r[0] for r in query(db, "select table_name from information_schema.tables "
                                      "where table_schema = 'intercom'")}
    if not {"_dlt_pipeline_state", "_dlt_loads"} <= tables:
        return None
    rows = query(db, "select s.state from intercom._dlt_pipeline_state s join intercom._dlt_loads l "
                     "on l.load_id = s._dlt_load_id where s.pipeline_name = ? and l.status = 0 "
                     "order by l.load_id desc limit 1", [f"intercom_{region}"])
    if not rows:
        return None
    resources = decompress_state(rows[0][0]).get("sources", {}).get("intercom", {}).get("resources", {})
    out = {}
    for resource, field in CURSORS.items():
        value = resources.get(resource, {}).get("incremental", {}).get(field, {}).get("last_value")
        if value is not None:
            out[resource] = value
    return out


def assert_no_cursor_passed_unloaded_data(db: Path, fake: FakeIntercom, region: str) -> None:
    """Every record at or before a committed cursor is in DuckDB: a cursor never moved past
    data that was not loaded."""
    from iru_pipeline_tests.helpers import db_ids

    cursors = committed_cursors(db, region)
    if not cursors:
        return
    ws = fake.workspace(region)
    records = {"contacts": list(ws.contacts()), "conversations": list(ws.conversations()),
               "activity_logs": ws.activity_logs(0), "deleted_conversations": ws.deleted_conversations()}
    for resource, cursor in cursors.items():
        field = CURSORS[resource]
        limit = cursor.timestamp()
        behind = {str(r["id"]) for r in records[resource] if r.get(field) and r[field] <= limit}
        stored = set(db_ids(db, resource, region))
        missing = behind - stored
        assert not missing, (f"{region}/{resource}: the committed cursor {cursor} is past {len(missing)} records "
                             f"that are not in DuckDB, e.g. {sorted(missing)[:3]}")


# --------------------------------------------------------------------------- Dagster's pool slots


def _index_rows(dagster_home: Path, sql: str) -> list[tuple]:
    index = dagster_home / "history" / "runs" / "index.db"
    if not index.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def run_ids(dagster_home: Path) -> set[str]:
    runs = dagster_home / "history" / "runs.db"
    if not runs.exists():
        return set()
    con = sqlite3.connect(f"file:{runs}?mode=ro", uri=True, timeout=1)
    try:
        return {r[0] for r in con.execute("select run_id from runs")}
    finally:
        con.close()


def slots_held(dagster_home: Path) -> set[str]:
    """Run ids holding a `duckdb_writer` pool slot in the Dagster instance."""
    return {r[0] for r in _index_rows(dagster_home, "select run_id from concurrency_slots where run_id is not null")}


def steps_waiting_for_a_slot(dagster_home: Path) -> set[str]:
    """Run ids with a step queued for a pool slot and not given one."""
    return {r[0] for r in _index_rows(dagster_home, "select run_id from pending_steps where assigned_timestamp is null")}


def free_slots_of(dagster_home: Path, dead_runs: set[str]) -> None:
    """What an operator would do by hand: give back the pool slots of runs whose process died."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        for run_id in dead_runs:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    finally:
        instance.dispose()


def finish_unless_stuck_behind(run: PipelineProcess, dagster_home: Path, dead_runs: set[str],
                               grace: float = 10.0, timeout: float = 180.0) -> int | None:
    """Wait for `run`; None if it is stuck for `grace` seconds waiting for a pool slot that a
    run of a dead process holds (a deadlock: nothing alive will ever give the slot back)."""
    deadline = time.monotonic() + timeout
    stuck_since: float | None = None
    while run.proc.poll() is None:
        now = time.monotonic()
        stuck = bool(slots_held(dagster_home) & dead_runs) and bool(steps_waiting_for_a_slot(dagster_home) - dead_runs)
        stuck_since = (stuck_since or now) if stuck else None
        if stuck_since is not None and now - stuck_since > grace:
            run.kill()
            return None
        if now > deadline:
            run.kill()
            raise AssertionError(f"still running after {timeout:.0f}s:\n{run.terminal[-3000:]}")
        time.sleep(0.2)
    return run.finish()
