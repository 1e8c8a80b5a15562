"""Pacing by Intercom's rate-limit headers, and the retry policy.

Intercom counts calls in 10-second windows and reports the window on every authenticated
response: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (unix seconds
when the window refills) (docs/intercom-api.md#rate-limits). One `RateLimiter` is shared by every
thread that calls the same workspace, so concurrent windows never earn a 429 storm: a
request is let through only while the window still has room for it after the requests
already in flight; otherwise it waits for the reset.

The limiter also decides how many requests may be in flight at once. A chain of search pages
is bound by round-trip time, so using the whole allowance takes, by Little's law, about
(allowed calls per second) x (response time) requests in flight: 166 calls/s at 250 ms is 42,
where a fixed 16 gave 64 calls/s. `in_flight_target()` computes that from `X-RateLimit-Limit`
and the measured response times (with headroom), never below `START_IN_FLIGHT` and never
above `max_in_flight`; `acquire` holds a request back while that many are already out.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

WINDOW_SECONDS = 10.0

MAX_IN_FLIGHT = 64
"""Default upper bound of requests in flight per workspace. Intercom allows 166 calls/s per
app; at 400 ms, the slow end of its answer times, that takes 67 in flight, so 64 keeps 96% of
the allowance there. It is also the memory bound: each request in flight holds at most one
response body (a contacts page of 150 is about 330 KB), so 64 hold about 21 MB."""
START_IN_FLIGHT = 16
"""Requests in flight before anything is measured, and the floor: what a fixed 16 reached at
50 ms is never given up."""
IN_FLIGHT_HEADROOM = 1.25
"""Response times vary, and a window's allowance is all there at its start: asking for a
quarter more than Little's law costs only a wait for the reset, asking for less leaves calls
unused."""
LATENCY_SAMPLES = 32
"""The response time used is the median of this many latest ones: it follows a change within
a few dozen requests, and one cold connection or slow page does not move it."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying. Backoff is capped exponential with full jitter."""

    max_retries: int = 6
    """Retries of 5xx, timeouts, dropped connections, truncated or non-JSON bodies."""
    max_rate_limit_waits: int = 12
    """429 answers waited out before giving up."""
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_wait: float = 65.0
    """Longest single wait honoured from Retry-After / X-RateLimit-Reset."""

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * (2**attempt))
        return (rng or random).uniform(ceiling / 2, ceiling)


class RateLimiter:
    """Shared pacing state of one workspace's rate-limit window."""

    def __init__(
        self,
        reserve: int = 0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._reserve = reserve
        self.max_in_flight = max(1, max_in_flight)
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self._seen_at = 0.0
        self._in_flight = 0
        self._limit: int | None = None
        self._latency: float | None = None
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._started = threading.local()
        self.peak_in_flight = 0
        self.waits = 0
        self.waited_seconds = 0.0
        self.paused_seconds = 0.0

    def acquire(self) -> None:
        """Block until the current window has room for one more request."""
        with self._cond:
            while True:
                now = self._clock()
                # The window refilled at its reset, or at the latest one window after we saw
                # it: the reset is in the server's clock, which may run ahead of ours.
                if self._reset_at is not None and (now >= self._reset_at or now - self._seen_at > WINDOW_SECONDS + 1):
                    self._remaining, self._reset_at = None, None
                if self._in_flight >= self._target():
                    self._cond.wait(timeout=0.5)  # a release notifies; the timeout re-checks the window
                    continue
                if self._remaining is None or self._remaining - self._in_flight > self._reserve:
                    self._in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                    self._started.at = time.monotonic()
                    return
                # Cap by one window: the server's clock may run ahead of ours.
                until = min(self._reset_at, self._seen_at + WINDOW_SECONDS + 1.01) if self._reset_at else now + 0.5
                delay = max(until - now, 0.05)
                self.waits += 1
                self.waited_seconds += delay
                self._cond.wait(timeout=delay)

    def release(self, headers: Mapping[str, str] | None) -> None:
        """Record a response's window (or none, for errors without headers)."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            target, reset_before = self._target(), self._reset_at
            self._measure(headers)
            window = parse_window(headers) if headers is not None else None
            if window is not None:
                remaining, reset_at = window
                if self._reset_at is None or reset_at > self._reset_at:
                    self._remaining, self._reset_at = remaining, reset_at
                    self._seen_at = self._clock()
                elif reset_at == self._reset_at:
                    # Responses of one window can arrive out of order: the lowest count is newest.
                    self._remaining = min(self._remaining if self._remaining is not None else remaining, remaining)
            # One request ended, so one waiter may take its place; all may go only on a new
            # window or a higher target. Waking every idle window thread on every answer took
            # CPU from the loader.
            if self._target() > target or self._reset_at != reset_before:
                self._cond.notify_all()
            else:
                self._cond.notify()

    def in_flight_target(self) -> int:
        """How many requests should be in flight to use the whole allowance (see the module)."""
        with self._cond:
            return self._target()

    def _target(self) -> int:
        floor = min(START_IN_FLIGHT, self.max_in_flight)
        if self._limit is None or self._latency is None:
            return floor
        wanted = math.ceil(self._limit / WINDOW_SECONDS * self._latency * IN_FLIGHT_HEADROOM)
        return max(floor, min(self.max_in_flight, wanted))

    def _measure(self, headers: Mapping[str, str] | None) -> None:
        """Record the response time of the calling thread's request and the window's size."""
        started = getattr(self._started, "at", None)
        self._started.at = None
        if started is None or headers is None:
            return  # a transport error's time says nothing about the server's answers
        self._latencies.append(time.monotonic() - started)
        self._latency = statistics.median(self._latencies)
        try:
            limit = int(headers["x-ratelimit-limit"])
        except (KeyError, ValueError, TypeError):
            return
        if limit > 0:
            self._limit = limit

    def pause(self, seconds: float) -> None:
        """After a 429: no request of this workspace for `seconds`, the wait that 429 announced.

        It replaces what the limiter knew of the window rather than extending it: a 429 that
        says "retry in 1 s" while an earlier response named a reset 10 s away is waited out
        in 1 s (taking the later of the two made a run under steady 429s wait up to ten times
        longer than announced). Responses after the pause report the window afresh. The
        calling thread sleeps here, so the wait is counted in `paused_seconds`."""
        with self._cond:
            now = self._clock()
            self._remaining = 0
            self._reset_at = now + seconds
            self._seen_at = now
            self.paused_seconds += seconds
        self._sleep(seconds)


def parse_window(headers: Mapping[str, str]) -> tuple[int, float] | None:
    try:
        remaining = int(headers["x-ratelimit-remaining"])
        reset_at = float(headers["x-ratelimit-reset"])
    except (KeyError, ValueError, TypeError):
        return None
    return remaining, reset_at


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait after a 429: `Retry-After` first, else until `X-RateLimit-Reset`."""
    raw = headers.get("retry-after")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
            except (TypeError, ValueError):
                pass
    window = parse_window(headers)
    if window is not None:
        # At most one window: the reset is in the server's clock, which may run ahead of ours.
        return min(max(0.0, window[1] - now), WINDOW_SECONDS + 1)
    return None
