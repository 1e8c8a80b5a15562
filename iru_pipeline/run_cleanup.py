"""Clean-up after `iru-pipeline` processes that died mid-run: the tags that name a run's
process, and `reap_dead_runs`, which fails the runs whose process is gone (docs/dagster.md,
Runs whose process died). Running itself is `runner.py`."""

from __future__ import annotations

import os
import socket

import dagster as dg

HOST_TAG, PID_TAG, PID_STARTED_TAG = "iru/host", "iru/pid", "iru/pid_started"
PROCESS_TAGS = (HOST_TAG, PID_TAG, PID_STARTED_TAG)
"""Tags of an in-process run naming the process that executes it (see `reap_dead_runs`)."""
_LIVE_STATUSES = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                  dg.DagsterRunStatus.CANCELING]


def _process_started(pid: int) -> str:
    """When a process started (clock ticks since boot, /proc/<pid>/stat field 22), so a pid
    reused by another process is not mistaken for the run's; "" where /proc is unavailable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def process_tags() -> dict[str, str]:
    pid = os.getpid()
    return dict(zip(PROCESS_TAGS, (socket.gethostname(), str(pid), _process_started(pid)), strict=True))


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    return not started or _process_started(pid) in ("", started)


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the in-process runs whose process died (SIGKILL, OOM, power loss) and give
    back their `duckdb_writer` pool slots.

    Dagster frees a run's pool slots when the run ends; a killed process never ends its run,
    so the slot stays taken and every later run waits for it forever. Dagster's run monitoring
    only covers runs started by a run launcher, not `execute_in_process`, hence this check:
    only runs tagged by this host's `iru-pipeline` processes are touched."""
    reaped = []
    host = socket.gethostname()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_LIVE_STATUSES, tags={HOST_TAG: host})):
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if pid <= 0 or pid == os.getpid() or _alive(pid, run.tags.get(PID_STARTED_TAG, "")):
            continue
        instance.report_run_failed(
            run, message=f"process {pid} ended without finishing this run (killed?); marked failed by a later run")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped
