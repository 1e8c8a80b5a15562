"""The Intercom dlt source: one resource per Intercom resource, tables in schema `intercom`.

Build one source per region; each region has its own dlt pipeline, so its own cursors.

    source = intercom_source(region="eu", client=IntercomClient("eu", url, token), pii_key=key)

Credentials are not resolved by dlt's config providers: the product's contract names its own
variables (INTERCOM_ACCESS_TOKEN_<REGION>, IRU_PII_KEY), which `iru_pipeline.config` validates
before any request; the caller passes a ready client and the key here.

What is loaded is declared once, in `iru_pipeline.intercom_records.registry`. Snapshot
resources are built from their declarations (`snapshot_resource`); contacts and conversations
share one incremental-search resource (`search_resource`); deleted conversations and activity
logs have their own. Each resource runs inside `guard.guarded`; search pages become Arrow
tables in `batching.py`.

Cursors (dlt incremental, in each workspace's pipeline state, restorable from DuckDB):
- contacts, conversations: `updated_at`, via search sorted ascending, window starting
  OVERLAP_SECONDS before the cursor;
- activity_logs: `created_at`, upper bound fixed at the run's start;
- deleted_conversations: `deleted_at`.
Snapshots with history (scd2, merge_key="workspace_id"): workspaces, admins, teams,
team_memberships, tags, data_attributes, ip_allowlist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from iru_pipeline.intercom_client import IntercomClient
from iru_pipeline.intercom_records.registry import RESOURCES, Resource, RowContext, resource
from iru_pipeline.intercom_records.tables import (
    CONTACTS,
    CONTACTS_SCHEMA,
    CONVERSATIONS,
    CONVERSATIONS_SCHEMA,
    TableSpec,
    tombstones_table,
)
from iru_pipeline.intercom_records.transforms import (
    activity_log_row,
    conversation_tombstone,
    deleted_conversation_row,
    readable_cursor,
)
from iru_pipeline.intercom_source.batching import Builders, note_plan, on_split, search_tables
from iru_pipeline.intercom_source.guard import guarded, iso, window_start
from iru_pipeline.intercom_source.helpers import (
    EPOCH,
    OverlapFilter,
    SyncReport,
    WorkspaceContext,
    fewer_gc_passes,
)
from iru_pipeline.intercom_source.parallel import EarlyPages
from iru_pipeline.intercom_source.settings import (
    ACTIVITY_LOG_PAGE_SIZE,
    DATASET_NAME,
    DELETED_CONVERSATIONS_PAGE_SIZE,
    DELETED_PAGES_AHEAD,
    EXTRACT_WORKERS,
    INITIAL_ACTIVITY_LOG_DAYS,
    OVERLAP_SECONDS,
    RECONCILE_EVERY_DAYS,
    RESOURCE_NAMES,
    SEARCH_PAGE_SIZE,
    TABLE_WORKERS_ABOVE,
    WINDOW_SPLIT_ABOVE,
)
from iru_pipeline.intercom_source.windows import (
    CONTACTS_SEARCH,
    CONVERSATIONS_SEARCH,
    SearchSpec,
    windowed_search,
)

__all__ = ["DATASET_NAME", "RESOURCE_NAMES", "SyncReport", "intercom_source"]

Rows = list[dict[str, Any]]

_PII_CONTRACT = {"columns": "discard_value", "data_type": "evolve"}
"""Contacts and conversations are allow-listed; a column outside the hints is discarded."""


@dlt.source(name="intercom", max_table_nesting=0)
def intercom_source(
    region: str = "us",
    client: IntercomClient | None = None,
    pii_key: Any = None,
    internal_domains: Iterable[str] = (),
    full_refresh: bool = False,
    reconcile: bool | None = None,
    known_contact_ids: Callable[[], set[str]] | None = None,
    report: SyncReport | None = None,
    workers: int = EXTRACT_WORKERS,
    split_above: int = WINDOW_SPLIT_ABOVE,
    table_workers_above: int | None = TABLE_WORKERS_ABOVE,
    table_processes: int | None = None,
    optional_resources: Iterable[str] = (),
    me: dict[str, Any] | None = None,
    done_level: int = logging.INFO,
) -> Any:
    """All resources of one regional workspace.

    Args:
        region: `us`, `eu` or `au`; stamped on every row.
        client: the region's IntercomClient (None only to derive table schemas, e.g. Dagster specs).
        pii_key: master secret for contact pseudonyms (a `config.Secret` or str).
        internal_domains: email domains of the company (flags contacts as internal).
        full_refresh: ignore stored cursors and re-read everything (history tables keep history).
        reconcile: True forces the contact deletion sweep, False skips it, None runs it when the
            last sweep is older than RECONCILE_EVERY_DAYS.
        known_contact_ids: returns the contact ids already stored for this region (for the sweep).
        report: collects per-resource outcomes (rows, cursors, skipped resources).
        workers: upper bound of search windows of contacts and conversations fetched at once;
            within it the client's limiter sets how many requests are out (rate limit x
            measured response time).
        split_above: a search matching more records than this is split into windows.
        table_workers_above: a contacts or conversations sync of more records builds its
            tables in worker processes (None: never).
        table_processes: how many (default: one per core, at most 4).
        optional_resources: registry resources marked optional to load too (e.g.
            `ip_allowlist`, whose permission is write-capable); the others are always loaded.
        me: the workspace's `/me`, validated (`IntercomClient.me`), if the caller read it
            already; else it is read once, on first use.
        done_level: level of each resource's "done" progress line.
    """
    ctx = WorkspaceContext(
        region, client, pii_key=pii_key, internal_domains=internal_domains, report=report,
        full_refresh=full_refresh, reconcile=reconcile, known_contact_ids=known_contact_ids,
        workers=workers, split_above=split_above, table_workers_above=table_workers_above,
        table_processes=table_processes, me=me, done_level=done_level,
    )
    wanted = set(optional_resources)
    unknown = wanted - {spec.name for spec in RESOURCES if spec.optional}
    if unknown:
        raise ValueError(f"not an optional resource: {', '.join(sorted(unknown))}")
    return tuple(_RESOURCES[spec.name](ctx) for spec in RESOURCES if not spec.optional or spec.name in wanted)


def _table_hints(spec: Resource, columns: dict[str, dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """dlt's table hints from a declaration: disposition, keys, column hints."""
    return dict(name=spec.name, write_disposition=spec.write_disposition, columns=columns or spec.columns,
                **spec.keys, **extra)


