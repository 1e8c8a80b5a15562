"""An httpx client that speaks Intercom 2.16 for one regional workspace.

It knows the API (hosts, headers, the four pagination kinds, rate limits, error bodies) and
nothing of dlt or Dagster. Pagination methods yield whole pages as they arrive.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msgspec
import orjson

from iru_pipeline.intercom_client.errors import (
    IntercomAuthError,
    IntercomConnectionError,
    IntercomError,
    IntercomPermissionError,
    IntercomRateLimitError,
    IntercomRequestError,
    IntercomResponseError,
    IntercomServerError,
    IntercomTransportError,
    IntercomVersionError,
)
from iru_pipeline.intercom_client.page_bound import PageBound
from iru_pipeline.intercom_client.proofs import ProofLog
from iru_pipeline.intercom_client.rate_limit import MAX_IN_FLIGHT, RateLimiter, RetryPolicy, retry_after_seconds
from iru_pipeline.intercom_client.reach import unreachable_message
from iru_pipeline.intercom_records.registry import PERMISSIONS  # plain Python: no dlt or Dagster
from iru_pipeline.regions import REGIONS

API_VERSION = "2.16"
MAX_PER_PAGE = 150  # "the max amount for any API is 150" (docs/intercom-api.md#pagination-four-kinds)
USER_AGENT = "iru-pipeline"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
# 401 codes that mean "this token may not read this resource" rather than "bad token";
# Intercom answers some missing-scope cases with 401 token_unauthorized (docs/intercom-api.md#errors).
_SCOPE_401_CODES = frozenset({"token_unauthorized"})
_PLAN_CODES = frozenset({"api_plan_restricted"})

log = logging.getLogger(__name__)


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


class _Counters:
    """Updates an endpoint's and a resource's counters together, under the client's lock."""

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


class Page:
    """One page of a listing, as it arrived.

    A search page may arrive with its records still JSON (`records_json`, a JSON array): they
    are decoded on first use of `items`, or elsewhere in parallel (table_workers.py)."""

    __slots__ = ("_items", "number", "total_count", "body", "records_json", "_where")

    def __init__(self, items: list[dict[str, Any]] | None, number: int, total_count: int | None = None,
                 body: dict[str, Any] | None = None, records_json: bytes = b"",
                 where: dict[str, Any] | None = None) -> None:
        self._items = items
        self.number = number
        self.total_count = total_count
        self.body = body if body is not None else {}
        self.records_json = records_json
        self._where = where or {}

    @property
    def items(self) -> list[dict[str, Any]]:
        if self._items is None:
            try:
                self._items = records_of(self.records_json)
            except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
                raise IntercomResponseError(f"a page's records could not be decoded ({exc})", **self._where) from None
        return self._items

    def __repr__(self) -> str:
        return f"Page(number={self.number}, total_count={self.total_count})"


def records_of(records_json: bytes) -> list[dict[str, Any]]:
    """The records (objects) of a JSON array that `_search_decoder` already checked."""
    return [i for i in orjson.loads(records_json) if isinstance(i, dict)]


