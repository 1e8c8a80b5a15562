"""An httpx client that speaks Intercom 2.16 for one regional workspace.

It knows the API (hosts, headers, the four pagination kinds, rate limits, error bodies) and
nothing of dlt or Dagster. Pagination methods yield whole pages as they arrive.

`IntercomClient` is the facade; each step of a call is its own module:

| step | module |
|---|---|
| send: the exchange, pacing, bounded retries | send.py (pacing itself: rate_limit.py) |
| classify: retry or which typed error, worded for the user | classify.py (the types: errors.py) |
| paginate: the four paging kinds | paginate.py (bounds: page_bound.py) |
| what a listing yields: `Page`, a search's `SearchPage` | page.py |
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from iru_pipeline.intercom_client.classify import Classifier
from iru_pipeline.intercom_client.counters import EndpointStats, StatsBook
from iru_pipeline.intercom_client.errors import IntercomResponseError
from iru_pipeline.intercom_client.page import Page, SearchPage, records_of
from iru_pipeline.intercom_client.paginate import MAX_PER_PAGE, Paginator
from iru_pipeline.intercom_client.proofs import ProofLog
from iru_pipeline.intercom_client.rate_limit import MAX_IN_FLIGHT, RateLimiter, RetryPolicy
from iru_pipeline.intercom_client.send import Sender
from iru_pipeline.intercom_records.registry import PERMISSIONS  # plain Python: no dlt or Dagster
from iru_pipeline.regions import REGIONS

__all__ = ["API_VERSION", "MAX_PER_PAGE", "PERMISSIONS", "EndpointStats", "IntercomClient", "Page", "SearchPage",
           "records_of"]

API_VERSION = "2.16"
USER_AGENT = "iru-pipeline"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


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
        workspace: str | None = None,
        token_setting: str | None = None,
        base_url_setting: str | None = None,
    ) -> None:
        self.region = region
        self.workspace = workspace or region
        """The workspace's configured name: what errors and progress lines are prefixed with."""
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        known = REGIONS.get(region)
        # Intercom's own host for this region: a `next` URL naming it is followed through the
        # configured base URL (a proxy), never sent there directly.
        self.intercom_host = urlsplit(known.default_base_url).netloc if known else None
        self.api_version = api_version
        self.retry = retry or RetryPolicy()
        # The limiter keeps requests in flight within the connection pool.
        self.limiter = limiter or RateLimiter(max_in_flight=max_connections)
        self._stats = StatsBook()
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
        classifier = Classifier(
            region=self.workspace, region_code=region, host=self.host, base_url=self.base_url,
            api_version=api_version, token_env=token_setting or _token_env(region),
            base_url_env=base_url_setting or _base_url_env(region), permissions=PERMISSIONS)
        self._sender = Sender(self._http, region=self.workspace, base_url=self.base_url, limiter=self.limiter,
                              retry=self.retry, proofs=self.proofs, classifier=classifier, stats=self._stats)
        self._pages = Paginator(self._sender, region=self.workspace, host=self.host,
                                base_path=urlsplit(self.base_url).path.rstrip("/"), intercom_host=self.intercom_host)

    def __repr__(self) -> str:
        return f"IntercomClient(workspace={self.workspace!r}, region={self.region!r}, base_url={self.base_url!r})"

    def __enter__(self) -> IntercomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ counters

    def stats(self) -> dict[str, dict[str, int | None]]:
        """Counters per endpoint (`"GET /contacts"`), copied."""
        return self._stats.by_endpoint()

    def resource_stats(self) -> dict[str, dict[str, int | None]]:
        """The same counters per resource name given by callers (`contacts`, `admins`, ...)."""
        return self._stats.by_resource()

    def total_calls(self) -> int:
        return self._stats.total_calls()

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
    ) -> dict[str, Any]:
        """One API call with pacing and bounded retries (send.py); returns the decoded JSON object."""
        payload: dict[str, Any] = self._sender.send(method, path, params=params, body=body, resource=resource)
        return payload

    def me(self) -> dict[str, Any]:
        """`GET /me`, validated: an object whose `app` names the workspace (`app.id_code`).
        `check` and the source both call this, so a bad `/me` reads the same in both."""
        body = self.get("/me", resource="workspaces")
        app = body.get("app")
        where: dict[str, Any] = dict(region=self.workspace, endpoint="GET /me", resource="workspaces")
        if not isinstance(app, dict):
            raise IntercomResponseError(
                f"GET /me has no app ({'null' if app is None else type(app).__name__}): cannot tell which workspace "
                "this token belongs to; use the access token of an app installed in the workspace", **where)
        if app.get("id_code") in (None, "") or isinstance(app.get("id_code"), (dict, list, bool)):
            raise IntercomResponseError(
                "GET /me has no app.id_code: cannot tell which workspace this token belongs to", **where)
        return body

    # ------------------------------------------------------------------ pagination (paginate.py)

    def iter_full(self, path: str, item_key: str, params: Mapping[str, Any] | None = None, *,
        resource: str | None = None) -> Iterator[Page]:
        """A whole collection in one response (admins, teams, tags, data attributes)."""
        return self._pages.full(path, item_key, params, resource=resource)

    def iter_cursor(
        self, path: str, item_key: str, params: Mapping[str, Any] | None = None,
        *, per_page: int = MAX_PER_PAGE, resource: str | None = None,
    ) -> Iterator[Page]:
        """GET list with `starting_after` from `pages.next.starting_after` (contacts, conversations)."""
        return self._pages.cursor(path, item_key, params, per_page=per_page, resource=resource)

    def iter_search(
        self, path: str, item_key: str, query: Mapping[str, Any],
        *, sort: Mapping[str, str] | None = None, per_page: int = MAX_PER_PAGE, resource: str | None = None,
    ) -> Generator[Page, None, None]:
        """POST search, paged in the JSON body; a page's records arrive still JSON (`Page.records_json`)."""
        return self._pages.search(path, item_key, query, sort=sort, per_page=per_page, resource=resource)

    def iter_activity_logs(
        self, created_at_after: int, created_at_before: int | None = None,
        *, per_page: int | None = None, resource: str | None = "activity_logs",
    ) -> Iterator[Page]:
        """`GET /admins/activity_logs`, newest first, following `pages.next` of either kind."""
        return self._pages.activity_logs(created_at_after, created_at_before, per_page=per_page, resource=resource)

    def iter_numbered(
        self, path: str, item_key: str, params: Mapping[str, Any] | None = None,
        *, per_page: int = 60, resource: str | None = None, ahead: int = 1,
    ) -> Iterator[Page]:
        """Page-numbered listing (`/conversations/deleted`), `ahead` pages requested at once."""
        return self._pages.numbered(path, item_key, params, per_page=per_page, resource=resource, ahead=ahead)




def _token_env(region: str) -> str:
    from iru_pipeline.env_names import token_env

    return token_env(region)


def _base_url_env(region: str) -> str:
    from iru_pipeline.env_names import base_url_env

    return base_url_env(region)
