"""Where an extract's time goes: every request's start and end at the client.

The worker wraps the client's `RateLimiter` (each request takes a slot with `acquire` and
gives it back with `release`) and records, per request, when it asked for a slot, when it
got one, when it ended and which thread sent it. Window threads are named
`intercom-window-*`, so the extract splits into three phases without looking inside the
window planner:

- before the windows: `/me`, the first page and the count probes, one round trip each;
- the windows: how many requests were in flight on average, and for how long at most
  `LOW_IN_FLIGHT` (a few long window chains paging alone at the end);
- after the windows: requests sent once every window ended (deleted conversations, which
  are paged one after another).

The response time measured here (slot to release) includes the client's own time to read
the body under the GIL; the fake's configured latency is its floor.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

LOW_IN_FLIGHT = 4
"""At most this many requests in flight during the windows counts as the tail."""
WINDOW_THREAD = "intercom-window"


class RequestTimeline:
    def __init__(self, limiter: Any) -> None:
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.requests: list[tuple[float, float, float, bool]] = []  # asked, got slot, ended, window thread
        acquire, release = limiter.acquire, limiter.release

        def timed_acquire() -> None:
            asked = time.perf_counter()
            acquire()
            self._local.started = (asked, time.perf_counter())

        def timed_release(headers: Any) -> None:
            release(headers)
            started = getattr(self._local, "started", None)
            self._local.started = None
            if started is not None:
                window = threading.current_thread().name.startswith(WINDOW_THREAD)
                with self._lock:
                    self.requests.append((started[0], started[1], time.perf_counter(), window))

        limiter.acquire, limiter.release = timed_acquire, timed_release

    def start(self) -> None:
        self.t0 = time.perf_counter()
        with self._lock:
            self.requests.clear()

    def summary(self, extract_s: float) -> dict[str, Any]:
        with self._lock:
            reqs = sorted(self.requests)
        if not reqs:
            return {}
        t0 = self.t0
        rtts = sorted(end - got for _, got, end, _ in reqs)
        in_window = [r for r in reqs if r[3]]
        out: dict[str, Any] = {
            "requests": len(reqs),
            "rtt_ms_median": round(statistics.median(rtts) * 1000),
            "rtt_ms_p90": round(rtts[int(0.9 * (len(rtts) - 1))] * 1000),
            "slot_wait_s": round(sum(got - asked for asked, got, _, _ in reqs), 2),
        }
        if not in_window:
            out["before_windows_s"] = None
            return out
        w_start = min(got for _, got, _, _ in in_window)
        w_end = max(end for _, _, end, _ in in_window)
        span = max(w_end - w_start, 1e-9)
        busy = sum(end - got for _, got, end, _ in in_window)
        out.update({
            "before_windows_s": round(w_start - t0, 2),
            "before_windows_calls": sum(1 for r in reqs if r[2] <= w_start),
            "windows_s": round(span, 2),
            "windows_calls": len(in_window),
            "windows_calls_per_s": round(len(in_window) / span, 1),
            "windows_mean_in_flight": round(busy / span, 1),
            "windows_low_in_flight_s": round(_time_at_most(in_window, w_start, w_end, LOW_IN_FLIGHT), 2),
            "after_windows_s": round(max(0.0, extract_s - (w_end - t0)), 2),
            "after_windows_calls": sum(1 for r in reqs if r[1] >= w_end),
        })
        return out


def _time_at_most(reqs: list[tuple[float, float, float, bool]], lo: float, hi: float, n: int) -> float:
    """Seconds within [lo, hi] during which at most `n` of `reqs` were in flight."""
    edges = sorted([(got, 1) for _, got, _, _ in reqs] + [(end, -1) for _, _, end, _ in reqs])
    level, last, total = 0, lo, 0.0
    for t, step in edges:
        t = min(max(t, lo), hi)
        if level <= n:
            total += t - last
        level += step
        last = t
    if level <= n:
        total += hi - last
    return total


def describe(t: dict[str, Any], normalize_load_s: float, latency_ms: float) -> str:
    """One line for the scenario's note."""
    if not t or t.get("before_windows_s") is None:
        return ""
    return (f"time: {t['before_windows_s']:.1f} s before the windows ({t['before_windows_calls']} calls), "
            f"windows {t['windows_s']:.1f} s at {t['windows_calls_per_s']:g} calls/s, mean "
            f"{t['windows_mean_in_flight']:g} in flight, {t['windows_low_in_flight_s']:.1f} s of it with "
            f"<= {LOW_IN_FLIGHT} in flight; {t['after_windows_s']:.1f} s after ({t['after_windows_calls']} calls); "
            f"normalise+load {normalize_load_s:.1f} s; response {t['rtt_ms_median']} ms median at the client "
            f"({latency_ms:g} ms at the fake), {t['slot_wait_s']:.1f} s waiting for a slot in all")
