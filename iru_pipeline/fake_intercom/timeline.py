"""Timestamps as a monotone function of record index, and workspace-local calendar days.

Generated records are ordered so that `updated_at` never decreases with the index. A search
or sort on `updated_at` over a million lazily generated contacts is then a binary search over
index ranges, not a scan. The function is piecewise linear between knots; flat stretches give
hundreds of records that share one second, and knot pairs straddle local midnight so
day-granular contact search (docs/intercom-api.md#search-semantics) has edge cases to get wrong.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from .hashing import mix64


class Timeline:
    """A monotone non-decreasing map from index in [0, size) to a Unix second."""

    def __init__(self, size: int, knots: Sequence[tuple[int, int]], jitter_key: int = 0) -> None:
        self.size = size
        cleaned: dict[int, int] = {}
        for index, ts in sorted(knots):
            if 0 <= index < max(size, 1):
                cleaned[index] = ts
        if not cleaned:
            cleaned[0] = 0
        indices = sorted(cleaned)
        times: list[int] = []
        running = None
        for i in indices:
            t = cleaned[i]
            running = t if running is None else max(running, t)
            times.append(running)
        self._idx = indices
        self._ts = times
        self._jitter_key = jitter_key

    def at(self, index: int) -> int:
        """The timestamp of record `index`."""
        idx, ts = self._idx, self._ts
        k = bisect.bisect_right(idx, index) - 1
        if k < 0:
            return ts[0]
        if k >= len(idx) - 1:
            return ts[-1]
        i0, i1, t0, t1 = idx[k], idx[k + 1], ts[k], ts[k + 1]
        span = i1 - i0
        dt = t1 - t0
        base = t0 + dt * (index - i0) // span
        step = dt // span
        if step > 1 and index != i0:
            # Jitter strictly inside the gap to the next record keeps the order monotone.
            base += mix64(self._jitter_key ^ index) % step
        return base

    def first_at_or_after(self, t: int) -> int:
        """The smallest index whose timestamp is >= t (size when there is none)."""
        lo, hi = 0, self.size
        while lo < hi:
            mid = (lo + hi) // 2
            if self.at(mid) < t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def first_after(self, t: int) -> int:
        """The smallest index whose timestamp is > t (size when there is none)."""
        return self.first_at_or_after(t + 1)


def build_timeline(
    size: int,
    start: int,
    end: int,
    *,
    tz: ZoneInfo,
    jitter_key: int,
    bursts: Sequence[tuple[float, int]] = (),
    midnight_points: Sequence[float] = (),
    old_fraction: float = 0.0,
    old_until: int | None = None,
) -> Timeline:
    """A timeline for `size` records from `start` to `end`.

    bursts: (position as a fraction of size, count) -- `count` records share one second.
    midnight_points: fractions where three records sit at local midnight - 1 s, midnight and
    midnight + 1 s.
    old_fraction/old_until: the first `old_fraction` of records end at `old_until`, so only a
    small share of history is very old.
    """
    if size <= 0:
        return Timeline(0, [(0, start)])
    last = size - 1
    knots: list[tuple[int, int]] = [(0, start), (last, end)]
    if old_until is not None and 0 < old_fraction < 1 and size > 10:
        knots.append((int(last * old_fraction), old_until))
    base = Timeline(size, knots)

    extra: list[tuple[int, int]] = []
    flat: list[tuple[int, int]] = []
    for fraction, count in bursts:
        count = max(1, min(count, size // 4))
        first = int(last * fraction)
        stop = min(last, first + count - 1)
        t = base.at(first)
        extra += [(first, t), (stop, t)]
        flat.append((first - 1, stop + 1))
    for fraction in midnight_points:
        at = int(last * fraction)
        if at + 2 > last or any(lo <= at + 2 and at <= hi for lo, hi in flat):
            continue  # never break up a same-second burst
        midnight = next_local_midnight(base.at(at), tz)
        extra += [(at, midnight - 1), (at + 1, midnight), (at + 2, midnight + 1)]
    return Timeline(size, knots + extra, jitter_key=jitter_key)


@lru_cache(maxsize=8)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day_start(ts: int, tz: ZoneInfo) -> int:
    """Unix second of local midnight starting the calendar day that contains `ts`."""
    d = datetime.fromtimestamp(ts, tz).date()
    return int(datetime.combine(d, time(0), tzinfo=tz).timestamp())


def next_local_midnight(ts: int, tz: ZoneInfo) -> int:
    """Unix second of the first local midnight strictly after `ts`'s day start."""
    d = datetime.fromtimestamp(ts, tz).date() + timedelta(days=1)
    return int(datetime.combine(d, time(0), tzinfo=tz).timestamp())


def local_time(day: date, hour: int, minute: int, second: int, tz: ZoneInfo) -> int:
    """Unix second of a local wall-clock time on `day`."""
    return int(datetime.combine(day, time(hour, minute, second), tzinfo=tz).timestamp())


def local_date(ts: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, tz).date()


def local_hour(ts: int, tz: ZoneInfo) -> int:
    return datetime.fromtimestamp(ts, tz).hour
