"""The bundled fake Intercom in its own process, driven through its `/_fake/` control API.

In-process, the fake would compete with the pipeline for the GIL, so every benchmark
workspace is a separate `python -m iru_pipeline.fake_intercom` serving the `us` region on an
ephemeral loopback port, pre-encoded (`--warm`) so that cold-page generation does not
measure the fake instead of the pipeline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

CACHE_BYTES_PER_RECORD = 2600
"""Encoded contacts and conversations are about 2.2 KB each; a little headroom."""


class FakeProcess:
    def __init__(self, contacts: int, conversations: int, *, seed: int = 7, activity_logs: int = 500,
                 warm: bool = True, start_timeout: float = 600.0) -> None:
        self.contacts = contacts
        self.conversations = conversations
        self.seed = seed
        self.activity_logs = activity_logs
        self.warm = warm
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.token = ""
        self.startup_s = 0.0
        self._stderr: list[str] = []

    @property
    def cache_mb(self) -> int:
        return max(48, (max(self.contacts, self.conversations) * CACHE_BYTES_PER_RECORD >> 20) + 32)

    def start(self) -> FakeProcess:
        cmd = [sys.executable, "-m", "iru_pipeline.fake_intercom", "--port", "0", "--regions", "us",
               "--seed", str(self.seed), "--contacts", str(self.contacts),
               "--conversations", str(self.conversations), "--activity-logs", str(self.activity_logs),
               "--rate-limit", "0", "--cache-mb", str(self.cache_mb)]
        if self.warm:
            cmd.append("--warm")
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        line = _readline_with_timeout(self.proc, self.start_timeout)
        if not line:
            self.stop()
            raise RuntimeError(f"the fake did not start: {''.join(self._stderr)[-800:]}")
        region, self.base_url, self.token = line.split()
        self.startup_s = time.perf_counter() - started
        return self

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> FakeProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # control API ------------------------------------------------------------------------------
    def _control(self, method: str, name: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload or {}).encode() if method == "POST" else None
        req = urllib.request.Request(f"{self.base_url}/_fake/{name}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "stats")

    def reset_stats(self) -> None:
        self._control("POST", "reset_stats")

    def info(self) -> dict[str, Any]:
        return self._control("GET", "info")

    def configure(self, *, latency_ms: float, rate_limit: int) -> None:
        """Latency per API request and requests per 10-second window (0 = off)."""
        self._control("POST", "faults", {"latency_ms": float(latency_ms)})
        self._control("POST", "rate_limit", {"limit": int(rate_limit)})

    def rss_mb(self) -> float | None:
        if self.proc is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def cpu_s(self) -> float | None:
        """User + system CPU seconds the fake has used so far (from /proc)."""
        if self.proc is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None


def _readline_with_timeout(proc: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        result.append(proc.stdout.readline())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    return result[0].strip() if result else ""
