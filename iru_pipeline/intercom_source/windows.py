"""Parallel windowed search: split a sync into independent time windows and page through
several at once.

Intercom pages each search result one cursor at a time, so a single chain is bounded by
round-trip latency, far below the rate limit. Windows are independent searches, so they can
run concurrently; the client's shared RateLimiter keeps the total within the workspace's
window. Contact search matches whole days in the workspace time zone (docs/intercom-api.md#search-semantics), so contact
windows are whole days; conversation bounds are inclusive seconds.

Plan: the first page of the whole range is fetched as usual; if its `total_count` is small
the sync simply continues on it (one chain, so a quiet incremental run costs one request;
after a cursor, contacts are read newest first there, stopping at the window's start,
because their search returns the cursor's whole day).
Otherwise the range from the oldest record on is split into windows (the range before it
stays one window), each probed with a one-row search for its count, and windows holding too
many records are split again, down to one day or second.
The last window has no upper bound, so what Intercom shows now is loaded now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iru_pipeline.intercom_client import IntercomClient, Page
from iru_pipeline.intercom_client.rate_limit import MAX_IN_FLIGHT
from iru_pipeline.intercom_records.transforms import CURSOR_SKEW_SECONDS, readable_cursor
from iru_pipeline.intercom_source.helpers import EPOCH
from iru_pipeline.intercom_source.parallel import parallel_pages

Items = list[dict[str, Any]]
FIRST_SYNC_START = int(EPOCH.timestamp())
"""Where a sync without a cursor (a first run, a full refresh) starts: no record is older."""


@dataclass(frozen=True)
class SearchSpec:
    path: str
    item_key: str
    resource: str
    field: str = "updated_at"
    whole_days: bool = False
    """Contact dates: `=` is the whole day, `>` starts the next day, `<` ends the previous."""


CONTACTS_SEARCH = SearchSpec("/contacts/search", "data", "contacts", whole_days=True)
CONVERSATIONS_SEARCH = SearchSpec("/conversations/search", "conversations", "conversations")


@dataclass(frozen=True)
class Window:
    lo: int
    hi: int | None  # exclusive; None = open-ended

    def __str__(self) -> str:
        return f"[{self.lo}, {self.hi if self.hi is not None else '...'})"


def window_query(spec: SearchSpec, window: Window) -> dict[str, Any]:
    f = spec.field
    if spec.whole_days:
        # lo and hi are day starts; a second into the day names the day.
        on_lo = {"field": f, "operator": "=", "value": window.lo + 1}
        after_lo = {"field": f, "operator": ">", "value": window.lo + 1}
        if window.hi is None:
            return {"operator": "OR", "value": [on_lo, after_lo]}
        # (= lo OR > lo) AND < hi, written as an OR of AND groups: the 2.16 request schema
        # lets a `value` array hold filters or groups, never both.
        before_hi = {"field": f, "operator": "<", "value": window.hi + 1}
        return {"operator": "OR", "value": [{"operator": "AND", "value": [on_lo, before_hi]},
                                            {"operator": "AND", "value": [after_lo, before_hi]}]}
    # Conversation bounds are inclusive (docs/intercom-api.md#search-semantics): [lo, hi) is `> lo` and `< hi - 1`.
    lower = {"field": f, "operator": ">", "value": window.lo}
    if window.hi is None:
        return lower
    return {"operator": "AND", "value": [lower, {"field": f, "operator": "<", "value": window.hi - 1}]}


class DayClock:
    """Day boundaries in a workspace's time zone."""

    def __init__(self, tz_name: str) -> None:
        try:
            self.tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            self.tz = ZoneInfo("UTC")

    def day_start(self, seconds: int) -> int:
        local = datetime.fromtimestamp(seconds, self.tz)
        return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())

    def add_days(self, day_start: int, days: int) -> int:
        local = datetime.fromtimestamp(day_start, self.tz) + timedelta(days=days)
        return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())

    def days_between(self, a: int, b: int) -> int:
        return max(0, round((b - a) / 86400))


