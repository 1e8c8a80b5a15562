"""HTTP layer: one ThreadingHTTPServer per region on loopback, HTTP/1.1 keep-alive.

A region's host serves one or more workspaces; the request's Bearer token picks the
workspace, whose token, faults, rate limit and statistics apply (hosted.py). A request
without a known token is answered by the region's first workspace, which refuses it with
Intercom's 401 exactly as a single-workspace host does. Requests under `/_fake/` are the
control API: no token, not rate limited, not counted; `?workspace=KEY` picks a workspace
(default: the region's first).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .api import RegionApi, Response, error_body
from .encoding import encode
from .faults import FaultConfig, FaultState, RateLimiter, RegionStats
from .hosted import HostedWorkspace, Outcome
from .workspace import Workspace

MUTATIONS = (
    "update_contacts", "create_contacts", "delete_contacts", "merge_contact",
    "update_conversations", "create_conversations", "delete_conversations",
    "add_activity_logs", "add_admin", "remove_admin", "set_team_members",
)

__all__ = ["MUTATIONS", "Outcome", "RegionServer"]


class RegionServer:
    """The fake Intercom host of one region, serving its workspaces (the first is the default)."""

    def __init__(self, hosted: Sequence[HostedWorkspace], *, region: str, clock: Callable[[], float],
                 advance_clock: Callable[[float], None] | None = None, host: str = "127.0.0.1") -> None:
        if not hosted:
            raise ValueError(f"region {region} hosts no workspace")
        self.region = region
        self.hosted: tuple[HostedWorkspace, ...] = tuple(hosted)
        self._by_token = {h.token: h for h in self.hosted}
        self._by_key = {h.key: h for h in self.hosted}
        if len(self._by_token) != len(self.hosted) or len(self._by_key) != len(self.hosted):
            raise ValueError(f"the workspaces of region {region} need distinct keys and tokens")
        self.clock = clock
        self.host = host
        self.port = 0
        self._advance_clock = advance_clock
        self.httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # the region's first workspace: what a single-workspace host is ----------------------------
    @property
    def default(self) -> HostedWorkspace:
        return self.hosted[0]

    @property
    def workspace(self) -> Workspace:
        return self.default.workspace

    @property
    def token(self) -> str:
        return self.default.token

    @property
    def faults(self) -> FaultConfig:
        return self.default.faults

    @property
    def fault_state(self) -> FaultState:
        return self.default.fault_state

    @property
    def limiter(self) -> RateLimiter:
        return self.default.limiter

    @property
    def stats(self) -> RegionStats:
        return self.default.stats

    @property
    def api(self) -> RegionApi:
        return self.default.api

    def reset_stats(self) -> None:
        self.default.reset_stats()

    def stats_snapshot(self) -> dict[str, Any]:
        return self.default.stats_snapshot()

    def hosted_by_key(self, key: str | None) -> HostedWorkspace:
        """The workspace with this key (None: the region's first)."""
        if key is None:
            return self.default
        try:
            return self._by_key[key]
        except KeyError:
            keys = [h.key for h in self.hosted]
            shown = ", ".join(keys[:5]) + (f" ... ({len(keys)} in all)" if len(keys) > 5 else "")
            raise KeyError(f"region {self.region} hosts no workspace {key!r}; it hosts {shown}") from None

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

    # API requests -----------------------------------------------------------------------------
    def handle_api(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
                   headers: Any) -> Outcome:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        hosted = self._by_token.get(token.strip()) if scheme.lower() == "bearer" else None
        return (hosted or self.default).answer(method, path, query, body, headers)

    # control API ------------------------------------------------------------------------------
    def handle_control(self, method: str, path: str, body: bytes,
                       query: dict[str, list[str]] | None = None) -> Response:
        """`/_fake/...`: stats, faults, mutations and info for a fake in another process."""
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return Response(400, encode({"error": "body must be JSON"}))
        if not isinstance(payload, dict):
            return Response(400, encode({"error": "body must be a JSON object"}))
        name = path[len("/_fake/"):].strip("/")
        try:
            hosted = self.hosted_by_key((query or {}).get("workspace", [None])[-1])
            result = self._control(method, name, payload, hosted)
        except (KeyError, ValueError, TypeError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return Response(400, encode({"error": str(message)}))
        if result is None:
            return Response(404, encode({"error": f"unknown control endpoint {method} {path}"}))
        return Response(200, encode(result))

    def _info(self, hosted: HostedWorkspace) -> dict[str, Any]:
        ws = hosted.workspace
        return {"region": self.region, "base_url": self.base_url(), "token": hosted.token,
                "workspace": hosted.key, "workspace_id": ws.workspace_id, "name": ws.profile.app_name,
                "timezone": ws.timezone, "now": ws.now(), "created_at": ws.created_at,
                "sizes": dataclasses.asdict(ws.sizes), "rate_limit_per_window": hosted.limiter.limit}

    def _control(self, method: str, name: str, payload: dict[str, Any], hosted: HostedWorkspace) -> Any:
        ws = hosted.workspace
        if method == "GET" and name == "stats":
            return hosted.stats_snapshot()
        if method == "POST" and name == "reset_stats":
            hosted.reset_stats()
            return {"ok": True}
        if name == "faults":
            if method == "POST":
                if payload.pop("reset", False):
                    hosted.reset_faults()
                hosted.faults.update(**payload)
            return hosted.faults.to_dict()
        if method == "GET" and name == "info":
            return self._info(hosted)
        if method == "GET" and name == "workspaces":
            return [self._info(h) for h in self.hosted]
        if method == "GET" and name == "scenario":
            return dataclasses.asdict(ws.scenario) if ws.scenario else None
        if method == "POST" and name == "rate_limit":
            hosted.limiter.limit = int(payload["limit"])
            return {"rate_limit_per_window": hosted.limiter.limit}
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
        query = parse_qs(url.query, keep_blank_values=True)
        if path.startswith("/_fake/"):
            self._send(Outcome(rs.handle_control(method, path, body, query)))
            return
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