class IntercomClient:
    """Client of one regional workspace.

    `token` is used only to build the Authorization header; it is never stored elsewhere on
    the object, never logged and never part of an error.
    """

    def __init__(
        self,
        region: str,
        base_url: str,
        token: Any,
        *,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_connections: int = MAX_IN_FLIGHT,
        transport: httpx.BaseTransport | None = None,
        api_version: str = API_VERSION,
    ) -> None:
        self.region = region
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self._base_path = urlsplit(self.base_url).path.rstrip("/")
        known = REGIONS.get(region)
        # Intercom's own host for this region: a `next` URL naming it is followed through the
        # configured base URL (a proxy), never sent there directly.
        self.intercom_host = urlsplit(known.default_base_url).netloc if known else None
        self.api_version = api_version
        self.retry = retry or RetryPolicy()
        # The limiter keeps requests in flight within the connection pool.
        self.limiter = limiter or RateLimiter(max_in_flight=max_connections)
        self._rng = random.Random()
        self._stats: dict[str, EndpointStats] = {}
        self._resource_stats: dict[str, EndpointStats] = {}
        self._stats_lock = threading.Lock()
        self.proofs = ProofLog()
        """Proof of collection of the snapshot endpoints' responses (hashes only, proofs.py)."""
        secret = token.reveal() if hasattr(token, "reveal") else str(token)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {secret}",
                "Accept": "application/json",
                "Intercom-Version": api_version,
                "User-Agent": USER_AGENT,
            },
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"IntercomClient(region={self.region!r}, base_url={self.base_url!r})"

    def __enter__(self) -> IntercomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ counters

    def stats(self) -> dict[str, dict[str, int | None]]:
        """Counters per endpoint (`"GET /contacts"`), copied."""
        with self._stats_lock:
            return {k: v.as_dict() for k, v in self._stats.items()}

    def resource_stats(self) -> dict[str, dict[str, int | None]]:
        """The same counters per resource name given by callers (`contacts`, `admins`, ...)."""
        with self._stats_lock:
            return {k: v.as_dict() for k, v in self._resource_stats.items()}

    def total_calls(self) -> int:
        with self._stats_lock:
            return sum(s.calls for s in self._stats.values())

    def _stat(self, endpoint: str, resource: str | None = None) -> _Counters:
        with self._stats_lock:
            targets = [self._stats.setdefault(endpoint, EndpointStats())]
            if resource:
                targets.append(self._resource_stats.setdefault(resource, EndpointStats()))
        return _Counters(targets, self._stats_lock)

    # ------------------------------------------------------------------ requests

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, resource: str | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params, resource=resource)

    def post(self, path: str, body: Mapping[str, Any], *, resource: str | None = None) -> dict[str, Any]:
        return self.request("POST", path, body=body, resource=resource)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        resource: str | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> dict[str, Any]:
        """One API call with pacing and bounded retries; returns the decoded JSON object
        (`decode`, if given, replaces the JSON decoding of a successful response)."""
        endpoint = f"{method} {path}"
        stat = self._stat(endpoint, resource)
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        rate_waits = 0
        while True:
            self.limiter.acquire()
            released = False
            try:
                stat.add("calls")
                # Streamed and joined here, so the Response never holds the body: httpx's
                # Response and its stream reference each other, and a body kept by that cycle
                # (330 KB a page) lived until the next cyclic GC pass, hundreds of MB later.
                with self._http.stream(method, path, params=params, content=content, headers=headers) as response:
                    raw = b"".join(response.iter_bytes())
                self.proofs.record(method, path, resource, self.base_url, response.status_code, response.headers, raw)
                # A 429's own window headers are not kept: its wait is `limiter.pause` below.
                self.limiter.release(response.headers if response.status_code != 429 else None)
                released = True
                remaining = response.headers.get("x-ratelimit-remaining")
                if remaining is not None and remaining.isdigit():
                    stat.low_water(int(remaining))
            except httpx.TransportError as exc:
                if not released:
                    self.limiter.release(None)
                stat.add("transport_errors")
                reason = _transport_reason(exc)
                if attempt >= self.retry.max_retries:
                    raise self._transport_error(exc, reason, attempt, endpoint, resource) from None
                self._sleep_retry(stat, attempt, f"{reason} on {endpoint}")
                attempt += 1
                continue

            status = response.status_code
            if status == 429:
                stat.add("rate_limited")
                payload = _loads(raw)
                if rate_waits >= self.retry.max_rate_limit_waits:
                    raise IntercomRateLimitError(
                        f"still rate limited after {rate_waits} waits; lower concurrency or retry later",
                        region=self.region, endpoint=endpoint, status=429,
                        request_id=_request_id(payload), code=_first_code(payload), resource=resource,
                    )
                now = time.time()
                wait = retry_after_seconds(response.headers, now)
                if wait is None:
                    wait = self.retry.backoff(rate_waits, self._rng)
                wait = min(max(wait, 0.05), self.retry.max_wait)
                rate_waits += 1
                stat.add("retries")
                log.warning("[%s] 429 on %s; waiting %.1fs (wait %d)", self.region, endpoint, wait, rate_waits)
                self.limiter.pause(wait)
                continue

            if status in RETRYABLE_STATUSES or status >= 500:
                stat.add("server_errors")
                if attempt >= self.retry.max_retries:
                    payload = _loads(raw)
                    raise IntercomServerError(
                        f"Intercom kept answering {status} from {self.host} after {attempt + 1} attempts; "
                        "retry later (status.intercom.com shows incidents)",
                        region=self.region, endpoint=endpoint, status=status,
                        request_id=_request_id(payload), code=_first_code(payload), resource=resource,
                    )
                self._sleep_retry(stat, attempt, f"{status} on {endpoint}")
                attempt += 1
                continue

            if 300 <= status < 400:
                raise self._redirect_error(status, response.headers.get("location"), endpoint, resource)
            payload = decode(raw) if decode is not None and status < 400 else _loads(raw)
            if status >= 400:
                raise self._status_error(status, payload, endpoint, resource)
            if not isinstance(payload, dict):
                # A 200 that is not a JSON object: a proxy page or a truncated body. Retry, bounded.
                kind = ("a non-JSON body" if payload is _NOT_JSON
                        else f"JSON that is not an object ({type(payload).__name__})")
                if attempt >= self.retry.max_retries:
                    raise IntercomResponseError(
                        f"Intercom returned {kind} (content-type {response.headers.get('content-type', 'none')!r})",
                        region=self.region, endpoint=endpoint, status=status,
                        request_id=response.headers.get("x-request-id"), resource=resource,
                    )
                self._sleep_retry(stat, attempt, f"{kind} on {endpoint}")
                attempt += 1
                continue
            return payload

    def me(self) -> dict[str, Any]:
        """`GET /me`, validated: an object whose `app` names the workspace (`app.id_code`).
        `check` and the source both call this, so a bad `/me` reads the same in both."""
        body = self.get("/me", resource="workspaces")
        app = body.get("app")
        where: dict[str, Any] = dict(region=self.region, endpoint="GET /me", resource="workspaces")
        if not isinstance(app, dict):
            raise IntercomResponseError(
                f"GET /me has no app ({'null' if app is None else type(app).__name__}): cannot tell which workspace "
                "this token belongs to; use the access token of an app installed in the workspace", **where)
        if app.get("id_code") in (None, "") or isinstance(app.get("id_code"), (dict, list, bool)):
            raise IntercomResponseError(
                "GET /me has no app.id_code: cannot tell which workspace this token belongs to", **where)
        return body

    def _transport_error(self, exc: httpx.TransportError, reason: str, attempt: int, endpoint: str,
                         resource: str | None) -> IntercomError:
        where: dict[str, Any] = dict(region=self.region, endpoint=endpoint, resource=resource)
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError)):
            return IntercomConnectionError(
                f"{unreachable_message(self.region, self.base_url, reason)} ({attempt + 1} attempts)", **where)
        return IntercomTransportError(
            f"could not get a complete response from {self.host} after {attempt + 1} attempts ({reason}); "
            "retry later (status.intercom.com shows incidents)", **where)

    def _redirect_error(self, status: int, location: str | None, endpoint: str, resource: str | None) -> IntercomError:
        # Never followed: the Authorization header would go wherever the redirect points.
        target = _without_query(location) if location else "nowhere (no Location header)"
        return IntercomResponseError(
            f"{self.host} redirected to {target}; the token is not sent to a redirect target: "
            f"set {_base_url_env(self.region)} to the URL that answers the API itself",
            region=self.region, endpoint=endpoint, status=status, resource=resource)

    def _sleep_retry(self, stat: _Counters, attempt: int, why: str) -> None:
        stat.add("retries")
        delay = self.retry.backoff(attempt, self._rng)
        log.warning("[%s] retrying after %s in %.2fs (retry %d of %d)", self.region, why, delay, attempt + 1,
            self.retry.max_retries)
        time.sleep(delay)

    def _status_error(self, status: int, payload: Any, endpoint: str, resource: str | None) -> IntercomError:
        code = _first_code(payload)
        detail = _first_message(payload)
        ctx: dict[str, Any] = dict(region=self.region, endpoint=endpoint, status=status,
                                   request_id=_request_id(payload), code=code, resource=resource)
        what = resource or endpoint.split(" ", 1)[1]
        permission = PERMISSIONS.get(resource or "", "the matching read permission")
        if status == 401 and code not in _SCOPE_401_CODES:
            return IntercomAuthError(
                f"Intercom rejected the access token at {self.host}: check that {_token_env(self.region)} "
                f"belongs to a workspace hosted in the {self.region.upper()} region "
                "(EU and AU workspaces need their own host and token)",
                **ctx,
            )
        if status == 402 or code in _PLAN_CODES:
            return IntercomPermissionError(
                f"{what} is not available on this workspace's Intercom plan ({detail or 'plan restricted'})",
                **ctx,
            )
        if status in (401, 403):
            return IntercomPermissionError(
                f"the token may not read {what}: grant the app the {permission!r} permission "
                "in the Intercom Developer Hub",
                **ctx,
            )
        if code == "intercom_version_invalid":
            return IntercomVersionError(
                f"{what} needs Intercom API version {self.api_version} or newer, which this workspace refused",
                **ctx,
            )
        return IntercomRequestError(f"Intercom refused the request: {detail or 'no detail given'}", **ctx)

    # ------------------------------------------------------------------ pagination

    def iter_full(self, path: str, item_key: str, params: Mapping[str, Any] | None = None, *,
        resource: str | None = None) -> Iterator[Page]:
        """A whole collection in one response (admins, teams, tags, data attributes)."""
        body = self.get(path, params, resource=resource)
        yield Page(_items(body, item_key, self, f"GET {path}", resource), 1, _total(body), body)

    def iter_cursor(
        self, path: str, item_key: str, params: Mapping[str, Any] | None = None,
        *, per_page: int = MAX_PER_PAGE, resource: str | None = None,
    ) -> Iterator[Page]:
        """GET list with `starting_after` from `pages.next.starting_after` (contacts, conversations)."""
        query = dict(params or {}, per_page=min(per_page, MAX_PER_PAGE))
        seen: set[str] = set()
        bound = PageBound(self.region, f"GET {path}", resource, query["per_page"])
        number = 0
        while True:
            number += 1
            body = self.get(path, query, resource=resource)
            yield Page(_items(body, item_key, self, f"GET {path}", resource), number, _total(body), body)
            cursor = _next_cursor(body)
            if cursor is None:
                return
            bound.check(number, body)
            self._guard_repeat(cursor, seen, f"GET {path}", resource)
            query["starting_after"] = cursor

    def iter_search(
        self, path: str, item_key: str, query: Mapping[str, Any],
        *, sort: Mapping[str, str] | None = None, per_page: int = MAX_PER_PAGE, resource: str | None = None,
    ) -> Generator[Page, None, None]:
        """POST search; pagination lives in the JSON body, never the query string
        (docs/intercom-api.md#pagination-four-kinds:
        a query-string `starting_after` is ignored and page 1 comes back forever)."""
        body: dict[str, Any] = {"query": dict(query), "pagination": {"per_page": min(per_page, MAX_PER_PAGE)}}
        if sort:
            body["sort"] = dict(sort)
        seen: set[str] = set()
        bound = PageBound(self.region, f"POST {path}", resource, body["pagination"]["per_page"])
        number = 0
        decode = _search_decoder(item_key)
        while True:
            number += 1
            result = self.request("POST", path, body=body, resource=resource, decode=decode)
            records = result.get(_RECORDS)
            if records is not None:
                yield Page(None, number, _total(result), result, records,
                           where={"region": self.region, "endpoint": f"POST {path}", "resource": resource})
            else:
                yield Page(_items(result, item_key, self, f"POST {path}", resource), number, _total(result), result)
            cursor = _next_cursor(result)
            if cursor is None:
                return
            bound.check(number, result)
            self._guard_repeat(cursor, seen, f"POST {path}", resource)
            body["pagination"] = {"per_page": body["pagination"]["per_page"], "starting_after": cursor}

    def iter_activity_logs(
        self, created_at_after: int, created_at_before: int | None = None,
        *, per_page: int | None = None, resource: str | None = "activity_logs",
    ) -> Iterator[Page]:
        """`GET /admins/activity_logs`, newest first. `pages.next` is a full URL on the live API
        and a cursor object in the spec (docs/intercom-api.md#pagination-four-kinds): both are followed."""
        path = "/admins/activity_logs"
        params: dict[str, Any] = {"created_at_after": str(int(created_at_after))}
        if created_at_before is not None:
            params["created_at_before"] = str(int(created_at_before))
        if per_page:
            params["per_page"] = per_page
        seen: set[str] = set()
        bound = PageBound(self.region, f"GET {path}", resource, per_page or MAX_PER_PAGE)
        number = 0
        while True:
            number += 1
            body = self.get(path, params, resource=resource)
            yield Page(_items(body, "activity_logs", self, f"GET {path}", resource), number, _total(body), body)
            pages = body.get("pages")
            nxt = pages.get("next") if isinstance(pages, dict) else None
            if not nxt:
                return
            bound.check(number, body)
            if isinstance(nxt, str):
                path, params = self._follow_url(nxt, f"GET {path}", resource)
                key = nxt
            elif isinstance(nxt, dict) and nxt.get("starting_after"):
                params = dict(params, starting_after=nxt["starting_after"])
                key = str(nxt["starting_after"])
            else:
                return
            self._guard_repeat(key, seen, "GET /admins/activity_logs", resource)

    def iter_numbered(
        self, path: str, item_key: str, params: Mapping[str, Any] | None = None,
        *, per_page: int = 60, resource: str | None = None,
    ) -> Iterator[Page]:
        """Page-numbered listing (`/conversations/deleted`): `page=N` until `pages.next` is null
        or `total_pages` is reached."""
        query = dict(params or {}, per_page=per_page)
        bound = PageBound(self.region, f"GET {path}", resource, per_page)
        number = 0
        while True:
            number += 1
            query["page"] = number
            body = self.get(path, query, resource=resource)
            items = _items(body, item_key, self, f"GET {path}", resource)
            yield Page(items, number, _total(body), body)
            pages = got if isinstance(got := body.get("pages"), dict) else {}
            total_pages = pages.get("total_pages")
            if not items or not pages.get("next") or (isinstance(total_pages, int) and number >= total_pages):
                return
            bound.check(number, body)

    def _follow_url(self, url: str, endpoint: str, resource: str | None) -> tuple[str, dict[str, Any]]:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise IntercomResponseError(
                "pagination returned a malformed next URL", region=self.region, endpoint=endpoint, resource=resource,
            ) from None
        path = parts.path or "/"
        if not parts.netloc or parts.netloc == self.host:
            if self._base_path and path.startswith(self._base_path + "/"):
                path = path[len(self._base_path):]  # relative to the base URL, which has the prefix
        elif parts.netloc != self.intercom_host or parts.scheme != "https":
            # Never send the token to another host than the configured one or Intercom's own.
            raise IntercomResponseError(
                f"pagination pointed to another host ({parts.netloc}) than {self.host}; refusing to send the "
                "token there",
                region=self.region, endpoint=endpoint, resource=resource,
            )
        # else: Intercom's own host, as seen behind a proxy: followed through the base URL.
        return path, dict(parse_qsl(parts.query, keep_blank_values=True))

    def _guard_repeat(self, cursor: str, seen: set[str], endpoint: str, resource: str | None) -> None:
        if cursor in seen:
            raise IntercomResponseError(
                "Intercom returned a pagination cursor it had already returned; stopped instead of looping forever",
                region=self.region, endpoint=endpoint, resource=resource,
            )
        seen.add(cursor)


