"""Child processes and moments: `iru-pipeline` in its own process group (killable at a chosen
moment), dlt's phase from its working dir, DuckDB's lock, and a hook into the fake that acts
between two pages of a sync."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline_tests.support.env import cli_env


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

    server.handle_api = handle  # type: ignore[method-assign]  # test tooling wraps the fake's handler
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
