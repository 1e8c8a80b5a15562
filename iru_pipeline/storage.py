"""The DuckDB file before and during a run: usable, a database, and who holds its lock.

DuckDB allows one writing process per file and takes a POSIX lock on it. While a run waits
for the file, whether it is locked is read from /proc/locks, not by opening the file: a trial
connection takes the lock itself for a moment, and a run that tries to open the file during
that moment fails (dlt does not retry a lock conflict). Where /proc/locks does not exist, a
trial connection is the fallback.

Between the pipeline's own processes the file is shared by turns (`database_turn`): a step
that writes holds the turn for its whole body, and whatever opens the file outside a step (a
run's start-up check, the summary read between runs, `export`, `rekey`) takes the turn first.
Dagster's `duckdb_writer` pool orders the steps of one instance; the turn also covers what
the pool does not see, so no process of the pipeline ever opens the file while another one
may be opening it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from iru_pipeline.config import ConfigError

DUCKDB_MAGIC = b"DUCK"
"""DuckDB's storage header carries this at byte offset 8."""
PIPELINE_COMMANDS = ("iru_pipeline", "iru-pipeline", "dagster")
"""A lock holder whose command line names one of these is a run of the pipeline."""


DUCKDB_MEMORY_LIMIT = "512MB"
"""DuckDB's memory limit for dlt's loads and the evidence queries: with its default (80% of
RAM) a merge of a million contacts raised the process's RSS by about 350 MB; with this limit
by under 35 MB, spilling to disk instead (measured by `make bench`)."""


OWNER_ONLY_UMASK = 0o077
"""Bits masked from everything the pipeline creates: the DuckDB file and its WAL, the dlt
pipelines dir, Dagster home and exports hold admins in clear, pseudonyms and activity logs,
so they are created 0600 (files) and 0700 (folders), readable by their owner only."""


def restrict_umask() -> int:
    """Make files and folders this process creates from now on owner-only; a umask already
    stricter keeps its extra bits. Returns the previous umask.

    A umask rather than a chmod after each write: dlt, DuckDB and Dagster create their own
    files (WAL, load packages, run storage) and none of them takes a mode."""
    previous = os.umask(OWNER_ONLY_UMASK)
    os.umask(previous | OWNER_ONLY_UMASK)
    return previous


def duckdb_destination(path: Path) -> Any:
    """dlt's DuckDB destination for `path`, with the load's memory bounded."""
    import dlt
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(str(path))
    credentials.global_config = {"memory_limit": DUCKDB_MEMORY_LIMIT}
    return dlt.destinations.duckdb(credentials)


def apply_dlt_load_settings() -> None:
    """dlt's settings for every pipeline's extract and load (dlt reads them from its global
    config when the steps run)."""
    import dlt

    # Arrow pages (contacts, conversations) get dlt's load id too, for lineage like dict rows.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    # The rows live in the dataset's tables only. A loaded package's job files are a second
    # copy of its rows (pseudonyms included): dlt deletes them once the package is loaded (one
    # with a failed job keeps them; the next run drops the working dir anyway). The merge
    # staging schema held each table's last load (after a first load, all of it) until that
    # table's next merge load: dlt empties it after each package.
    dlt.config["load.delete_completed_jobs"] = True
    dlt.config["load.truncate_staging_dataset"] = True


def lock_holders(path: Path) -> set[int] | None:
    """Pids of other processes holding a POSIX lock on `path`; None where /proc/locks is
    unavailable (not Linux). Reading it never takes the lock."""
    try:
        inode = path.stat().st_ino
        text = Path("/proc/locks").read_text()
    except FileNotFoundError:
        return set() if not path.exists() else None
    except OSError:
        return None
    holders = set()
    for line in text.splitlines():
        parts = line.split()
        # "1: POSIX  ADVISORY  WRITE 1234 08:02:131090 0 EOF"; blocked waiters carry "->".
        if len(parts) >= 6 and parts[1] == "POSIX" and "->" not in parts and parts[5].rsplit(":", 1)[-1] == str(inode):
            holders.add(int(parts[4]))
    holders.discard(os.getpid())  # locks are per process: our own connections never block us
    return holders


