"""Call counters per endpoint and per resource, for run manifests and benchmarks.

Every thread of a workspace's client counts into the same book, under one lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class EndpointStats:
    """Counters of one endpoint, for run manifests and benchmarks."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    min_remaining: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "min_remaining": self.min_remaining,
        }


class Counters:
    """Updates an endpoint's and a resource's counters together, under the book's lock."""

    def __init__(self, targets: list[EndpointStats], lock: threading.Lock) -> None:
        self._targets, self._lock = targets, lock

    def add(self, name: str) -> None:
        with self._lock:
            for t in self._targets:
                setattr(t, name, getattr(t, name) + 1)

    def low_water(self, remaining: int) -> None:
        with self._lock:
            for t in self._targets:
                t.min_remaining = remaining if t.min_remaining is None else min(t.min_remaining, remaining)


class StatsBook:
    """The counters of one client: per endpoint (`"GET /contacts"`) and per resource name."""

    def __init__(self) -> None:
        self._by_endpoint: dict[str, EndpointStats] = {}
        self._by_resource: dict[str, EndpointStats] = {}
        self._lock = threading.Lock()

    def for_call(self, endpoint: str, resource: str | None = None) -> Counters:
        with self._lock:
            targets = [self._by_endpoint.setdefault(endpoint, EndpointStats())]
            if resource:
                targets.append(self._by_resource.setdefault(resource, EndpointStats()))
        return Counters(targets, self._lock)

    def by_endpoint(self) -> dict[str, dict[str, int | None]]:
        with self._lock:
            return {k: v.as_dict() for k, v in self._by_endpoint.items()}

    def by_resource(self) -> dict[str, dict[str, int | None]]:
        with self._lock:
            return {k: v.as_dict() for k, v in self._by_resource.items()}

    def total_calls(self) -> int:
        with self._lock:
            return sum(s.calls for s in self._by_endpoint.values())
