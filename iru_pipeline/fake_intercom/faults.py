"""Fault injection, rate limiting and request statistics for one served workspace.

Faults are deterministic where they can be: "every Nth request" counts requests that match
`fault_paths`, and random rates draw from an RNG seeded by `FaultConfig.seed`.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .constants import RATE_LIMIT_WINDOW_SECONDS

MISSING = "<missing>"
"""A `malformed_cursor_values` value that removes the field from the record."""


@dataclass
class FaultConfig:
    """What a workspace's host should get wrong for it. All defaults mean "behave".

    Path fields take request paths; a path also covers everything under it
    (`"/conversations"` covers `/conversations/search` and `/conversations/123`) unless it
    ends in `$` (`"/admins$"`: that path only).
    """

    latency_ms: float = 0.0
    """Sleep this long before answering every API request."""

    rate_429_every: int = 0
    """Answer every Nth matching request with 429 rate_limit_exceeded."""
    rate_429_burst: int = 0
    """Answer the next N matching requests with 429 (counts down as it is used)."""
    retry_after: bool = True
    """Send a Retry-After header (seconds to the window reset) with injected 429s."""
    retry_after_seconds: int | None = None
    """The Retry-After of injected 429s (None: the seconds to the window reset, which
    X-RateLimit-Reset also announces)."""
    hold_429_until_reset: bool = False
    """After an injected 429, keep answering 429 until the rate-limit window resets."""

    error_rate: float = 0.0
    """Fraction (0..1) of matching requests answered with a 5xx from `error_statuses`."""
    error_every: int = 0
    """Answer every Nth matching request with a 5xx (cycling through `error_statuses`)."""
    error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    """502 comes with an HTML body, as a load balancer sends it."""

    truncate_every: int = 0
    """Every Nth matching response: send headers and half the body, then close."""
    drop_every: int = 0
    """Every Nth matching request: close the connection without answering."""
    slow_body_every: int = 0
    """Every Nth matching response: send half the body, sleep, send the rest."""
    slow_body_delay_ms: float = 500.0

    forbidden_paths: tuple[str, ...] = ()
    """Paths answered with 403 (or 401, see `forbidden_kind`)."""
    forbidden_kind: str = "scope"
    """"scope" (403 forbidden, missing read scope), "plan" (403 api_plan_restricted) or
    "scope_401" (401 token_unauthorized, how some missing scopes surface, docs/intercom-api.md#errors)."""

    revoke_token_after: int | None = None
    """After this many authenticated requests the token is revoked: 401 from then on."""

    repeat_cursor_paths: tuple[str, ...] = ()
    """Cursor listings under these paths keep returning the cursor they were given."""
    malformed_paths: tuple[str, ...] = ()
    """Successful responses under these paths are mangled (see `malformed_kind`)."""
    malformed_kind: str = "wrong_shape"
    """"wrong_shape" (valid JSON, items under an unexpected key) or "not_json" (200 with HTML)."""
    fresh_cursor_paths: tuple[str, ...] = ()
    """Listings under these paths never end: every page comes with a new, never-seen next
    cursor (search and cursor lists, activity logs' `next`), and `/conversations/deleted`
    answers every page number with its first page and a `next` link."""
    malformed_cursor_values: tuple[tuple[str, Any], ...] = ()
    """(record id, value) pairs: that record is served with its cursor field (`updated_at` of
    contacts and conversations, `created_at` of activity logs, `deleted_at` of deleted
    conversations) replaced by the value, or without the field for MISSING. The store keeps
    the true value, so searches still filter and sort by it."""
    total_count_offset: int = 0
    """Added to every `total_count` (a lying count)."""
    search_index_lag_seconds: float = 0.0
    """Records created or updated in the last N seconds are invisible to search
    (docs/intercom-api.md#search-semantics)."""

    fault_paths: tuple[str, ...] = ()
    """Restrict 429/5xx/transport faults to these paths (empty: every API path)."""
    seed: int = 0
    """Seeds the RNG behind `error_rate`."""

    def update(self, **changes: Any) -> FaultConfig:
        """Change some fields in place (unknown names raise); returns self."""
        names = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise ValueError(f"unknown fault setting {name!r}; known: {', '.join(sorted(names))}")
            if isinstance(getattr(self, name), tuple) and isinstance(value, (list, str)):
                value = (value,) if isinstance(value, str) else tuple(value)
            setattr(self, name, value)
        return self

    def malformed_cursors(self) -> dict[str, Any]:
        """`malformed_cursor_values` by record id."""
        return {str(pair[0]): pair[1] for pair in self.malformed_cursor_values}

    def reset(self) -> FaultConfig:
        """Back to no faults."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, f.default)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def copy_from(self, other: FaultConfig) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))


def path_matches(path: str, patterns: tuple[str, ...]) -> bool:
    """True when `path` equals a pattern or lies under it; a pattern ending in `$` matches
    that path only (`"/admins$"` leaves `/admins/activity_logs` alone)."""
    for pattern in patterns:
        if pattern.endswith("$"):
            if path == (pattern[:-1].rstrip("/") or "/"):
                return True
            continue
        p = pattern.rstrip("/") or "/"
        if path == p or path.startswith(p + "/"):
            return True
    return False


@dataclass
class RateDecision:
    headers: list[tuple[str, str]]
    limited: bool
    reset_at: int


class RateLimiter:
    """Intercom's per-10-second window counter (docs/intercom-api.md#rate-limits). limit 0 switches it off."""

    def __init__(self, limit: int, clock: Callable[[], float], window_seconds: int = RATE_LIMIT_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        """Intercom's windows are 10 s; tests shorten them to keep waits short."""
        self._clock = clock
        self._window = -1
        self._count = 0
        self._lock = threading.Lock()

    def window_reset(self) -> int:
        now, w = self._clock(), self.window_seconds
        return int(now // w * w) + w

    def hit(self) -> RateDecision:
        """Count one authenticated request and return its X-RateLimit headers."""
        now = self._clock()
        window = int(now // self.window_seconds)
        reset_at = (window + 1) * self.window_seconds
        if self.limit <= 0:
            return RateDecision([], False, reset_at)
        with self._lock:
            if window != self._window:
                self._window, self._count = window, 0
            self._count += 1
            count = self._count
        headers = [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(max(0, self.limit - count))),
            ("X-RateLimit-Reset", str(reset_at)),
        ]
        return RateDecision(headers, count > self.limit, reset_at)

    def seconds_to_reset(self, reset_at: int) -> int:
        return max(1, math.ceil(reset_at - self._clock()))


@dataclass
class RegionStats:
    """Counters of one workspace's API traffic (control requests are not counted)."""

    total_requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    server_errors: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    peak_in_flight: int = 0
    """Most API requests being answered at once (latency included)."""

    def snapshot(self) -> dict[str, Any]:
        return {
            "total_requests": self.total_requests,
            "by_route": dict(self.by_route),
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "rate_limited": self.rate_limited,
            "server_errors": self.server_errors,
            "faults": dict(self.faults),
            "peak_in_flight": self.peak_in_flight,
        }


class FaultState:
    """Per-workspace counters and RNG behind a FaultConfig."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.matching_requests = 0
        self.authenticated_requests = 0
        self.hold_until = 0.0
        self._rng = random.Random(config.seed)
        self._rng_seed = config.seed

    def next_matching(self, path: str) -> int | None:
        """Count a request against `fault_paths`; its 1-based number, or None if not covered."""
        cfg = self.config
        if cfg.fault_paths and not path_matches(path, cfg.fault_paths):
            return None
        with self.lock:
            self.matching_requests += 1
            return self.matching_requests

    def random(self) -> float:
        with self.lock:
            if self._rng_seed != self.config.seed:
                self._rng = random.Random(self.config.seed)
                self._rng_seed = self.config.seed
            return self._rng.random()

    def take_burst(self) -> bool:
        with self.lock:
            if self.config.rate_429_burst > 0:
                self.config.rate_429_burst -= 1
                return True
            return False

    def reset_counters(self) -> None:
        with self.lock:
            self.matching_requests = 0
            self.authenticated_requests = 0
            self.hold_until = 0.0
