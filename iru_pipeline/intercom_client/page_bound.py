"""How many pages one listing may take before the client stops it.

Only an identical repeated cursor shows a loop directly; a server that answers every page
with a new cursor would otherwise be paged for ever, with the rows (and the cursors seen)
piling up. The first page's own counts (`total_count`, or `pages.total_pages`) say how many
pages the listing has; twice that plus some slack covers records added while paging and
counts that lag (search counts are approximate). A listing that gives no count gets a fixed,
large bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from iru_pipeline.intercom_client.errors import IntercomResponseError

SLACK_PAGES = 20
"""Pages allowed beyond twice the count: a count of 0 still lets 3,000 records through."""
PAGES_WITHOUT_COUNT = 100_000
"""The bound of a listing that states no count (15 million records at 150 a page)."""


class PageBound:
    """The page budget of one listing, fixed by its first page's counts."""

    def __init__(self, region: str, endpoint: str, resource: str | None, per_page: int) -> None:
        self.region, self.endpoint, self.resource = region, endpoint, resource
        self.per_page = max(1, per_page)
        self.limit: int | None = None
        self.basis = ""

    def check(self, number: int, body: Mapping[str, Any]) -> None:
        """Called after page `number` (1-based) when the server offers another page: raises
        once the listing has taken as many pages as its counts allow."""
        if self.limit is None:
            self.limit, self.basis = self._limit(body)
        if number >= self.limit:
            raise IntercomResponseError(
                f"pagination did not end: {number} pages read where {self.basis} allows at most {self.limit}; "
                "stopped instead of following new cursors for ever",
                region=self.region, endpoint=self.endpoint, resource=self.resource,
            )

    def _limit(self, body: Mapping[str, Any]) -> tuple[int, str]:
        total = _count(body.get("total_count"))
        if total is not None:
            pages = math.ceil(total / self.per_page)
            return 2 * pages + SLACK_PAGES, f"its total_count ({total} at {self.per_page} a page)"
        paging = body.get("pages")
        total_pages = _count(paging.get("total_pages")) if isinstance(paging, Mapping) else None
        if total_pages is not None:
            return 2 * total_pages + SLACK_PAGES, f"its total_pages ({total_pages})"
        return PAGES_WITHOUT_COUNT, "a listing without a count"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
