"""Pacing by Intercom's rate-limit headers, and the retry policy.

Intercom counts calls in 10-second windows and reports the window on every authenticated
response: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (unix seconds
when the window refills) (intercom-api-notes §7). One `RateLimiter` is shared by every
thread that calls the same workspace, so concurrent windows never earn a 429 storm: a
request is let through only while the window still has room for it after the requests
already in flight; otherwise it waits for the reset.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

WINDOW_SECONDS = 10.0


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
    ) -> None:
        self._reserve = reserve
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self._seen_at = 0.0
        self._in_flight = 0
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
                if self._remaining is None or self._remaining - self._in_flight > self._reserve:
                    self._in_flight += 1
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
            window = parse_window(headers) if headers is not None else None
            if window is not None:
                remaining, reset_at = window
                if self._reset_at is None or reset_at > self._reset_at:
                    self._remaining, self._reset_at = remaining, reset_at
                    self._seen_at = self._clock()
                elif reset_at == self._reset_at:
                    # Responses of one window can arrive out of order: the lowest count is newest.
                    self._remaining = min(self._remaining if self._remaining is not None else remaining, remaining)
            self._cond.notify_all()

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