_NOT_JSON = object()


def _loads(content: bytes) -> Any:
    try:
        # orjson: pages of 150 contacts are ~350 KB; the stdlib decoder took twice as long.
        return orjson.loads(content)
    except (orjson.JSONDecodeError, UnicodeDecodeError, ValueError):
        return _NOT_JSON


def _request_id(payload: Any) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("request_id"), str):
        return payload["request_id"][:64]
    return None


def _errors(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        return [e for e in payload["errors"] if isinstance(e, dict)]
    return []


def _first_code(payload: Any) -> str | None:
    errs = _errors(payload)
    code = errs[0].get("code") if errs else None
    return str(code)[:80] if code is not None else None


def _first_message(payload: Any) -> str | None:
    errs = _errors(payload)
    msg = errs[0].get("message") if errs else None
    return " ".join(str(msg).split())[:200] if msg else None


_RECORDS = "__records_json"


def _search_decoder(item_key: str) -> Callable[[bytes], Any]:
    """Decodes a search page except its records, which stay JSON bytes under `_RECORDS`.

    The records are most of a page (150 contacts are ~330 KB) and their decoding most of its
    CPU; pagination needs only `pages` and `total_count`. msgspec skips over the records
    (checking that they are valid JSON) without building them. Any other shape goes through
    the full decoder, so its errors are the usual ones."""
    fields: list[tuple[str, Any, Any]] = [("total_count", Any, None), ("pages", Any, None),
                                          (item_key, msgspec.Raw, msgspec.Raw(b"null"))]
    if item_key != "data":
        fields.append(("data", msgspec.Raw, msgspec.Raw(b"null")))
    envelope = msgspec.json.Decoder(msgspec.defstruct("SearchPage", fields))

    def decode(content: bytes) -> Any:
        try:
            page: Any = envelope.decode(content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _loads(content)
        records = bytes(getattr(page, item_key))
        if records == b"null" and item_key != "data":
            records = bytes(page.data)  # some endpoints answer `data` where the spec names another key
        if records[:1] != b"[":
            return _loads(content)
        return {"total_count": page.total_count, "pages": page.pages, _RECORDS: records}

    return decode


def _items(body: dict[str, Any], key: str, client: IntercomClient, endpoint: str,
    resource: str | None) -> list[dict[str, Any]]:
    items = body.get(key)
    if items is None and key != "data" and isinstance(body.get("data"), list):
        items = body["data"]  # some endpoints answer `data` where the spec names another key
    if not isinstance(items, list):
        raise IntercomResponseError(
            f"response has no {key!r} list (got keys: {', '.join(sorted(map(str, body))[:8]) or 'none'})",
            region=client.region, endpoint=endpoint, resource=resource,
        )
    return [i for i in items if isinstance(i, dict)]


def _total(body: dict[str, Any]) -> int | None:
    total = body.get("total_count")
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def _next_cursor(body: dict[str, Any]) -> str | None:
    pages = body.get("pages")
    nxt = pages.get("next") if isinstance(pages, dict) else None
    if isinstance(nxt, dict):
        cursor = nxt.get("starting_after")
        return str(cursor) if cursor else None
    return None


def _transport_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ProxyError):
        return "the proxy refused the connection"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "name or service" in text or "nodename" in text or "getaddrinfo" in text or "name resolution" in text:
            return "host name not found"
        return "connection refused or host unreachable"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection dropped or response truncated"
    return type(exc).__name__


def _without_query(url: str) -> str:
    """A URL to show: scheme, host and path only (a query string may carry anything)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "a malformed URL"
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path
    return " ".join(shown.split())[:200] or "an empty URL"


def _token_env(region: str) -> str:
    return f"INTERCOM_ACCESS_TOKEN_{region.upper()}"


def _base_url_env(region: str) -> str:
    return f"INTERCOM_BASE_URL_{region.upper()}"
