"""Run-time helpers of the Intercom source: the workspace context, the overlap filter and the
sync report. Nothing here knows Dagster."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from iru_pipeline.intercom_client import IntercomAuthError, IntercomClient, IntercomError
from iru_pipeline.intercom_records.pii import Pseudonymizer
from iru_pipeline.intercom_records.table_workers import TableWorkers
from iru_pipeline.intercom_records.transforms import (
    CURSOR_MIN_SECONDS,
    CURSOR_SKEW_SECONDS,
    content_hash,
    cursor_kind,
    readable_cursor,
    sid,
)
from iru_pipeline.intercom_source.settings import EXTRACT_WORKERS, WINDOW_SPLIT_ABOVE

EPOCH = datetime(1970, 1, 2, tzinfo=UTC)


@dataclass
class ResourceReport:
    """What happened to one resource in one run: becomes a row of `intercom.sync_results`."""

    resource: str
    status: str = "pending"  # ok | partial | skipped | failed | pending
    reason: str | None = None
    rows: int = 0
    pages: int = 0
    unchanged_skipped: int = 0
    deleted: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    total_count_reported: int | None = None
    error_code: str | None = None
    status_code: int | None = None
    request_id: str | None = None
    undecided: int = 0
    """Records loaded whose cursor value could not be read: they moved no cursor."""
    first_undecided: str | None = None

    def cannot_place(self, record_id: Any, field: str, value: Any, not_after: float) -> None:
        """A record whose `field` cannot place it in time: it is loaded, and the resource ends
        `partial` naming it (its id, the field and the value's type, never the value)."""
        self.undecided += 1
        if self.first_undecided is None:
            self.first_undecided = f"id {str(record_id)[:64]}, {field} {cursor_kind(value, not_after)}"

    newest_in_range: float = 0.0
    """The newest readable cursor value loaded (where a cursor may be held back to)."""

    def check_cursors(self, keys: list[str], cursors: list[Any], field: str, not_after: float) -> None:
        """`cannot_place` for each record of a page whose cursor value is unreadable."""
        newest = self.newest_in_range
        for n, value in enumerate(cursors):
            if type(value) is int and CURSOR_MIN_SECONDS <= value <= not_after:
                newest = value if value > newest else newest
                continue
            stamp = readable_cursor(value, not_after)
            if stamp is None:
                self.cannot_place(keys[n], field, value, not_after)
            elif stamp > newest:
                newest = stamp
        self.newest_in_range = newest


@dataclass
class SyncReport:
    """Shared by the resources of one workspace's run; read by the caller after the run."""

    region: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    resources: dict[str, ResourceReport] = field(default_factory=dict)
    reconciled: bool = False

    def resource(self, name: str) -> ResourceReport:
        return self.resources.setdefault(name, ResourceReport(name))


class WorkspaceContext:
    """What every resource of one workspace shares: the client, `/me`, the pseudonymiser.

    `/me` is fetched lazily, once, on first use (never when the source is merely built, so
    Dagster can derive asset specs without network access).
    """

    def __init__(
        self,
        region: str,
        client: IntercomClient | None,
        pii_key: Any = None,
        internal_domains: Iterable[str] = (),
        report: SyncReport | None = None,
        full_refresh: bool = False,
        reconcile: bool | None = None,
        known_contact_ids: Any = None,
        now: Any = time.time,
        workers: int = EXTRACT_WORKERS,
        split_above: int = WINDOW_SPLIT_ABOVE,
        table_workers_above: int | None = None,
        table_processes: int | None = None,
        me: dict[str, Any] | None = None,
        done_level: int = logging.INFO,
    ) -> None:
        self.region = region
        self.done_level = done_level
        """Level of each resource's "done" progress line (DEBUG in a run of many workspaces,
        where one line per workspace says it instead)."""
        self.label = getattr(client, "workspace", None) or region
        """The workspace's configured name, which progress lines are prefixed with."""
        self._client = client
        self._pii_key = pii_key
        self.internal_domains = tuple(internal_domains)
        self.report = report or SyncReport(region)
        self.full_refresh = full_refresh
        self.reconcile = reconcile
        self.known_contact_ids = known_contact_ids
        self.now = now
        self.workers = max(1, workers)
        self.split_above = split_above
        self.table_workers_above = table_workers_above
        self.table_processes = table_processes
        self._lock = threading.RLock()
        self._me: dict[str, Any] | None = me
        """`/me` if the caller read it already (to check the workspace before loading)."""
        self._pseudo: Pseudonymizer | None = None
        self._cache: dict[str, Any] = {}
        self.run_started_at = int(now())
        self.cursor_not_after = self.run_started_at + CURSOR_SKEW_SECONDS
        """Later cursor values are out of range (`readable_cursor`)."""

    @property
    def client(self) -> IntercomClient:
        if self._client is None:
            raise RuntimeError(f"region {self.region}: the source was built without a client")
        return self._client

    @property
    def me(self) -> dict[str, Any]:
        with self._lock:
            if self._me is None:
                self._me = self.client.me()  # validated: `app.id_code` is there
            return self._me

    @property
    def workspace_id(self) -> str:
        app = got if isinstance(got := self.me.get("app"), dict) else {}
        workspace_id = sid(app.get("id_code"))
        assert workspace_id is not None  # me() refuses a /me without app.id_code
        return workspace_id

    @property
    def timezone(self) -> str:
        app = got if isinstance(got := self.me.get("app"), dict) else {}
        return str(app.get("timezone") or "UTC")

    def table_workers(self, spec: Any, cursor: str) -> TableWorkers:
        """Worker processes building `spec`'s tables for this workspace (see table_workers.py)."""
        key = self._pii_key.reveal() if hasattr(self._pii_key, "reveal") else self._pii_key
        pseudo = self.pseudonymizer if key is not None and spec.name == "contacts" else None
        return TableWorkers(spec, cursor, self.region, self.workspace_id, pii_key=key if pseudo else None,
                            internal_domains=self.internal_domains,
                            known_clear_emails=pseudo.known_clear_emails if pseudo else (),
                            processes=self.table_processes)

    @property
    def pseudonymizer(self) -> Pseudonymizer:
        with self._lock:
            if self._pseudo is None:
                if self._pii_key is None:
                    raise RuntimeError("no PII key: set IRU_PII_KEY")
                key = self._pii_key.reveal() if hasattr(self._pii_key, "reveal") else self._pii_key
                # Admin emails stay in clear inside activity-log text (admins are identified on purpose).
                try:
                    admins = self.cached("admins",
                        lambda: self.client.iter_full("/admins", "admins", resource="admins"))
                except IntercomAuthError:
                    raise
                except IntercomError:
                    # No admin list (forbidden, or failing: that is the admins resource's
                    # failure, not this one's): every e-mail in log text is pseudonymised.
                    admins = []
                emails = [a.get("email") for a in admins if isinstance(a.get("email"), str)]
                self._pseudo = Pseudonymizer(key, self.workspace_id, self.internal_domains, emails)
            return self._pseudo

    def cached(self, key: str, fetch: Any) -> Any:
        """Fetch once per run and share (e.g. `/teams` feeds `teams` and `team_memberships`)."""
        with self._lock:
            if key not in self._cache:
                result = fetch()
                # Full lists arrive as one page; keep the items.
                self._cache[key] = ([i for page in result for i in page.items]
                                    if not isinstance(result, (list, dict)) else result)
            return self._cache[key]


_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Collect cyclic garbage less often while pages stream through.

    Decoded pages are millions of short-lived, acyclic dicts that reference counting frees;
    with the default thresholds the cyclic collector runs every 700 allocations and rescans
    everything the process holds (dlt, Dagster), which cost about 30% of a large sync's CPU
    (measured by `make bench`). What exists now is frozen out of those scans and the
    thresholds raised, until the last sync using this ends."""
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_saved)
                gc.unfreeze()


class OverlapFilter:
    """Skips records of the overlap window that were already loaded unchanged.

    Why not dlt's own boundary dedupe: each window starts `OVERLAP_SECONDS` before the cursor
    (Intercom's search index lags, docs/intercom-api.md#search-semantics), and dlt's incremental `lag` turns its dedupe
    off, so every quiet run would reload the whole overlap. Its boundary dedupe alone (no lag)
    would drop late-indexed rows that sit before the cursor. This filter keeps a content hash
    per id for records inside the overlap, in the resource's dlt state, so it is committed
    atomically with the load: unchanged records are skipped, late or changed ones pass.

    It works on raw API records (before any transform), or on their ids, cursor values and
    hashes computed elsewhere (table_workers.py). Hashing every record of a large sync would
    cost seconds per million, so new records are only remembered while they are within the
    overlap of the newest record seen, and hashed when they settle.
    """

    PENDING_LIMIT = 20_000

    def __init__(
        self, state: dict[str, Any], cursor: str, overlap_seconds: int,
        key: str = "overlap_hashes", reset: bool = False, not_after: float = float("inf"),
    ) -> None:
        if reset:  # a full refresh re-loads every record
            state[key] = {}
        self._recent: dict[str, list[Any]] = state.setdefault(key, {})
        self._pending: dict[str, tuple[float, Callable[[], str | None]]] = {}
        self._cursor = cursor
        self._overlap = overlap_seconds
        # A record whose cursor value is unreadable or out of range counts as 0: loaded, never
        # skipped or remembered, and it never moves `max_seen` (which may become a cursor).
        self._not_after = not_after
        self.max_seen: float = max((v[0] for v in self._recent.values() if v[0] <= not_after), default=0.0)
        self.skipped = 0
        self._lock = threading.Lock()

    @property
    def hash_floor(self) -> float:
        """Records older than this need no content hash now: they are neither within the
        overlap of the newest record seen so far nor, unchanged, among the remembered ones."""
        return self.max_seen - self._overlap

    def saw(self, cursor: Any) -> None:
        """The cursor value of a record this run loads, before its turn (the newest contact is
        read first): the records more than the overlap older than it need no hash."""
        stamp = readable_cursor(cursor, self._not_after)
        if stamp is not None:
            with self._lock:
                self.max_seen = max(self.max_seen, stamp)

    def keep(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records to load, in their order."""
        mask = self.keep_rows([str(i.get("id")) for i in items], [i.get(self._cursor) for i in items],
                              lambda n: content_hash(items[n]))
        return [item for item, k in zip(items, mask, strict=True) if k]

    def keep_rows(self, keys: list[str], cursors: list[Any], digest: Callable[[int], str | None]) -> list[bool]:
        """Which records to load, given their ids, cursor values and content hashes (asked for
        on demand, by position). A record without a hash (None) is loaded, never skipped."""
        mask: list[bool] = []
        stamps = [readable_cursor(c, self._not_after) or 0.0 for c in cursors]
        with self._lock:
            if max(stamps, default=0.0) < self.max_seen - self._overlap and self._recent.keys().isdisjoint(keys):
                return [True] * len(keys)  # most pages of a large sync: nothing to skip or remember
            for n, (key, stamp) in enumerate(zip(keys, stamps, strict=True)):
                previous = self._recent.get(key)
                if previous is not None:
                    value = digest(n)
                    if value is not None and previous[1] == value:
                        self.skipped += 1
                        mask.append(False)
                        continue
                    if value is not None:
                        self._recent[key] = [stamp, value]
                elif stamp >= self.max_seen - self._overlap:
                    self._pending[key] = (stamp, partial(digest, n))
                mask.append(True)
                if stamp > self.max_seen:
                    self.max_seen = stamp
            if len(self._pending) > self.PENDING_LIMIT:
                self._settle()
        return mask

    def _settle(self) -> None:
        floor = self.max_seen - self._overlap
        for key, (stamp, digest) in self._pending.items():
            if stamp >= floor and (value := digest()) is not None:
                self._recent[key] = [stamp, value]
        self._pending.clear()

    def prune(self) -> None:
        """Remember the records of the next run's overlap window, forget the rest."""
        with self._lock:
            self._settle()
            floor = self.max_seen - self._overlap - 1
            for key in [k for k, v in self._recent.items() if v[0] < floor]:
                del self._recent[key]
