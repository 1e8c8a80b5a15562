"""Fake-only throughput: how fast the fake serves search pages to a trivial client.

The client plans the same search windows the product plans (`windows.plan_windows`; even
windows if that function changes shape), then pages through them on N threads with plain
`http.client` keep-alive connections, reading each body and finding the next cursor and
counting items with byte patterns: no JSON decoding, no transformation. Whatever rows/s this reaches is the most the fake can give any client on
this machine; a pipeline scenario near it is bound by the fake, not by the pipeline.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

_NEXT = re.compile(rb'"starting_after":"([^"]+)"')
# Items of a page, counted without decoding: the list's opening plus the separators between
# top-level items (nested objects of the same type follow a key, never `},{`).
_ITEMS = {
    "contacts": (b'"data":[{"type":"contact",', b'},{"type":"contact",'),
    "conversations": (b'"conversations":[{"type":"conversation",', b'},{"type":"conversation",'),
}


def count_items(resource: str, body: bytes) -> int:
    first, sep = _ITEMS[resource]
    return body.count(sep) + 1 if first in body else 0


def next_cursor(body: bytes) -> str | None:
    """`pages.next.starting_after`: the pages object comes first (conversations) or last (contacts)."""
    m = _NEXT.search(body, 0, 800) or _NEXT.search(body, max(0, len(body) - 800))
    return m.group(1).decode() if m else None


def _post(conn: http.client.HTTPConnection, path: str, body: dict[str, Any], token: str) -> bytes:
    conn.request("POST", path, body=json.dumps(body), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json",
        "Accept": "application/json", "Intercom-Version": "2.16"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"fake answered {resp.status} on {path}: {data[:200]!r}")
    return data


def fake_throughput(base_url: str, token: str, resource: str = "contacts", threads: int = 8,
                    max_seconds: float = 20.0) -> dict[str, Any]:
    """Page through `resource` on `threads` connections for up to `max_seconds`."""
    from iru_pipeline.intercom_client import IntercomClient
    from iru_pipeline.intercom_source.windows import (
        CONTACTS_SEARCH,
        CONVERSATIONS_SEARCH,
        DayClock,
        plan_windows,
        window_query,
    )

    spec = CONTACTS_SEARCH if resource == "contacts" else CONVERSATIONS_SEARCH
    with IntercomClient("us", base_url, token) as client:
        tz = client.get("/me").get("app", {}).get("timezone") or "UTC"
        days = DayClock(tz)
        now = int(time.time())
        lo = days.day_start(0) if spec.whole_days else 0
        first = client.post(spec.path, {"query": window_query(spec, _open(lo)), "pagination": {"per_page": 1}})
        total = int(first.get("total_count") or 0)
        try:
            windows = plan_windows(client, spec, lo, now, total, threads, days)
        except TypeError:  # the product's planner changed its signature: plain even windows
            windows = _even_windows(spec, lo, now, 3 * threads, days)
    host = urlsplit(base_url)
    sort = {"field": spec.field, "order": "ascending"}
    lock = threading.Lock()
    counts = {"requests": 0, "bytes": 0, "rows": 0}
    deadline = time.perf_counter() + max_seconds
    started = time.perf_counter()

    def chain(window: Any) -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        body: dict[str, Any] = {"query": window_query(spec, window), "pagination": {"per_page": 150}, "sort": sort}
        try:
            while time.perf_counter() < deadline:
                data = _post(conn, spec.path, body, token)
                rows = count_items(resource, data)
                with lock:
                    counts["requests"] += 1
                    counts["bytes"] += len(data)
                    counts["rows"] += rows
                cursor = next_cursor(data)
                if not cursor:
                    return
                body["pagination"] = {"per_page": 150, "starting_after": cursor}
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(chain, windows))
    elapsed = time.perf_counter() - started
    return {
        "resource": resource, "threads": threads, "windows": len(windows), "seconds": round(elapsed, 2),
        "requests": counts["requests"], "rows": counts["rows"],
        "req_per_s": round(counts["requests"] / elapsed, 1), "rows_per_s": round(counts["rows"] / elapsed),
        "mb_per_s": round(counts["bytes"] / elapsed / 1e6, 1), "total_count": total,
    }


def _even_windows(spec: Any, lo: int, now: int, pieces: int, days: Any) -> list[Any]:
    from iru_pipeline.intercom_source.windows import Window

    if spec.whole_days:
        n = max(1, days.days_between(lo, days.day_start(now)))
        step = max(1, n // pieces)
        bounds = [days.add_days(lo, i * step) for i in range(0, n // step + 1)]
    else:
        step = max(1, (now - lo) // pieces)
        bounds = list(range(lo, now + 1, step))
    bounds = sorted(set(bounds))
    return [Window(a, b) for a, b in zip(bounds, bounds[1:])] + [Window(bounds[-1], None)]


def _open(lo: int) -> Any:
    from iru_pipeline.intercom_source.windows import Window

    return Window(lo, None)
