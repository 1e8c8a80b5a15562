"""What a listing yields: `Page`, and the typed result of a search answer (`SearchPage`).

A search page's records are most of its bytes (150 contacts are ~330 KB) and their decoding
most of its CPU, while paging needs only `total_count` and `pages`. `search_decoder` therefore
reads the envelope and leaves the records as JSON bytes, for `Page.items` to decode on first use
or for the table workers to decode in parallel (intercom_records/table_workers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from iru_pipeline.intercom_client.classify import loads
from iru_pipeline.intercom_client.errors import IntercomResponseError


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
    """The records (objects) of a JSON array that `search_decoder` already checked."""
    return [i for i in orjson.loads(records_json) if isinstance(i, dict)]


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A search answer as `search_decoder` read it: the records still JSON, and what paging needs."""

    records_json: bytes
    """The page's records: a JSON array, checked to be valid JSON, not yet decoded."""
    total_count: int | None
    next_cursor: str | None
    """`pages.next.starting_after`, or None on the last page."""
    pages: Any
    """The `pages` object as sent, for the page bound's `total_pages`."""

    def envelope(self) -> dict[str, Any]:
        """The answer without its records, as `Page.body` and the page bound read it."""
        return {"total_count": self.total_count, "pages": self.pages}


def search_decoder(item_key: str) -> Callable[[bytes], Any]:
    """Decodes a search answer into a `SearchPage` without building its records.

    msgspec skips over the records (checking that they are valid JSON). Any other shape goes
    through the full decoder (`classify.loads`), so its errors are the usual ones."""
    fields: list[tuple[str, Any, Any]] = [("total_count", Any, None), ("pages", Any, None),
                                          (item_key, msgspec.Raw, msgspec.Raw(b"null"))]
    if item_key != "data":
        fields.append(("data", msgspec.Raw, msgspec.Raw(b"null")))
    envelope = msgspec.json.Decoder(msgspec.defstruct("SearchEnvelope", fields))

    def decode(content: bytes) -> Any:
        try:
            page: Any = envelope.decode(content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return loads(content)
        records = bytes(getattr(page, item_key))
        if records == b"null" and item_key != "data":
            records = bytes(page.data)  # some endpoints answer `data` where the spec names another key
        if records[:1] != b"[":
            return loads(content)
        return SearchPage(records, total_of({"total_count": page.total_count}), cursor_of(page.pages), page.pages)

    return decode


def items_of(body: Mapping[str, Any], key: str, where: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of a decoded answer under `key` (or `data`); `where` is the error's context."""
    items = body.get(key)
    if items is None and key != "data" and isinstance(body.get("data"), list):
        items = body["data"]  # some endpoints answer `data` where the spec names another key
    if not isinstance(items, list):
        raise IntercomResponseError(
            f"response has no {key!r} list (got keys: {', '.join(sorted(map(str, body))[:8]) or 'none'})", **where)
    return [i for i in items if isinstance(i, dict)]


def total_of(body: Mapping[str, Any]) -> int | None:
    total = body.get("total_count")
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def cursor_of(pages: Any) -> str | None:
    """`pages.next.starting_after` of a cursor or search listing; cursors are opaque, never parsed."""
    nxt = pages.get("next") if isinstance(pages, dict) else None
    if isinstance(nxt, dict):
        cursor = nxt.get("starting_after")
        return str(cursor) if cursor else None
    return None