def process_command(pid: int) -> str:
    """The command line of a process, or "" when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def is_pipeline_process(pid: int) -> bool:
    command = process_command(pid)
    return any(name in command for name in PIPELINE_COMMANDS)


def _locked_error(path: Path, pid: int | None) -> ConfigError:
    command = process_command(pid).split(" ", 1)[0] if pid else ""
    holder = f" (process {pid}{f', {Path(command).name}' if command else ''})" if pid else ""
    return ConfigError(
        f"IRU_DUCKDB_PATH={path} is locked by another process{holder}: close SQL sessions on it "
        "(or open them with read_only=True only between runs) and retry"
    )


def ensure_writable_database(path: Path, log: Callable[[str], None] | None = None) -> None:
    """Before any request: the DuckDB file, if it exists, is a writable DuckDB database that
    no foreign process holds. A run of the pipeline holding it is not an error: this run's
    writes queue behind it (the `duckdb_writer` pool, then `wait_for_database`)."""
    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(f"IRU_DUCKDB_PATH={path} is not a file: choose a file path such as data/iru.duckdb")
    try:
        with path.open("rb") as f:
            header = f.read(12)
    except OSError as exc:
        raise ConfigError(f"IRU_DUCKDB_PATH={path} cannot be read ({exc.strerror}): fix its permissions") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"IRU_DUCKDB_PATH={path} is read-only: fix its permissions or choose another path")
    if header and header[8:12] != DUCKDB_MAGIC:
        raise ConfigError(
            f"IRU_DUCKDB_PATH={path} is not a usable DuckDB database (no DuckDB header): "
            "move it away or choose another path")
    holders = lock_holders(path)
    if not holders:  # free (or unknown without /proc/locks): opening it once proves it is intact
        with database_turn(path, wait=False, create=False) as turn:
            if turn:
                _trial_connect(path)
                return
        holders = set()  # another run's step is about to open it: not ours to touch now
    foreign = sorted(pid for pid in holders if not is_pipeline_process(pid))
    if foreign:
        raise _locked_error(path, foreign[0])
    if log:
        pids = ", ".join(map(str, sorted(holders)))
        log(f"another run {f'(process {pids}) ' if pids else ''}is writing {path}; this run waits its turn")



def _trial_connect(path: Path) -> None:
    """Open the file once: the fallback without /proc/locks."""
    try:
        duckdb.connect(str(path)).close()
    except duckdb.IOException as exc:
        message = str(exc)
        if "lock" in message.lower():
            pid = re.search(r"PID (\d+)", message)
            raise _locked_error(path, int(pid.group(1)) if pid else None) from None
        raise ConfigError(f"IRU_DUCKDB_PATH={path} cannot be opened: {message.splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise ConfigError(
            f"IRU_DUCKDB_PATH={path} is not a usable DuckDB database ({str(exc).splitlines()[0]}): "
            "move it away or choose another path"
        ) from None


TURN_SUFFIX = ".turn"
"""The turn file beside the DuckDB file (`iru.duckdb.turn`): empty, only ever locked."""
TURN_LOG_EVERY_S = 30.0
_HELD_EXCLUSIVE: set[str] = set()
"""Turn files this process holds exclusively."""


@contextmanager
def database_turn(path: Path, *, shared: bool = False, wait: bool = True, create: bool = True,
                  log: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold the pipeline's turn on the DuckDB file `path`: exclusive for a writer, `shared`
    for readers. Yields True once held; with `wait=False` yields False at once when another
    process holds it. Waits without a bound otherwise, as Dagster's pool does (the turn is
    held only by a live process of the pipeline: the kernel drops a flock when its holder
    dies, so no turn outlives a killed run), saying so through `log` every 30 s.

    A flock on a file of its own, not DuckDB's lock: DuckDB takes its lock only while a
    connection is open and fails at once on a conflict; the turn spans a whole step (dlt
    opens and closes the file several times in one) and queues. A folder where the turn
    file cannot be created (read-only) gets no turn: the storage checks report that folder.

    Inside a process that holds the turn exclusively, a nested request passes through: a flock
    taken again on a second descriptor would wait for the first one forever.

    With `create=False` a missing turn file is not created (a check that must write nothing):
    nobody holds a turn that does not exist, so the turn is yielded as held."""
    turn_file = path.with_name(path.name + TURN_SUFFIX)
    key = str(turn_file.resolve())
    if key in _HELD_EXCLUSIVE:
        yield True
        return
    try:
        fd = os.open(turn_file, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o600)
    except OSError:
        yield True
        return
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not _try_flock(fd, mode):
            if not wait:
                yield False
                return
            _wait_flock(fd, mode, path, log)
        if not shared:
            _HELD_EXCLUSIVE.add(key)
        try:
            yield True
        finally:
            _HELD_EXCLUSIVE.discard(key)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _wait_flock(fd: int, mode: int, path: Path, log: Callable[[str], None] | None) -> None:
    # Polled rather than a blocking flock, so a stop request (SIGINT, SIGTERM) raised in the
    # main thread is not held up inside a system call.
    started = time.monotonic()
    next_log = started
    while not _try_flock(fd, mode):
        now = time.monotonic()
        if log and now >= next_log:
            log(f"{path} is in use by another run of the pipeline; waiting its turn "
                f"({now - started:.0f}s so far)")
            next_log = now + TURN_LOG_EVERY_S
        time.sleep(0.1)