# ---------------------------------------------------------------- snapshots


def snapshot_resource(spec: Resource) -> Any:
    """The dlt resource of a snapshot declaration: every record its requests return, as rows,
    in one list (scd2 retires the rows missing from it, in this region only)."""

    @dlt.resource(**_table_hints(spec))
    def snapshot(ctx: WorkspaceContext) -> Iterator[Rows]:
        yield from guarded(ctx, spec.name, _snapshot_pages(ctx, spec))

    return snapshot


def _snapshot_pages(ctx: WorkspaceContext, spec: Resource) -> Iterator[Rows]:
    assert spec.rows is not None, f"{spec.name} is not a snapshot resource"
    rows: Rows = []
    for fetch in spec.fetch:
        context = RowContext(ctx.region, ctx.workspace_id, ctx.client.host, ctx.client.api_version, fetch.model)
        for item in _records(ctx, spec.name, fetch):
            rows += spec.rows(item, context)
    yield _unique(rows) if spec.unique_ids else rows


def _records(ctx: WorkspaceContext, name: str, fetch: Any) -> list[dict[str, Any]]:
    """The records of one request, fetched once per run and shared (`Fetch.cache_key`)."""
    if fetch.path == "/me":
        return [ctx.me]  # read and checked once per run, before any resource
    if fetch.items is None:
        return [ctx.cached(fetch.cache_key, lambda: ctx.client.get(fetch.path, fetch.params, resource=name))]
    return ctx.cached(fetch.cache_key, lambda: ctx.client.iter_full(fetch.path, fetch.items, fetch.params,
                                                                     resource=name))


def _unique(rows: Rows) -> Rows:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("id") is not None:
            seen[row["id"]] = row
    return list(seen.values())


# ---------------------------------------------------------------- contacts and conversations


After = Callable[[WorkspaceContext, dict[str, Any], Any, Iterable[Any]], Iterator[Any]]
Early = Callable[[WorkspaceContext, dict[str, Any]], Iterator[Any]]