def windowed_search(
    client: IntercomClient,
    spec: SearchSpec,
    start: int,
    now: int,
    *,
    tz: str = "UTC",
    workers: int = MAX_IN_FLIGHT,
    split_above: int = 3000,
    per_page: int = 150,
    on_plan: Callable[[list[Window], int], None] | None = None,
    on_split: Callable[[int, Any], None] | None = None,
) -> Iterator[Page]:
    """All records with `spec.field` >= `start` (contacts: possibly more of `start`'s day), as
    the API's pages; windows are fetched concurrently, each sorted ascending. No order
    across pages is promised. `on_split(total, newest)` is called as soon as the sync is known
    to be split (before the windows are planned) with the newest record's cursor value when it
    is known (contacts after a cursor are read newest first; else None), `on_plan(windows, total)` once
    the windows are planned."""
    days = DayClock(tz)
    lo = days.day_start(start) if spec.whole_days else max(0, start)
    split = _Split()
    yield from _one_chain(client, spec, Window(lo, None), start, now, split,
                          small_above=split_above if workers > 1 else None, per_page=per_page)
    if split.total is None:
        return
    total, newest = split.total, split.newest
    if on_split:
        on_split(total, newest)
    sort = {"field": spec.field, "order": "ascending"}
    # Planned for the requests in flight that the rate limit and the response times measured
    # so far call for; `workers` threads page through them, and the limiter lets as many
    # requests out as its (moving) target allows.
    planned = max(2, min(workers, client.limiter.in_flight_target()))
    oldest = split.oldest if split.read_oldest_first else _oldest(client, spec, Window(lo, None), per_page)
    floor = _split_floor(spec, lo, now, oldest, days)
    windows = plan_windows(client, spec, floor, now, total, planned, days, per_page)
    if floor > lo:
        # Counts and the oldest record come from a lagging index: the range before the
        # oldest record is still read, as one window (usually a single empty page).
        windows.append(Window(lo, floor))
    if on_plan:
        on_plan(windows, total)

    def job(window: Window) -> Iterator[Page]:
        yield from client.iter_search(spec.path, spec.item_key, window_query(spec, window), sort=sort,
                                      per_page=per_page, resource=spec.resource)

    yield from parallel_pages([partial(job, w) for w in windows], workers)


@dataclass
class _Split:
    """Set by `_one_chain` when the sync is too large for one chain."""

    total: int | None = None
    newest: Any = None
    oldest: Any = None
    """The oldest record's cursor value when the first page was read oldest first."""
    read_oldest_first: bool = False


def _one_chain(client: IntercomClient, spec: SearchSpec, whole: Window, start: int, now: int, split: _Split, *,
               small_above: int | None, per_page: int) -> Iterator[Page]:
    """The sync as one chain of pages when it is small (or `small_above` is None: one worker);
    otherwise nothing is yielded and `split` says how large it is.

    A day-granular search (contacts) returns the cursor's whole day: after a cursor it is read
    newest first and stops at the first record older than `start`, so a quiet run costs one
    request however busy that day was. Other searches, and a sync from the beginning (no
    record is older than its start, so there is nothing to stop at), are read oldest first:
    the first page then names the oldest record, where a large sync's split starts."""
    newest_first = spec.whole_days and start > FIRST_SYNC_START
    order = "descending" if newest_first else "ascending"
    chain = client.iter_search(spec.path, spec.item_key, window_query(spec, whole),
                               sort={"field": spec.field, "order": order}, per_page=per_page,
                               resource=spec.resource)
    first = next(chain, None)
    if first is None:
        return
    total = first.total_count or 0
    not_after = now + CURSOR_SKEW_SECONDS
    if newest_first and _reaches_below(first.items, spec.field, start, not_after):
        yield first
        return
    shortest = 2 * 86400 if spec.whole_days else 2  # nothing to split: under two days or seconds
    if small_above is None or total <= small_above or (now - whole.lo) < shortest:
        yield first
        yield from (_until_below(chain, spec.field, start, not_after) if newest_first else chain)
        return
    chain.close()  # the first page is re-read by the window that holds it
    split.total = total
    split.read_oldest_first = not newest_first
    edge = first.items[0].get(spec.field) if first.items else None
    split.newest, split.oldest = (edge, None) if newest_first else (None, edge)


def _oldest(client: IntercomClient, spec: SearchSpec, whole: Window, per_page: int) -> Any:
    """The oldest record's cursor value in `whole`, from a one-row search sorted ascending
    (after a cursor, the first page of a day-granular search is read newest first)."""
    body = client.post(spec.path, {"query": window_query(spec, whole), "pagination": {"per_page": 1},
                                   "sort": {"field": spec.field, "order": "ascending"}},
                       resource=spec.resource)
    items = body.get(spec.item_key)
    first = items[0] if isinstance(items, list) and items else None
    return first.get(spec.field) if isinstance(first, dict) else None


def _split_floor(spec: SearchSpec, lo: int, now: int, oldest: Any, days: DayClock) -> int:
    """Where the windows' even split starts: the oldest record's second (contacts: its day),
    when it is readable and after `lo`; else `lo`. A full sync starts at the epoch while
    its records sit in the last few years: split from `lo`, most probed windows were empty
    and the windows holding records were cut evenly, so a dense piece was estimated small,
    started last and paged alone at the end (docs/ingestion.md#windows-paging-several-searches-at-once)."""
    stamp = readable_cursor(oldest, now)
    if stamp is None:
        return lo
    floor = days.day_start(int(stamp)) if spec.whole_days else int(stamp)
    return floor if lo < floor <= now else lo


