"""One workspace as its region's server hosts it: its token, faults, rate limit and statistics.

Intercom limits requests per app and workspace (docs/intercom-api.md#rate-limits), so every
hosted workspace has its own window counter, its own fault configuration and counters, and
its own request statistics; the region's server only picks the workspace by Bearer token.

Per API request, in order: latency, dropped connection, auth (401 without rate-limit
headers, docs/intercom-api.md#rate-limits), rate limit (real window counter, then injected
429s), injected 5xx, forbidden resources, the endpoint itself, then body-level transport
faults (truncated or slow bodies).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from .api import JSON, ApiError, RegionApi, Request, RequestIds, Response, error_body
from .constants import API_VERSION
from .faults import FaultConfig, FaultState, RateLimiter, RegionStats, path_matches
from .workspace import Workspace

_HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")


@dataclasses.dataclass
class Outcome:
    """What to send: a response, or a connection fault."""

    response: Response | None
    drop: bool = False
    truncate: bool = False
    slow_seconds: float = 0.0


class HostedWorkspace:
    """One workspace served by a region's host: the token it accepts and how it answers."""

    def __init__(self, workspace: Workspace, *, key: str, token: str, faults: FaultConfig, rate_limit: int,
                 clock: Callable[[], float], secret: bytes, request_ids: RequestIds,
                 activity_logs_next_style: str, base_url: Callable[[], str],
                 page_cache_bytes: int = 16 << 20) -> None:
        self.workspace = workspace
        self.key = key
        self.token = token
        self.faults = faults
        self.fault_state = FaultState(faults)
        self.limiter = RateLimiter(rate_limit, clock)
        self.stats = RegionStats()
        self.clock = clock
        self.request_ids = request_ids
        self._stats_lock = threading.Lock()
        self._in_flight = 0
        self.api = RegionApi(workspace, faults, secret=secret, base_url=base_url,
                             activity_logs_next_style=activity_logs_next_style, page_cache_bytes=page_cache_bytes)

    # statistics -------------------------------------------------------------------------------
    def _count(self, route: str) -> None:
        with self._stats_lock:
            self.stats.total_requests += 1
            self.stats.by_route[route] += 1

    def _record(self, status: int, fault: str | None = None) -> None:
        with self._stats_lock:
            self.stats.by_status[status] += 1
            if status == 429:
                self.stats.rate_limited += 1
            if status >= 500:
                self.stats.server_errors += 1
            if fault:
                self.stats.faults[fault] += 1

    def _fault(self, kind: str) -> None:
        with self._stats_lock:
            self.stats.faults[kind] += 1

    def reset_stats(self) -> None:
        with self._stats_lock:
            self.stats = RegionStats()

    def stats_snapshot(self) -> dict[str, Any]:
        with self._stats_lock:
            snap = self.stats.snapshot()
        snap["region"] = self.workspace.region
        snap["workspace"] = self.key
        snap["workspace_id"] = self.workspace.workspace_id
        return snap

    def reset_faults(self) -> None:
        self.faults.reset()
        self.fault_state.reset_counters()

    # API requests -----------------------------------------------------------------------------
    def _error(self, status: int, code: str, message: str | None, *, headers: list[tuple[str, str]] | None = None,
               with_request_id: bool = True) -> Response:
        rid = self.request_ids.next() if with_request_id else None
        return Response(status, error_body(code, message, rid), JSON, list(headers or []))

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: bytes, headers: Any) -> Outcome:
        """Answer one API request addressed to this workspace (or carrying no known token)."""
        with self._stats_lock:
            self._in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self._in_flight)
        try:
            return self._answer(method, path, query, body, headers)
        finally:
            with self._stats_lock:
                self._in_flight -= 1

    def _answer(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
                headers: Any) -> Outcome:
        cfg, state = self.faults, self.fault_state
        self._count(self.api.route_name(method, path))
        if cfg.latency_ms > 0:
            time.sleep(cfg.latency_ms / 1000.0)
        n = state.next_matching(path)
        if n is not None and cfg.drop_every > 0 and n % cfg.drop_every == 0:
            self._fault("dropped_connection")
            return Outcome(None, drop=True)

        # Auth first: a bad token gets 401 without X-RateLimit headers (docs/intercom-api.md#rate-limits).
        auth = headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.token:
            return self._outcome(self._error(401, "unauthorized", "Access Token Invalid"))
        with state.lock:
            state.authenticated_requests += 1
            served = state.authenticated_requests
        if cfg.revoke_token_after is not None and served > cfg.revoke_token_after:
            return self._outcome(self._error(401, "token_revoked", "Token revoked"), "token_revoked")

        rate = self.limiter.hit()
        rate_headers = rate.headers
        if rate.limited:
            return self._outcome(self._rate_limited(rate.reset_at, rate_headers, retry_after=True))
        if n is not None:
            injected = self._injected_429(n, rate.reset_at)
            if injected:
                limited_headers = [(k, "0" if k == "X-RateLimit-Remaining" else v) for k, v in rate_headers]
                return self._outcome(self._rate_limited(rate.reset_at, limited_headers, retry_after=cfg.retry_after,
                                                       retry_after_seconds=cfg.retry_after_seconds),
                                     "rate_limit_429")
            status = self._injected_5xx(n)
            if status:
                return self._outcome(self._server_error(status, rate_headers), f"server_error_{status}")

        if path_matches(path, cfg.forbidden_paths):
            response = self._forbidden(rate_headers)
            return self._outcome(response, f"forbidden_{cfg.forbidden_kind}")

        version = headers.get("Intercom-Version") or API_VERSION
        try:
            response = self.api.dispatch(Request(method, path, query, body, version.strip()))
        except ApiError as exc:
            response = self._error(exc.status, exc.code, exc.message, headers=exc.headers,
                                   with_request_id=exc.with_request_id)
        response.headers = rate_headers + response.headers
        outcome = self._outcome(response)
        if n is not None and response.status == 200:
            if cfg.truncate_every > 0 and n % cfg.truncate_every == 0:
                outcome.truncate = True
                self._fault("truncated_body")
            elif cfg.slow_body_every > 0 and n % cfg.slow_body_every == 0:
                outcome.slow_seconds = cfg.slow_body_delay_ms / 1000.0
                self._fault("slow_body")
        return outcome

    def _outcome(self, response: Response, fault: str | None = None) -> Outcome:
        self._record(response.status, fault)
        return Outcome(response)

    def _injected_429(self, n: int, reset_at: int) -> bool:
        cfg, state = self.faults, self.fault_state
        now = self.clock()
        hit = False
        if state.hold_until > now:
            hit = True
        elif cfg.rate_429_every > 0 and n % cfg.rate_429_every == 0:
            hit = True
        elif state.take_burst():
            hit = True
        if hit and cfg.hold_429_until_reset and state.hold_until <= now:
            state.hold_until = reset_at
        return hit

    def _injected_5xx(self, n: int) -> int:
        cfg, state = self.faults, self.fault_state
        statuses = cfg.error_statuses or (500,)
        if cfg.error_every > 0 and n % cfg.error_every == 0:
            return statuses[(n // cfg.error_every - 1) % len(statuses)]
        if cfg.error_rate > 0:
            r = state.random()
            if r < cfg.error_rate:
                return statuses[int(r / cfg.error_rate * len(statuses)) % len(statuses)]
        return 0

    def _rate_limited(self, reset_at: int, headers: list[tuple[str, str]], *, retry_after: bool,
                      retry_after_seconds: int | None = None) -> Response:
        limit = self.limiter.limit if self.limiter.limit > 0 else 1000
        extra = list(headers)
        if retry_after:
            seconds = (retry_after_seconds if retry_after_seconds is not None
                       else self.limiter.seconds_to_reset(reset_at))
            extra.append(("Retry-After", str(seconds)))
        return self._error(429, "rate_limit_exceeded", f"Exceeded rate limit of {limit} in 10_seconds", headers=extra)

    def _server_error(self, status: int, headers: list[tuple[str, str]]) -> Response:
        if status == 502:
            return Response(502, _HTML_502, "text/html", list(headers))
        if status == 503:
            return self._error(503, "service_unavailable", "Service Unavailable", headers=headers,
                with_request_id=False)
        if status == 504:
            return self._error(504, "request_timeout", "The request timed out", headers=headers)
        return self._error(status, "server_error", "Server Error", headers=headers)

    def _forbidden(self, headers: list[tuple[str, str]]) -> Response:
        kind = self.faults.forbidden_kind
        if kind == "plan":
            return self._error(403, "api_plan_restricted", "Active subscription needed.", headers=headers)
        if kind == "scope_401":
            return self._error(401, "token_unauthorized", "Not authorized to access resource")
        return self._error(403, "forbidden",
                           "You do not have the required scope (read_conversations) to access this resource",
                           headers=headers)