def search_resource(spec: Resource, table: TableSpec, search: SearchSpec, after: After,
                    early: Early | None = None) -> Any:
    """An incremental search resource (contacts, conversations): the window from the stored
    cursor minus the overlap to now, paged in parallel windows (windows.py), built as Arrow
    tables (batching.py); then `after` (contacts: the deletion sweep; conversations: the
    deletion markers). `early` is a listing that `after` reads, paged on its own thread from
    the resource's start, while the windows page (conversations: the deleted ones).

    Contact search dates are whole days in the workspace time zone
    (docs/intercom-api.md#search-semantics): the first day is re-read, and its records before
    the window are dropped here (dlt's cursor would drop them too). Conversation bounds are
    inclusive seconds and results come in relevance order unless sorted, so the search is
    always sorted by updated_at ascending."""

    @dlt.resource(**_table_hints(spec, table.hints(), schema_contract=_PII_CONTRACT))
    def search_records(
        ctx: WorkspaceContext,
        updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(
            "updated_at", initial_value=EPOCH, lag=OVERLAP_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        def pages() -> Iterator[Any]:
            report = ctx.report.resource(spec.name)
            state = dlt.current.resource_state()
            floor = int(window_start(ctx, updated_at, report).timestamp())
            overlap = OverlapFilter(state, "updated_at", OVERLAP_SECONDS, reset=ctx.full_refresh,
                                    not_after=ctx.cursor_not_after)
            builders = Builders(ctx, table)
            listing = EarlyPages(early(ctx, state)) if early else None
            try:
                found = windowed_search(ctx.client, search, floor, ctx.run_started_at,
                                        tz=ctx.timezone if search.whole_days else "UTC",
                                        workers=ctx.workers, split_above=ctx.split_above,
                                        on_plan=note_plan(ctx, spec.name), on_split=on_split(builders, overlap))
                yield from search_tables(ctx, builders, found, report, overlap,
                                         floor=floor if search.whole_days else None)
                overlap.prune()
                report.unchanged_skipped += overlap.skipped
                yield from after(ctx, state, report, listing or ())
                report.window_end = iso(datetime.now(UTC))
            finally:
                if listing is not None:
                    listing.close()

        with fewer_gc_passes():
            yield from guarded(ctx, spec.name, pages(), cursor=updated_at)

    return search_records


def _contacts_after(ctx: WorkspaceContext, state: dict[str, Any], report: Any, _: Iterable[Any]) -> Iterator[Any]:
    if _reconcile_due(ctx, state):
        yield from _reconcile_contacts(ctx, state, report)


def _reconcile_due(ctx: WorkspaceContext, state: dict[str, Any]) -> bool:
    if ctx.reconcile is not None:
        return ctx.reconcile
    last = state.get("last_reconciled_at")
    return last is None or ctx.run_started_at - last >= RECONCILE_EVERY_DAYS * 86400


def _reconcile_contacts(ctx: WorkspaceContext, state: dict[str, Any], report: Any) -> Iterator[list[dict[str, Any]]]:
    """List every contact id (the list endpoint: search would miss not-yet-indexed contacts)
    and remove stored contacts Intercom no longer has (deleted, merged, archived: docs/intercom-api.md#deletions)."""
    seen: set[str] = set()
    for page in ctx.client.iter_cursor("/contacts", "data", per_page=SEARCH_PAGE_SIZE, resource="contacts"):
        seen.update(str(c.get("id")) for c in page.items if c.get("id") is not None)
    known = ctx.known_contact_ids() if ctx.known_contact_ids else set()
    gone = sorted(known - seen)
    if not seen and known:
        report.reason = "reconciliation skipped: Intercom listed no contacts while some are stored"
        return
    state["last_reconciled_at"] = ctx.run_started_at
    ctx.report.reconciled = True
    report.deleted += len(gone)
    now = datetime.now(UTC)
    for i in range(0, len(gone), 1000):
        yield tombstones_table(CONTACTS_SCHEMA, [
            {"region": ctx.region, "workspace_id": ctx.workspace_id, "id": cid, "deleted_at": now}
            for cid in gone[i:i + 1000]])


def _deleted_listing(ctx: WorkspaceContext, state: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Deleted conversations since the last run's newest marker, minus the overlap. Read on
    its own thread while the search pages: one page after another once the search was done
    took 7.8 s for 28 pages at 250 ms (docs/ingestion.md#deletions-and-reconciliation)."""
    since = (0 if ctx.full_refresh else state.get("deleted_since", 0)) - OVERLAP_SECONDS
    return _deleted_since(ctx, since)


def _conversations_after(ctx: WorkspaceContext, state: dict[str, Any], report: Any,
                         deleted: Iterable[list[dict[str, Any]]]) -> Iterator[Any]:
    """Deleted conversations (GET /conversations/deleted, listed by `_deleted_listing`)
    become hard-delete markers, after the search's rows."""
    tombstones = OverlapFilter(state, "deleted_at", OVERLAP_SECONDS, key="deleted_hashes",
                               reset=ctx.full_refresh, not_after=ctx.cursor_not_after)
    for items in deleted:
        marks = [conversation_tombstone(i, ctx.region, ctx.workspace_id) for i in tombstones.keep(items)]
        report.deleted += len(marks)
        if marks:
            yield tombstones_table(CONVERSATIONS_SCHEMA, marks)
    tombstones.prune()
    state["deleted_since"] = max(state.get("deleted_since", 0), int(tombstones.max_seen))


def _deleted_since(ctx: WorkspaceContext, since: float) -> Iterator[list[dict[str, Any]]]:
    """Deleted conversations, newest first, until older than `since` (page-numbered, max 60),
    `DELETED_PAGES_AHEAD` pages requested at once. One whose `deleted_at` cannot be read is
    kept and decides nothing: only a readable older one ends the listing. The list grows at
    its head while it is read, so a record can come twice; it is yielded once."""
    seen: set[str] = set()
    for page in ctx.client.iter_numbered(
        "/conversations/deleted", "conversations", {"order": "desc"},
        per_page=DELETED_CONVERSATIONS_PAGE_SIZE, resource="deleted_conversations", ahead=DELETED_PAGES_AHEAD,
    ):
        stamps = [readable_cursor(i.get("deleted_at"), ctx.cursor_not_after) for i in page.items]
        fresh = [i for i, stamp in zip(page.items, stamps, strict=True) if stamp is None or stamp >= since]
        new = [i for i in fresh if _first_sight(i.get("id"), seen)]
        if new:
            yield new
        if len(fresh) < len(page.items):
            return


def _first_sight(record_id: Any, seen: set[str]) -> bool:
    if record_id is None:
        return True  # nothing to recognise it by; the load's merge settles it
    key = str(record_id)
    if key in seen:
        return False
    seen.add(key)
    return True


@dlt.resource(**_table_hints(resource("deleted_conversations")))
def deleted_conversations(
    ctx: WorkspaceContext,
    deleted_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(
        "deleted_at", initial_value=EPOCH, lag=OVERLAP_SECONDS, on_cursor_value_missing="include"
    ),
) -> Iterator[list[dict[str, Any]]]:
    def pages() -> Iterator[list[dict[str, Any]]]:
        report = ctx.report.resource("deleted_conversations")
        state = dlt.current.resource_state()
        start = window_start(ctx, deleted_at, report)
        overlap = OverlapFilter(state, "deleted_at", OVERLAP_SECONDS, reset=ctx.full_refresh,
                                not_after=ctx.cursor_not_after)
        for items in _deleted_since(ctx, start.timestamp()):
            report.pages += 1
            report.check_cursors([str(i.get("id")) for i in items], [i.get("deleted_at") for i in items],
                                 "deleted_at", ctx.cursor_not_after)
            rows = [deleted_conversation_row(i, ctx.region, ctx.workspace_id) for i in overlap.keep(items)]
            if rows:
                yield rows
        overlap.prune()
        report.unchanged_skipped += overlap.skipped

    yield from guarded(ctx, "deleted_conversations", pages(), cursor=deleted_at)


@dlt.resource(**_table_hints(resource("activity_logs")))
def activity_logs(
    ctx: WorkspaceContext,
    created_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(
        "created_at", initial_value=EPOCH, lag=OVERLAP_SECONDS, on_cursor_value_missing="include"
    ),
) -> Iterator[list[dict[str, Any]]]:
    """Admin activity logs: newest first, so the upper bound is fixed at the run's start (new
    events would otherwise shift pages); dedupe on id by merge (docs/intercom-api.md#pagination-four-kinds)."""

    def pages() -> Iterator[list[dict[str, Any]]]:
        report = ctx.report.resource("activity_logs")
        state = dlt.current.resource_state()
        start = window_start(ctx, created_at, report)
        after = max(int(start.timestamp()), ctx.run_started_at - INITIAL_ACTIVITY_LOG_DAYS * 86400)
        report.window_start = iso(datetime.fromtimestamp(after, UTC))
        report.window_end = iso(datetime.fromtimestamp(ctx.run_started_at, UTC))
        overlap = OverlapFilter(state, "created_at", OVERLAP_SECONDS, reset=ctx.full_refresh,
                                not_after=ctx.cursor_not_after)
        pseudo = ctx.pseudonymizer
        for page in ctx.client.iter_activity_logs(after, ctx.run_started_at, per_page=ACTIVITY_LOG_PAGE_SIZE):
            report.pages += 1
            report.check_cursors([str(e.get("id")) for e in page.items], [e.get("created_at") for e in page.items],
                                 "created_at", ctx.cursor_not_after)
            rows = [activity_log_row(e, ctx.region, ctx.workspace_id, pseudo) for e in overlap.keep(page.items)]
            if rows:
                yield rows
        overlap.prune()
        report.unchanged_skipped += overlap.skipped

    yield from guarded(ctx, "activity_logs", pages(), cursor=created_at)


# ---------------------------------------------------------------- the source's resources

_RESOURCES: dict[str, Any] = {
    **{spec.name: snapshot_resource(spec) for spec in RESOURCES if spec.rows is not None},
    "contacts": search_resource(resource("contacts"), CONTACTS, CONTACTS_SEARCH, _contacts_after),
    "conversations": search_resource(resource("conversations"), CONVERSATIONS, CONVERSATIONS_SEARCH,
                                     _conversations_after, early=_deleted_listing),
    "deleted_conversations": deleted_conversations,
    "activity_logs": activity_logs,
}
