"""A collection of lazily generated records plus small overlays of mutations.

Generated ("base") records live at indices [0, base_size) and are never stored. Changes go
into overlays: `overrides` (index -> current record, for updated and created records) and
`hidden` (deleted, merged or pre-deleted base indices). Memory therefore grows with the number
of mutations, not with the size of the collection or the number of requests.

Ordering facts the fast paths rely on: generated `updated_at` never decreases with the index,
and ids sort like indices, so for base records (updated_at, id) order is index order.
"""

from __future__ import annotations

import bisect
import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .encoding import encode
from .hashing import mix64
from .search import NEG_INF, POS_INF, Node, SortSpec, intersect_ranges
from .timeline import Timeline


class Factory(Protocol):
    timeline: Timeline

    def record(self, index: int, *, updated_at: int | None = None, created_at: int | None = None) -> dict[str, Any]: ...

    def index_of(self, record_id: str) -> int | None: ...


class BytesCache:
    """Encoded generated records, up to a byte budget.

    Generated records never change (changes go to overlays), so nothing is ever stale. Once
    the budget is spent the cache stops admitting: a sequential scan over a collection larger
    than the budget then still hits on the cached part instead of evicting it record by record.
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self._items: dict[int, bytes] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: int) -> bytes | None:
        return self._items.get(key)

    def put(self, key: int, value: bytes) -> None:
        if self._size + len(value) > self.limit:
            return
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._size += len(value)

    def full(self) -> bool:
        return self._size >= self.limit - 8192

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


@dataclass
class Page:
    """One page of a cursor-paginated listing."""

    indices: list[int]
    total: int
    page: int
    next_position: list[Any] | None
    """What the next cursor must encode; None on the last page."""


_Key = tuple[Any, ...]
_SORTED_CACHE_MAX_ITEMS = 50_000
"""Sorted match lists longer than this are recomputed per page rather than kept."""


def _value_key(value: Any) -> tuple[Any, ...]:
    """Total order over JSON scalars: null < numbers/booleans < strings."""
    if value is None:
        return (0,)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


class Collection:
    """Contacts or conversations of one workspace."""

    def __init__(
        self,
        factory: Factory,
        *,
        base_size: int,
        id_of: Callable[[int], str],
        relevance_key: int,
        pre_hidden: Iterable[int] = (),
        cache_bytes: int = 48 << 20,
    ) -> None:
        self.factory = factory
        self.base_size = base_size
        self.id_of = id_of
        self.next_index = base_size
        self.overrides: dict[int, dict[str, Any]] = {}
        self._override_bytes: dict[int, bytes] = {}
        self.hidden: set[int] = set(pre_hidden)
        self._hidden_base = sum(1 for i in self.hidden if i < base_size)
        self._created_live = 0
        # Base indices not served from the generator (hidden or overridden), sorted, so a
        # count over an index range is two bisects.
        self._detached: list[int] = sorted(i for i in self.hidden if i < base_size)
        self._detached_set: set[int] = set(self._detached)
        self._cache = BytesCache(cache_bytes)
        self._relevance_key = relevance_key
        self._lock = threading.RLock()
        self.version = 0
        self._sorted_cache: OrderedDict[tuple[Any, ...], tuple[list[_Key], list[int]]] = OrderedDict()
        self._count_cache: OrderedDict[tuple[Any, ...], int] = OrderedDict()

    # single records ---------------------------------------------------------------------------
    def is_live(self, index: int) -> bool:
        if index in self.hidden:
            return False
        return index < self.base_size or index in self.overrides

    def record(self, index: int) -> dict[str, Any]:
        """Current record at `index` (live or not; callers check `is_live`)."""
        override = self.overrides.get(index)
        if override is not None:
            return override
        return self.factory.record(index)

    def record_bytes(self, index: int) -> bytes:
        """The encoded record, from the overlay or the bounded cache of generated records."""
        if index in self.overrides:
            data = self._override_bytes.get(index)
            if data is None:
                data = encode(self.overrides[index])
                self._override_bytes[index] = data
            return data
        data = self._cache.get(index)
        if data is None:
            data = encode(self.factory.record(index))
            self._cache.put(index, data)
        return data

    def warm(self, limit: int | None = None) -> int:
        """Encode generated records into the cache ahead of requests (until it is full);
        returns how many were encoded."""
        done = 0
        for index in range(self.base_size if limit is None else min(limit, self.base_size)):
            if self._cache.full():
                break
            if index not in self._detached_set and self._cache.get(index) is None:
                self._cache.put(index, encode(self.factory.record(index)))
                done += 1
        return done

    def find(self, record_id: str) -> int | None:
        """Index of the live record with this id."""
        index = self.factory.index_of(record_id)
        if index is None or not self.is_live(index):
            return None
        return index

    def live_count(self) -> int:
        return self.base_size - self._hidden_base + self._created_live

    def live_indices(self, after: int = -1) -> Iterator[int]:
        """Live indices in id order, starting after `after`."""
        for index in range(max(0, after + 1), self.base_size):
            if index not in self.hidden:
                yield index
        for index in sorted(i for i in list(self.overrides) if i >= self.base_size and i > after):
            if index not in self.hidden:
                yield index

    # mutations --------------------------------------------------------------------------------
    def _detach(self, index: int) -> None:
        if index < self.base_size and index not in self._detached_set:
            self._detached_set.add(index)
            bisect.insort(self._detached, index)

    def _changed(self) -> None:
        self.version += 1
        self._sorted_cache.clear()
        self._count_cache.clear()

    def put(self, index: int, record: dict[str, Any]) -> None:
        """Store the new current version of a record (an update, or a created record)."""
        with self._lock:
            if index >= self.base_size and index not in self.overrides and index not in self.hidden:
                self._created_live += 1
            self.overrides[index] = record
            self._override_bytes.pop(index, None)
            self._detach(index)
            self.next_index = max(self.next_index, index + 1)
            self._changed()

    def editable_copy(self, index: int) -> dict[str, Any]:
        return copy.deepcopy(self.record(index))

    def hide(self, index: int) -> None:
        """Remove a record from list and search (deleted or merged away)."""
        with self._lock:
            if index in self.hidden:
                return
            if index < self.base_size:
                self._hidden_base += 1
            elif index in self.overrides:
                self._created_live -= 1
            self.hidden.add(index)
            self._detach(index)
            self._changed()

    def allocate(self) -> int:
        with self._lock:
            index = self.next_index
            self.next_index += 1
            return index

    # list endpoint ----------------------------------------------------------------------------
    def list_page(self, per_page: int, position: list[Any] | None) -> Page:
        """`GET /contacts` / `GET /conversations`: id order, cursor = last index served."""
        page_no, after = (position[0], position[1]) if position else (0, -1)
        indices: list[int] = []
        more = False
        for index in self.live_indices(after):
            if len(indices) == per_page:
                more = True
                break
            indices.append(index)
        next_position = [page_no + 1, indices[-1]] if more and indices else None
        return Page(indices, self.live_count(), page_no + 1, next_position)

    # search -----------------------------------------------------------------------------------
    def search(
        self,
        node: Node,
        sort: SortSpec | None,
        per_page: int,
        position: list[Any] | None,
        *,
        visible_until: int | None,
        query_key: str,
    ) -> Page:
        """One page of search results, sorted by `sort` (or relevance) with id as tie-breaker.

        visible_until: records created or updated after this second are not yet searchable
        (index lag, docs/intercom-api.md#search-semantics). position: what the previous page's cursor encoded.

        Sorting by `updated_at` and the default relevance order are streamed from index
        ranges (cheap at any size); sorting by another field sorts all matches once per query.
        """
        page_no = position[0] if position else 0
        after = (position[1], position[2]) if position else None
        if sort is None or sort.field == "updated_at":
            return self._search_streamed(node, sort, per_page, page_no, after, visible_until, query_key)
        return self._search_generic(node, sort, per_page, page_no, position[1:] if position else None,
                                    visible_until, query_key)

    def _base_ranges(self, node: Node, visible_until: int | None) -> tuple[list[tuple[int, int]], bool]:
        ranges, exact = node.time_ranges("updated_at")
        if visible_until is not None:
            ranges = intersect_ranges(ranges, [(NEG_INF, visible_until + 1)])
        tl = self.factory.timeline
        out: list[tuple[int, int]] = []
        for start, stop in ranges:
            lo = 0 if start <= NEG_INF else tl.first_at_or_after(start)
            hi = self.base_size if stop >= POS_INF else tl.first_at_or_after(stop)
            lo, hi = max(0, lo), min(self.base_size, hi)
            if lo < hi:
                out.append((lo, hi))
        return out, exact

    def _overlay_matches(self, node: Node, visible_until: int | None) -> list[int]:
        out = []
        for index, rec in list(self.overrides.items()):  # a snapshot: mutations may run concurrently
            if index in self.hidden:
                continue
            if visible_until is not None and (
                rec.get("updated_at", 0) > visible_until or rec.get("created_at", 0) > visible_until
            ):
                continue
            if node.matches(rec):
                out.append(index)
        return out

    def _count(self, node: Node, index_ranges: list[tuple[int, int]], exact: bool, overlay: list[int],
               cache_key: tuple[Any, ...]) -> int:
        if exact:
            base = 0
            for lo, hi in index_ranges:
                base += (hi - lo) - (bisect.bisect_left(self._detached, hi) - bisect.bisect_left(self._detached, lo))
            return base + len(overlay)
        cached = self._count_cache.get(cache_key)
        if cached is not None:
            return cached
        base = 0
        for lo, hi in index_ranges:
            for index in range(lo, hi):
                if index not in self._detached_set and node.matches(self.factory.record(index)):
                    base += 1
        total = base + len(overlay)
        with self._lock:
            self._count_cache[cache_key] = total
            while len(self._count_cache) > 16:
                self._count_cache.popitem(last=False)
        return total

    # Relevance: records fall into _RELEVANCE_CLASSES classes by index; classes come in a
    # seeded order and ascending index within a class. Deterministic, not updated_at order,
    # and enumerable from a cursor without sorting the matches.
    _RELEVANCE_CLASSES = 11

    def _class_order(self) -> list[int]:
        classes = list(range(self._RELEVANCE_CLASSES))
        classes.sort(key=lambda c: mix64(self._relevance_key ^ c))
        return classes

    def _search_streamed(self, node: Node, sort: SortSpec | None, per_page: int, page_no: int,
                         after: tuple[Any, Any] | None, visible_until: int | None, query_key: str) -> Page:
        tl = self.factory.timeline
        by_updated = sort is not None
        descending = bool(sort and sort.descending)
        index_ranges, exact = self._base_ranges(node, visible_until)
        overlay = self._overlay_matches(node, visible_until)
        total = self._count(node, index_ranges, exact, overlay, ("n", query_key, visible_until, self.version))
        order = self._class_order()
        rank = {c: r for r, c in enumerate(order)}
        classes = self._RELEVANCE_CLASSES

        def key(index: int) -> tuple[int, str]:
            if by_updated:
                updated = self.overrides[index]["updated_at"] if index in self.overrides else tl.at(index)
                return updated, self.id_of(index)
            return rank[index % classes], self.id_of(index)

        cursor_key = (after[0], after[1]) if after else None

        def candidates() -> Iterator[int]:
            """Base indices in key order after the cursor (before filtering)."""
            if by_updated:
                ranges = list(reversed(index_ranges)) if descending else index_ranges
                for lo, hi in ranges:
                    if cursor_key is not None:
                        cut = self._bisect_base(lo, hi, cursor_key)
                        if descending:
                            hi = min(hi, cut)
                            while hi > lo and (tl.at(hi - 1), self.id_of(hi - 1)) >= cursor_key:
                                hi -= 1
                        else:
                            lo = max(lo, cut)
                    yield from (range(hi - 1, lo - 1, -1) if descending else range(lo, hi))
                return
            first_rank, after_index = 0, -1
            if cursor_key is not None:
                first_rank = int(cursor_key[0])
                found = self.factory.index_of(str(cursor_key[1]))
                after_index = -1 if found is None else found
            for r in range(first_rank, classes):
                c = order[r]
                floor = after_index + 1 if r == first_rank and cursor_key is not None else 0
                for lo, hi in index_ranges:
                    start = max(lo, floor)
                    start += (c - start) % classes
                    yield from range(start, hi, classes)

        def base_stream() -> Iterator[int]:
            for index in candidates():
                if index in self._detached_set:
                    continue
                if not exact and not node.matches(self.factory.record(index)):
                    continue
                yield index

        overlay_keys = sorted(((key(i), i) for i in overlay), reverse=descending)
        if cursor_key is not None:
            overlay_keys = [(k, i) for k, i in overlay_keys if (k < cursor_key if descending else k > cursor_key)]
        picked: list[int] = []
        base_iter = base_stream()
        over_iter = iter(overlay_keys)
        next_base = next(base_iter, None)
        next_over = next(over_iter, None)
        while len(picked) <= per_page and (next_base is not None or next_over is not None):
            if next_over is None:
                take_base = True
            elif next_base is None:
                take_base = False
            else:
                base_key = key(next_base)
                take_base = base_key > next_over[0] if descending else base_key < next_over[0]
            if take_base:
                picked.append(next_base)  # type: ignore[arg-type]
                next_base = next(base_iter, None)
            else:
                picked.append(next_over[1])  # type: ignore[index]
                next_over = next(over_iter, None)
        more = len(picked) > per_page
        picked = picked[:per_page]
        next_position = [page_no + 1, *key(picked[-1])] if more and picked else None
        return Page(picked, total, page_no + 1, next_position)

    def _bisect_base(self, lo: int, hi: int, key: tuple[Any, Any]) -> int:
        """First index in [lo, hi) whose (updated_at, id) is greater than `key`."""
        tl = self.factory.timeline
        while lo < hi:
            mid = (lo + hi) // 2
            if (tl.at(mid), self.id_of(mid)) <= key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _search_generic(self, node: Node, sort: SortSpec, per_page: int, page_no: int,
                        after: list[Any] | None, visible_until: int | None, query_key: str) -> Page:
        cache_key = (query_key, sort.field, sort.descending, visible_until, self.version)
        cached = self._sorted_cache.get(cache_key)
        if cached is None:
            index_ranges, exact = self._base_ranges(node, visible_until)
            keyed: list[tuple[_Key, int]] = []
            for lo, hi in index_ranges:
                for index in range(lo, hi):
                    if index in self._detached_set:
                        continue
                    rec = self.factory.record(index)
                    if not exact and not node.matches(rec):
                        continue
                    keyed.append((self._sort_key(index, rec, sort), index))
            for index in self._overlay_matches(node, visible_until):
                keyed.append((self._sort_key(index, self.overrides[index], sort), index))
            keyed.sort(reverse=sort.descending)
            cached = ([k for k, _ in keyed], [i for _, i in keyed])
            if len(keyed) <= _SORTED_CACHE_MAX_ITEMS:
                with self._lock:
                    self._sorted_cache[cache_key] = cached
                    while len(self._sorted_cache) > 4:
                        self._sorted_cache.popitem(last=False)
        keys, indices = cached
        start = 0
        if after is not None:
            cursor_key = _restore_key(after)
            if sort.descending:
                # keys are in descending order: first position whose key is smaller than the cursor
                lo, hi = 0, len(keys)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if keys[mid] >= cursor_key:
                        lo = mid + 1
                    else:
                        hi = mid
                start = lo
            else:
                start = bisect.bisect_right(keys, cursor_key)
        picked = indices[start:start + per_page]
        more = start + per_page < len(indices)
        next_position = [page_no + 1, *_store_key(keys[start + per_page - 1])] if more and picked else None
        return Page(picked, len(indices), page_no + 1, next_position)

    def _sort_key(self, index: int, rec: dict[str, Any], sort: SortSpec) -> _Key:
        return (_value_key(sort.get(rec)), self.id_of(index))


def _store_key(key: _Key) -> list[Any]:
    """A sort key as JSON-safe cursor content."""
    return json.loads(json.dumps(key))


def _restore_key(position: list[Any]) -> _Key:
    def to_tuple(v: Any) -> Any:
        return tuple(to_tuple(x) for x in v) if isinstance(v, list) else v
    return tuple(to_tuple(v) for v in position)
