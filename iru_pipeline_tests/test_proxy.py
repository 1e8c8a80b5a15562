"""Behind a proxy: `INTERCOM_BASE_URL_<R>` names a forwarding proxy in front of the bundled
fake, and the fake's `pages.next` URLs name the real Intercom host of the region, as Intercom
behind a proxy does. Those are followed through the proxy; a `next` URL on any other host is
refused (the token never goes there) and fails that resource only."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from iru_pipeline.intercom_client import IntercomClient, RetryPolicy
from iru_pipeline_tests.helpers import (
    assert_matches_fake,
    assert_values_match_fake,
    pipeline_env,
    run_with_env,
    small_fake,
)

US_HOST = "https://api.intercom.io"
FAST = {"max_retries": 2, "backoff_base_seconds": 0.01}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Recorder:
    """What reached a server: (method, path, whether it carried an Authorization header)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()

    def add(self, method: str, path: str, authorized: bool) -> None:
        with self.lock:
            self.requests.append((method, path, authorized))


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler], **attrs: Any) -> Iterator[tuple[str, Recorder]]:
    """A loopback HTTP server running `handler`; yields its base URL and its recorder."""
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.recorder = recorder  # type: ignore[attr-defined]
    for name, value in attrs.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()


class ForwardingProxy(BaseHTTPRequestHandler):
    """Forwards every request to `server.upstream` (minus `server.prefix`) and relays the
    answer unchanged: bodies, and so `next` URLs, are not rewritten."""

    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        server: Any = self.server
        server.recorder.add(self.command, self.path, "authorization" in {k.lower() for k in self.headers})
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        path = self.path[len(server.prefix):] if self.path.startswith(server.prefix + "/") else self.path
        upstream = urlsplit(server.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn.request(self.command, path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_POST = _forward

    def log_message(self, *args: Any) -> None:
        pass


class Trap(BaseHTTPRequestHandler):
    """A host that must never be asked anything: records, answers 404."""

    def do_GET(self) -> None:  # noqa: N802
        self.server.recorder.add("GET", self.path, "authorization" in {k.lower() for k in self.headers})  # type: ignore[attr-defined]
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_next_urls_on_intercoms_host_are_followed_through_the_proxy(tmp_path: Path) -> None:
    with small_fake(link_base_urls={"us": US_HOST}) as fake, \
            serve(ForwardingProxy, upstream=fake.base_url("us"), prefix="") as (proxy_url, seen):
        ws = fake.workspace("us")
        ws.delete_conversations([str(c["id"]) for c in list(ws.conversations())[:70]])  # two pages of 60
        env = {**pipeline_env(fake, tmp_path), "INTERCOM_BASE_URL_US": proxy_url}
        settings, result = run_with_env(env, with_evidence=False, intercom_options=FAST)
        assert result.exit_code == 0, [(r["resource"], r["reason"]) for r in result.sync_rows if r["reason"]]
        assert_matches_fake(settings.duckdb_path, fake)
        assert_values_match_fake(settings.duckdb_path, fake)
        # Every request went through the proxy, and activity logs paged (several next URLs).
        log_pages = [p for m, p, _ in seen.requests if p.startswith("/admins/activity_logs")]
        expected_pages = -(-len(ws.activity_logs(0)) // 150)
        assert len(log_pages) == expected_pages >= 2
        assert sum(fake.stats("us")["by_route"].values()) == len(seen.requests)


def test_a_next_url_on_another_host_is_refused_and_fails_that_resource_only(tmp_path: Path) -> None:
    with serve(Trap) as (trap_url, trapped), small_fake(link_base_urls={"us": trap_url}) as fake:
        settings, result = run_with_env(pipeline_env(fake, tmp_path), with_evidence=False, intercom_options=FAST)
        assert not trapped.requests, "the client asked a host it was never configured for"
        assert not result.failed and result.exit_code == 3
        rows = {r["resource"]: r for r in result.sync_rows}
        assert {n for n, r in rows.items() if r["status"] != "ok"} == {"activity_logs"}
        reason = rows["activity_logs"]["reason"]
        assert "\n" not in reason and reason.startswith("[us] bad answer: ") and urlsplit(trap_url).netloc in reason
        assert "refusing to send the token there" in reason
        assert rows["activity_logs"]["cursor_after"] is None  # first run: no cursor was stored
        others = ("contacts", "conversations", "admins", "teams", "tags", "deleted_conversations")
        assert_values_match_fake(settings.duckdb_path, fake, tables=others)


@pytest.mark.parametrize("prefix", ["", "/intercom"])
def test_a_proxy_with_a_path_prefix_keeps_it_on_followed_urls(prefix: str) -> None:
    """A `next` URL on the proxy itself (prefix included) or on Intercom's host (no prefix)
    both land on the proxy with the prefix once."""
    with small_fake() as fake, serve(ForwardingProxy, upstream=fake.base_url("us"), prefix=prefix) as (url, seen):
        for links in (f"{url}{prefix}", US_HOST):
            # What the fake's next URLs name; set here because the proxy's port is known only now.
            fake._server("us").api.base_url = (lambda base=links: base)  # noqa: SLF001
            retry = RetryPolicy(max_retries=1, backoff_base=0.01)
            with IntercomClient("us", f"{url}{prefix}", fake.token("us"), retry=retry) as client:
                ids = [e["id"] for page in client.iter_activity_logs(0, per_page=50) for e in page.items]
            assert sorted(ids) == sorted(e["id"] for e in fake.workspace("us").activity_logs(0))
        assert all(p.startswith(f"{prefix}/admins/activity_logs") for _, p, _ in seen.requests), seen.requests[:3]
        assert all(auth for _, _, auth in seen.requests)
