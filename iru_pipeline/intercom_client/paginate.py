"""The four ways Intercom pages a listing (docs/intercom-api.md#pagination-four-kinds).

| kind | method | next page |
|---|---|---|
| full list | `full` | none: one answer holds all |
| cursor | `cursor`, `search` | `pages.next.starting_after` (in the JSON body for a search) |
| next URL | `activity_logs` | `pages.next`, an absolute URL (or a cursor object) |
| page number | `numbered` | `page` + 1 until `total_pages` |

Each yields whole `Page`s as they arrive. Every listing but the full one stops on a repeated
cursor and on more pages than its first page's counts allow (page_bound.py).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from iru_pipeline.intercom_client.errors import IntercomResponseError
from iru_pipeline.intercom_client.page import Page, SearchPage, cursor_of, items_of, search_decoder, total_of
from iru_pipeline.intercom_client.page_bound import PageBound
from iru_pipeline.intercom_client.send import Sender

MAX_PER_PAGE = 150  # "the max amount for any API is 150" (docs/intercom-api.md#pagination-four-kinds)
ACTIVITY_LOGS_PATH = "/admins/activity_logs"


class Paginator:
    """Pages the listings of one regional workspace through its `Sender`.

    `host` is the configured base URL's host and `base_path` its path; `intercom_host` is
    Intercom's own host for the region, whose `next` URLs are followed through the base URL."""

    def __init__(self, sender: Sender, *, region: str, host: str, base_path: str,
                 intercom_host: str | None) -> None:
        self._sender = sender
        self.region, self.host, self.base_path, self.intercom_host = region, host, base_path, intercom_host

    def _get(self, path: str, params: Mapping[str, Any] | None, resource: str | None) -> dict[str, Any]:
        body: dict[str, Any] = self._sender.send("GET", path, params=params, resource=resource)
        return body

    def _where(self, endpoint: str, resource: str | None) -> dict[str, Any]:
        return {"region": self.region, "endpoint": endpoint, "resource": resource}

    def full(self, path: str, item_key: str, params: Mapping[str, Any] | None = None, *,
             resource: str | None = None) -> Iterator[Page]:
        """A whole collection in one answer (admins, teams, tags, data attributes)."""
        body = self._get(path, params, resource)
        yield Page(items_of(body, item_key, self._where(f"GET {path}", resource)), 1, total_of(body), body)

    def cursor(self, path: str, item_key: str, params: Mapping[str, Any] | None = None, *,
               per_page: int = MAX_PER_PAGE, resource: str | None = None) -> Iterator[Page]:
        """GET list with `starting_after` from `pages.next.starting_after` (contacts)."""
        query = dict(params or {}, per_page=min(per_page, MAX_PER_PAGE))
        endpoint = f"GET {path}"
        seen: set[str] = set()
        bound = PageBound(self.region, endpoint, resource, query["per_page"])
        number = 0
        while True:
            number += 1
            body = self._get(path, query, resource)
            yield Page(items_of(body, item_key, self._where(endpoint, resource)), number, total_of(body), body)
            cursor = cursor_of(body.get("pages"))
            if cursor is None:
                return
            bound.check(number, body)
            self._guard_repeat(cursor, seen, endpoint, resource)
            query["starting_after"] = cursor

    def search(self, path: str, item_key: str, query: Mapping[str, Any], *,
               sort: Mapping[str, str] | None = None, per_page: int = MAX_PER_PAGE,
               resource: str | None = None) -> Generator[Page, None, None]:
        """POST search; pagination lives in the JSON body, never the query string
        (docs/intercom-api.md#pagination-four-kinds:
        a query-string `starting_after` is ignored and page 1 comes back forever)."""
        size = min(per_page, MAX_PER_PAGE)
        body: dict[str, Any] = {"query": dict(query), "pagination": {"per_page": size}}
        if sort:
            body["sort"] = dict(sort)
        endpoint = f"POST {path}"
        where = self._where(endpoint, resource)
        seen: set[str] = set()
        bound = PageBound(self.region, endpoint, resource, size)
        decode = search_decoder(item_key)
        number = 0
        while True:
            number += 1
            result = self._sender.send("POST", path, body=body, resource=resource, decode=decode)
            if isinstance(result, SearchPage):
                page = Page(None, number, result.total_count, result.envelope(), result.records_json, where=where)
                cursor = result.next_cursor
            else:  # a shape the envelope decoder left to the full one
                page = Page(items_of(result, item_key, where), number, total_of(result), result)
                cursor = cursor_of(result.get("pages"))
            yield page
            if cursor is None:
                return
            bound.check(number, page.body)
            self._guard_repeat(cursor, seen, endpoint, resource)
            body["pagination"] = {"per_page": size, "starting_after": cursor}

    def activity_logs(self, created_at_after: int, created_at_before: int | None = None, *,
                      per_page: int | None = None, resource: str | None = "activity_logs") -> Iterator[Page]:
        """`GET /admins/activity_logs`, newest first. `pages.next` is a full URL on the live API
        and a cursor object in the spec (docs/intercom-api.md#pagination-four-kinds): both are followed."""
        path = ACTIVITY_LOGS_PATH
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
            body = self._get(path, params, resource)
            yield Page(items_of(body, "activity_logs", self._where(f"GET {path}", resource)), number,
                       total_of(body), body)
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
            self._guard_repeat(key, seen, f"GET {ACTIVITY_LOGS_PATH}", resource)

    def numbered(self, path: str, item_key: str, params: Mapping[str, Any] | None = None, *,
                 per_page: int = 60, resource: str | None = None, ahead: int = 1) -> Iterator[Page]:
        """Page-numbered listing (`/conversations/deleted`): `page=N` until `pages.next` is null
        or `total_pages` is reached, yielded in page order.

        With `ahead` > 1, up to that many of the next pages are requested at once (28 pages
        one after another took 7.8 s at 250 ms). The list is numbered newest first and grows at
        its head, so a page answered before the page in front of it was answered can miss the
        records pushed across their boundary meanwhile. Each answer's `total_count` shows
        that: a page whose count is below the page before it is requested again, and the pages
        fetched ahead of it are dropped. Re-reading can repeat a record, never skip one.
        Without a count nothing is read ahead."""
        query = dict(params or {}, per_page=per_page)
        endpoint = f"GET {path}"
        where = self._where(endpoint, resource)
        bound = PageBound(self.region, endpoint, resource, per_page)

        def fetch(number: int) -> dict[str, Any]:
            return self._get(path, dict(query, page=number), resource)

        pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="intercom-numbered") if ahead > 1 else None
        fetched: dict[int, Future[dict[str, Any]]] = {}
        try:
            number, before = 0, None
            while True:
                number += 1
                early = fetched.pop(number, None)
                body = early.result() if early is not None else fetch(number)
                total = total_of(body)
                if early is not None and (total is None or before is None or total < before):
                    for ahead_page in fetched.values():
                        ahead_page.cancel()
                    fetched.clear()
                    body = fetch(number)
                    total = total_of(body)
                items = items_of(body, item_key, where)
                yield Page(items, number, total, body)
                pages = got if isinstance(got := body.get("pages"), dict) else {}
                total_pages = pages.get("total_pages")
                if not items or not pages.get("next") or (isinstance(total_pages, int) and number >= total_pages):
                    return
                bound.check(number, body)
                before = total
                if pool is not None and total is not None and isinstance(total_pages, int):
                    for later in range(number + 1, min(total_pages, number + ahead) + 1):
                        if later not in fetched:
                            fetched[later] = pool.submit(fetch, later)
        finally:
            for ahead_page in fetched.values():
                ahead_page.cancel()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _follow_url(self, url: str, endpoint: str, resource: str | None) -> tuple[str, dict[str, Any]]:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise IntercomResponseError(
                "pagination returned a malformed next URL", **self._where(endpoint, resource)) from None
        path = parts.path or "/"
        if not parts.netloc or parts.netloc == self.host:
            if self.base_path and path.startswith(self.base_path + "/"):
                path = path[len(self.base_path):]  # relative to the base URL, which has the prefix
        elif parts.netloc != self.intercom_host or parts.scheme != "https":
            # Never send the token to another host than the configured one or Intercom's own.
            raise IntercomResponseError(
                f"pagination pointed to another host ({parts.netloc}) than {self.host}; refusing to send the "
                "token there", **self._where(endpoint, resource))
        # else: Intercom's own host, as seen behind a proxy: followed through the base URL.
        return path, dict(parse_qsl(parts.query, keep_blank_values=True))

    def _guard_repeat(self, cursor: str, seen: set[str], endpoint: str, resource: str | None) -> None:
        if cursor in seen:
            raise IntercomResponseError(
                "Intercom returned a pagination cursor it had already returned; stopped instead of looping forever",
                **self._where(endpoint, resource))
        seen.add(cursor)
