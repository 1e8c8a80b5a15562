"""HTTP layer: one ThreadingHTTPServer per region on loopback, HTTP/1.1 keep-alive.

Per API request, in order: latency, dropped connection, auth (401 without rate-limit
headers, docs/intercom-api.md#rate-limits), rate limit (real window counter, then injected 429s), injected 5xx,
forbidden resources, the endpoint itself, then body-level transport faults (truncated or
slow bodies). Requests under `/_fake/` are the control API: no token, not rate limited,
not counted.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .api import JSON, ApiError, RegionApi, Request, RequestIds, Response, error_body
from .constants import API_VERSION
from .encoding import encode
from .faults import FaultConfig, FaultState, RateLimiter, RegionStats, path_matches
from .workspace import Workspace

_HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")

MUTATIONS = (
    "update_contacts", "create_contacts", "delete_contacts", "merge_contact",
    "update_conversations", "create_conversations", "delete_conversations",
    "add_activity_logs", "add_admin", "remove_admin", "set_team_members",
)


@dataclasses.dataclass
class Outcome:
    """What to send: a response, or a connection fault."""

    response: Response | None
    drop: bool = False
    truncate: bool = False
    slow_seconds: float = 0.0


class RegionServer:
    """The fake Intercom host of one region."""

    def __init__(self, workspace: Workspace, *, token: str, faults: FaultConfig, rate_limit: int,
                 clock: Callable[[], float], secret: bytes, activity_logs_next_style: str,
                 advance_clock: Callable[[float], None] | None = None, host: str = "127.0.0.1",
                 link_base_url: str | None = None) -> None:
        self.workspace = workspace
        self.region = workspace.region
        self.token = token
        self.faults = faults
        self.fault_state = FaultState(faults)
        self.limiter = RateLimiter(rate_limit, clock)
        self.stats = RegionStats()
        self._stats_lock = threading.Lock()
        self._in_flight = 0
        self.clock = clock
        self.host = host
        self.port = 0
        self._advance_clock = advance_clock
        self.request_ids = RequestIds(workspace.seed * 31 + workspace.profile.id_salt)
        # `pages.next` URLs name this server, or `link_base_url` (e.g. Intercom's public host,
        # as a server behind a proxy would).
        links = (lambda: link_base_url.rstrip("/")) if link_base_url else self.base_url
        self.api = RegionApi(workspace, faults, secret=secret, base_url=links,
                             activity_logs_next_style=activity_logs_next_style)
        self.httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle --------------------------------------------------------------------------------
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, port: int = 0) -> None:
        httpd = _Server((self.host, port), _Handler)
        httpd.region_server = self
        self.httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-intercom-{self.region}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.close_open_connections()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.httpd = None

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
        snap["region"] = self.region
        return snap

    # API requests -----------------------------------------------------------------------------
    def _error(self, status: int, code: str, message: str | None, *, headers: list[tuple[str, str]] | None = None,
               with_request_id: bool = True) -> Response:
        rid = self.request_ids.next() if with_request_id else None
        return Response(status, error_body(code, message, rid), JSON, list(headers or []))

    def handle_api(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
                   headers: Any) -> Outcome:
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

    # control API ------------------------------------------------------------------------------
    def handle_control(self, method: str, path: str, body: bytes) -> Response:
        """`/_fake/...`: stats, faults, mutations and info for a fake in another process."""
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return Response(400, encode({"error": "body must be JSON"}))
        if not isinstance(payload, dict):
            return Response(400, encode({"error": "body must be a JSON object"}))
        name = path[len("/_fake/"):].strip("/")
        try:
            result = self._control(method, name, payload)
        except (KeyError, ValueError, TypeError) as exc:
            return Response(400, encode({"error": str(exc)}))
        if result is None:
            return Response(404, encode({"error": f"unknown control endpoint {method} {path}"}))
        return Response(200, encode(result))

    def _control(self, method: str, name: str, payload: dict[str, Any]) -> Any:
        ws = self.workspace
        if method == "GET" and name == "stats":
            return self.stats_snapshot()
        if method == "POST" and name == "reset_stats":
            self.reset_stats()
            return {"ok": True}
        if name == "faults":
            if method == "POST":
                if payload.pop("reset", False):
                    self.faults.reset()
                    self.fault_state.reset_counters()
                self.faults.update(**payload)
            return self.faults.to_dict()
        if method == "GET" and name == "info":
            return {"region": self.region, "base_url": self.base_url(), "token": self.token,
                    "workspace_id": ws.workspace_id, "timezone": ws.timezone, "now": ws.now(),
                    "created_at": ws.created_at, "sizes": dataclasses.asdict(ws.sizes),
                    "rate_limit_per_window": self.limiter.limit}
        if method == "GET" and name == "scenario":
            return dataclasses.asdict(ws.scenario) if ws.scenario else None
        if method == "POST" and name == "rate_limit":
            self.limiter.limit = int(payload["limit"])
            return {"rate_limit_per_window": self.limiter.limit}
        if method == "POST" and name == "clock":
            if self._advance_clock is None:
                raise ValueError("this fake's clock cannot be moved")
            self._advance_clock(float(payload.get("advance", 0)))
            return {"now": ws.now()}
        if method == "POST" and name == "mutate":
            action = payload.pop("action", None)
            if action not in MUTATIONS:
                raise ValueError(f"unknown action {action!r}; known: {', '.join(MUTATIONS)}")
            fn = getattr(ws, action)
            inspect.signature(fn).bind(**payload)  # TypeError (-> 400) on bad arguments
            return {"action": action, "result": fn(**payload)}
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    region_server: RegionServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Kick idle keep-alive clients so a stopped fake looks stopped."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # idle keep-alive connections are closed after this

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: the fake serves thousands of requests per second

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        rs = self.server.region_server
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if path.startswith("/_fake/"):
            self._send(Outcome(rs.handle_control(method, path, body)))
            return
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            outcome = rs.handle_api(method, path, query, body, self.headers)
        except Exception as exc:  # a bug in the fake must still answer, as a 500
            outcome = Outcome(Response(500, error_body("server_error", f"fake intercom error: {exc!r}", None)))
        self._send(outcome)

    def _send(self, outcome: Outcome) -> None:
        if outcome.drop or outcome.response is None:
            self._hang_up()
            return
        resp = outcome.response
        reason = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else ""
        lines = [f"HTTP/1.1 {resp.status} {reason}", f"Content-Type: {resp.content_type}",
                 f"Content-Length: {len(resp.body)}"]
        lines += [f"{k}: {v}" for k, v in resp.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        body = resp.body
        if outcome.truncate:
            # Content-Length promises more than is sent, then the connection closes.
            self.wfile.write(head + body[: len(body) // 2])
            self._hang_up()
            return
        if outcome.slow_seconds > 0:
            half = len(body) // 2
            self.wfile.write(head + body[:half])
            time.sleep(outcome.slow_seconds)
            self.wfile.write(body[half:])
            return
        self.wfile.write(head + body)

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