@contextmanager
def reading_database(path: Path, log: Callable[[str], None] | None = None) -> Iterator[Any]:
    """A read-only connection to `path`, opened and closed inside a shared turn, so it never
    meets a writing step of another run (and never makes one fail)."""
    with database_turn(path, shared=True, log=log):
        con = duckdb.connect(str(path), read_only=True)
        try:
            yield con
        finally:
            con.close()


def wait_for_database(path: Path, timeout: float = 120.0, log: Callable[[str], None] | None = None) -> None:
    """Wait until no other process holds the DuckDB file's lock.

    The `duckdb_writer` pool lets one step write at a time, but a process that just finished
    its step may hold the lock a moment longer (until its connections are closed), and an
    ad-hoc SQL session may hold it too. dlt does not retry a lock conflict, so ingestion
    waits here, bounded, instead of failing the run; past the bound the lock error is raised
    in one line."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        holders = lock_holders(path)
        if holders is None:  # no /proc/locks: ask DuckDB
            try:
                duckdb.connect(str(path)).close()
                return
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                pid_match = re.search(r"PID (\d+)", str(exc))
                holders = {int(pid_match.group(1))} if pid_match else {0}
        if not holders:
            return
        if time.monotonic() + delay > deadline:
            raise _locked_error(path, min(holders) or None)
        if log:
            log(f"DuckDB file {path} is locked by process {', '.join(map(str, sorted(holders)))}; waiting {delay:.1f}s")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def ensure_hosts_reachable(settings: Any, timeout: float = 5.0) -> None:
    """Open a TCP connection to each workspace's host, or to the proxy that httpx will use
    for it (HTTPS_PROXY, NO_PROXY...), with no HTTP request and no token sent, so a wrong base
    URL or a closed port is one line before anything is written. The line is the one `check`
    prints for the same failure (`intercom_client.reach`)."""
    from iru_pipeline.intercom_client.reach import probe

    probed: set[str] = set()
    for ws in settings.workspaces:
        if ws.base_url in probed:  # many workspaces share a host: one connection says it for all
            continue
        probed.add(ws.base_url)
        problem = probe(ws.name, ws.region_code, ws.base_url, timeout, ws.base_url_setting)
        if problem is not None:
            raise ConfigError(problem)


# --------------------------------------------------------------------------- full or read-only storage

_STORAGE_PROBLEMS = (
    ("no space left on device", "the disk is full"),
    ("database or disk is full", "the disk is full"),
    ("disk quota exceeded", "the disk quota is used up"),
    ("disk i/o error", "a disk write failed (is the disk full?)"),
    ("read-only file system", "it is on a read-only file system"),
    ("readonly database", "a file in it is read-only"),
)
_STORAGE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                   errno.EROFS: "it is on a read-only file system", errno.EACCES: "permission was denied"}


class StorageError(Exception):
    """The data folder cannot be written (full, read-only). The message is one line naming the
    folder and the fix."""


def storage_problem(exc: BaseException | str | None) -> str | None:
    """What is wrong with the storage, if `exc` (or any exception it was raised from, or its
    text) says the disk is full or read-only; None for any other error."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
            return _STORAGE_ERRNOS[exc.errno]
        text = str(exc).lower()
        for needle, problem in _STORAGE_PROBLEMS:
            if needle in text:
                return problem
        if isinstance(exc, str):
            return None
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def storage_error(folder: Path, problem: str) -> StorageError:
    fix = ("free space there (or set IRU_DUCKDB_PATH to a file on a disk with room)" if "full" in problem
           or "quota" in problem else "make it writable (or set IRU_DUCKDB_PATH to a writable folder)")
    return StorageError(f"cannot write to {folder}: {problem}; {fix} and run again: the run stopped there, "
                        "nothing half-written was kept and the next run resumes")


def ensure_writable_folders(settings: Any) -> None:
    """Before any request: the folders a run writes (pipelines dir, Dagster home, exports),
    where they exist, accept a new file. Only creating one tells: root passes every
    permission check, but not a read-only mount."""
    import tempfile

    for folder in (settings.pipelines_dir, settings.dagster_home, settings.exports_dir):
        if not folder.is_dir():
            continue
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise ConfigError(f"{folder} is not writable ({exc.strerror}): make it writable, or set "
                              "IRU_DUCKDB_PATH to a file in a writable folder") from None