def _until_below(pages: Iterator[Page], field: str, start: int, not_after: float) -> Iterator[Page]:
    """Newest-first pages up to the first that reaches below `start`."""
    for page in pages:
        yield page
        if _reaches_below(page.items, field, start, not_after):
            return


def _reaches_below(items: Items, field: str, start: int, not_after: float) -> bool:
    """True when the (newest-first) page already holds a record older than `start`, so the
    pages after it hold only older ones. A record whose value cannot be read (missing, not a
    time, out of range) decides nothing: it is loaded with its page and the paging goes on
    until a readable value settles it."""
    if not items:
        return True
    for item in reversed(items):
        stamp = readable_cursor(item.get(field), not_after)
        if stamp is not None:
            return stamp < start
    return False


def plan_windows(
    client: IntercomClient, spec: SearchSpec, lo: int, now: int, total: int, workers: int, days: DayClock,
    per_page: int = 150,
) -> list[Window]:
    """Split [lo, now) plus an open tail into windows of about total/(2*workers) records, and
    at least four pages each.

    Counts only guide the split: they come from a search index that lags and may disagree
    with the rows (a test pins a lying `total_count`), so no window is ever dropped for
    looking empty (adjacent small windows are merged instead) and the number of windows,
    hence of probes, is bounded. Each probe is a call the rate limit counts, and with 64
    requests in flight, probing every cut piece again cost 400 calls for 667 pages at 100k
    contacts (`make bench`): so only the first, even split (workers/2 windows) is probed, and
    a window holding too many is cut in even pieces whose counts are estimated from its own."""
    target = max(4 * per_page, total // (2 * workers))
    max_windows = 8 * workers
    bounds = _even_bounds(spec, lo, now, max(2, workers // 2), days)
    windows = [Window(a, b) for a, b in zip(bounds, bounds[1:], strict=False)] + [Window(bounds[-1], None)]
    probed = dict(zip(windows, _probe_counts(client, spec, windows, workers), strict=True))
    room = max_windows - len(probed)
    counts: dict[Window, int] = {}
    for window, count in sorted(probed.items(), key=lambda wc: -wc[1]):
        cut = None
        if count > target and window.hi is not None and room > 0:
            cut = _cut(spec, window, min(-(-count // target), room + 1), days)
        if not cut:
            counts[window] = count
            continue
        room -= len(cut) - 1
        counts.update((piece, -(-count // len(cut))) for piece in cut)
    ordered = sorted(counts.items(), key=lambda wc: wc[0].lo)
    merged: list[tuple[Window, int]] = []
    for window, count in ordered:
        count = max(0, count)
        if merged and merged[-1][1] + count <= target:
            prev, prev_count = merged.pop()
            window, count = Window(prev.lo, window.hi), prev_count + count
        merged.append((window, count))
    # Largest first: long chains start early, short ones fill the gaps.
    merged.sort(key=lambda wc: -wc[1])
    return [w for w, _ in merged]


def _even_bounds(spec: SearchSpec, lo: int, now: int, pieces: int, days: DayClock) -> list[int]:
    if spec.whole_days:
        n_days = days.days_between(lo, days.day_start(now))
        step = max(1, n_days // pieces)
        bounds = [days.add_days(lo, i * step) for i in range(0, n_days // step + 1)]
        # Up to today's start: the open tail (which cannot be cut) holds one day, not a step.
        return sorted(set(b for b in bounds if b <= days.day_start(now)) | {days.day_start(now)})
    step = max(1, (now - lo) // pieces)
    return sorted(set(range(lo, now + 1, step)) | {now})


def _cut(spec: SearchSpec, window: Window, pieces: int, days: DayClock) -> list[Window] | None:
    """`window` in up to `pieces` windows of even length (whole days for contacts); None when
    it cannot be cut (one day or second)."""
    assert window.hi is not None
    span = days.days_between(window.lo, window.hi) if spec.whole_days else window.hi - window.lo
    pieces = min(pieces, span)
    if pieces < 2:
        return None
    step = -(-span // pieces)
    starts = range(0, span, step)
    bounds = [days.add_days(window.lo, i) if spec.whole_days else window.lo + i for i in starts] + [window.hi]
    return [Window(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def _probe_counts(client: IntercomClient, spec: SearchSpec, windows: list[Window], workers: int) -> list[int]:
    def count(window: Window) -> int:
        body = client.post(spec.path, {"query": window_query(spec, window), "pagination": {"per_page": 1}},
                           resource=spec.resource)
        total = body.get("total_count")
        return total if isinstance(total, int) else 1_000_000  # unknown: treat as large

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(count, windows))
