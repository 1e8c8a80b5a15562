"""Run a measured subprocess: wall time, exit status, its own peak RSS (from wait4) and the
peak RSS of its whole process tree (sampled: the pipeline's table workers are processes too)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_measured(cmd: list[str], *, log_path: Path, env: dict[str, str] | None = None,
                 timeout: float = 1800.0, cwd: Path = REPO_ROOT) -> dict[str, Any]:
    """Run `cmd` (stdout and stderr appended to `log_path`) in its own process group.

    `peak_rss_mb` is the `ru_maxrss` that wait4 reports for this child: the largest of the
    child and the descendants it waited for. `peak_tree_rss_mb` is the largest sum of the RSS
    of every process of its group, sampled every 0.2 s. On timeout the whole group is killed."""
    started = time.perf_counter()
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, env=env, cwd=str(cwd), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        tree = TreeRss(proc.pid)
        status, rusage, timed_out = _wait(proc, timeout)
        tree.stop()
    return {"exit_code": status, "wall_s": round(time.perf_counter() - started, 3),
            "peak_rss_mb": round(rusage.ru_maxrss / 1024, 1) if rusage.ru_maxrss else None,
            "peak_tree_rss_mb": tree.peak_mb or None,
            "cpu_s": round(rusage.ru_utime + rusage.ru_stime, 2), "timed_out": timed_out}


class TreeRss:
    """Samples the summed RSS of the processes of one process group (a session leader's)."""

    def __init__(self, pgid: int, every: float = 0.2) -> None:
        self.pgid = pgid
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, round(self.sample(), 1))
            self._stop.wait(every)

    def sample(self) -> float:
        total = 0.0
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.getpgid(int(name)) != self.pgid:
                    continue
                with open(f"/proc/{name}/statm") as fh:
                    total += int(fh.read().split()[1]) * self._page_mb
            except (OSError, ValueError, IndexError):
                continue
        return total

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _wait(proc: subprocess.Popen[Any], timeout: float) -> tuple[int, Any, bool]:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, rusage, False
        if time.monotonic() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, rusage, True
        time.sleep(0.05)


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def system_busy_s() -> float | None:
    """CPU seconds all processes of the machine have used since boot (from /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """CPU used by other processes (not the measured child, not the fake) during a scenario:
    on a 2-core machine, another engineer's test run shows up directly in the figures."""

    def __init__(self) -> None:
        self.busy0 = system_busy_s()
        self.t0 = time.perf_counter()

    def cores(self, *own_cpu_s: float | None) -> float | None:
        busy1 = system_busy_s()
        wall = time.perf_counter() - self.t0
        if self.busy0 is None or busy1 is None or wall <= 0:
            return None
        other = busy1 - self.busy0 - sum(c or 0.0 for c in own_cpu_s)
        return round(max(0.0, other) / wall, 2)
