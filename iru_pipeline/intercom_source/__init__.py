"""The Intercom dlt source: one resource per Intercom resource, tables in schema `intercom`.

Build one source per region; each region has its own dlt pipeline, so its own cursors.

    source = intercom_source(region="eu", client=IntercomClient("eu", url, token), pii_key=key)

Credentials are not resolved by dlt's config providers: the product's contract names its own
variables (INTERCOM_ACCESS_TOKEN_<REGION>, IRU_PII_KEY), which `iru_pipeline.config` validates
before any request; the caller passes a ready client and the key here.

Cursors (dlt incremental, in each region's pipeline state, restorable from DuckDB):
- contacts, conversations: `updated_at`, via search sorted ascending, window starting
  OVERLAP_SECONDS before the cursor;
- activity_logs: `created_at`, upper bound fixed at the run's start;
- deleted_conversations: `deleted_at`.
Snapshots with history (scd2, merge_key="region"): workspaces, admins, teams,
team_memberships, tags, data_attributes.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import dlt
import pyarrow as pa

from iru_pipeline.intercom_client import (
    SKIPPABLE_ERRORS,
    IntercomAuthError,
    IntercomClient,
    IntercomError,
    IntercomResponseError,
    Page,
)
from iru_pipeline.intercom_records.table_workers import Built, TableWorkerError, join_arrays
from iru_pipeline.intercom_records.tables import (
    CONTACTS,
    CONTACTS_SCHEMA,
    CONVERSATIONS,
    CONVERSATIONS_SCHEMA,
    TableSpec,
    tombstones_table,
)
from iru_pipeline.intercom_records.transforms import (
    COLUMNS,
    CURSOR_MIN_SECONDS,
    activity_log_row,
    admin_row,
    content_hash,
    conversation_tombstone,
    data_attribute_row,
    deleted_conversation_row,
    readable_cursor,
    tag_row,
    team_membership_rows,
    team_row,
    workspace_row,
)
from iru_pipeline.intercom_source.helpers import (
    EPOCH,
    OverlapFilter,
    SyncReport,
    WorkspaceContext,
    fewer_gc_passes,
)
from iru_pipeline.intercom_source.settings import (
    ACTIVITY_LOG_PAGE_SIZE,
    ARROW_BATCH_ROWS,
    DATASET_NAME,
    DELETED_CONVERSATIONS_PAGE_SIZE,
    EXTRACT_WORKERS,
    INITIAL_ACTIVITY_LOG_DAYS,
    OVERLAP_SECONDS,
    PAGES_PER_TASK,
    RECONCILE_EVERY_DAYS,
    RESOURCE_NAMES,
    SEARCH_PAGE_SIZE,
    SNAPSHOT,
    TABLE_WORKERS_ABOVE,
    UPSERT,
    WINDOW_SPLIT_ABOVE,
)
from iru_pipeline.intercom_source.windows import (
    CONTACTS_SEARCH,
    CONVERSATIONS_SEARCH,
    windowed_search,
)

__all__ = ["DATASET_NAME", "RESOURCE_NAMES", "SyncReport", "intercom_source"]

progress = logging.getLogger("iru_pipeline.progress")
PROGRESS_EVERY_SECONDS = 2.0

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
    """
    ctx = WorkspaceContext(
        region, client, pii_key=pii_key, internal_domains=internal_domains, report=report,
        full_refresh=full_refresh, reconcile=reconcile, known_contact_ids=known_contact_ids,
        workers=workers, split_above=split_above, table_workers_above=table_workers_above,
        table_processes=table_processes,
    )
    return (
        workspaces(ctx), admins(ctx), teams(ctx), team_memberships(ctx), tags(ctx), data_attributes(ctx),
        contacts(ctx), conversations(ctx), deleted_conversations(ctx), activity_logs(ctx),
    )


_COLUMNS = {**COLUMNS, "contacts": CONTACTS.hints(), "conversations": CONVERSATIONS.hints()}


def _snapshot(name: str) -> dict[str, Any]:
    return dict(name=name, write_disposition=SNAPSHOT, merge_key="region", columns=_COLUMNS[name])


def _upsert(name: str, **extra: Any) -> dict[str, Any]:
    return dict(name=name, write_disposition=UPSERT, primary_key=("region", "id"), columns=_COLUMNS[name], **extra)


# ---------------------------------------------------------------- snapshots


@dlt.resource(**_snapshot("workspaces"))
def workspaces(ctx: WorkspaceContext) -> Iterator[list[dict[str, Any]]]:
    def pages() -> Iterator[list[dict[str, Any]]]:
        yield [workspace_row(ctx.me, ctx.region, ctx.client.host, ctx.client.api_version)]

    yield from _guarded(ctx, "workspaces", pages())


@dlt.resource(**_snapshot("admins"))
def admins(ctx: WorkspaceContext) -> Iterator[list[dict[str, Any]]]:
    def pages() -> Iterator[list[dict[str, Any]]]:
        items = ctx.cached("admins", lambda: ctx.client.iter_full("/admins", "admins", resource="admins"))
        yield [admin_row(a, ctx.region, ctx.workspace_id) for a in items]

    yield from _guarded(ctx, "admins", pages())


def _teams(ctx: WorkspaceContext) -> list[dict[str, Any]]:
    return ctx.cached("teams", lambda: ctx.client.iter_full("/teams", "teams", resource="teams"))


@dlt.resource(**_snapshot("teams"))
def teams(ctx: WorkspaceContext) -> Iterator[list[dict[str, Any]]]:
    def pages() -> Iterator[list[dict[str, Any]]]:
        yield [team_row(t, ctx.region, ctx.workspace_id) for t in _teams(ctx)]

    yield from _guarded(ctx, "teams", pages())


@dlt.resource(**_snapshot("team_memberships"))
def team_memberships(ctx: WorkspaceContext) -> Iterator[list[dict[str, Any]]]:
    def pages() -> Iterator[list[dict[str, Any]]]:
        yield [m for t in _teams(ctx) for m in team_membership_rows(t, ctx.region, ctx.workspace_id)]

    yield from _guarded(ctx, "team_memberships", pages())


@dlt.resource(**_snapshot("tags"))
def tags(ctx: WorkspaceContext) -> Iterator[list[dict[str, Any]]]:
    def pages() -> Iterator[list[dict[str, Any]]]:
        for page in ctx.client.iter_full("/tags", "data", resource="tags"):
            yield [tag_row(t, ctx.region, ctx.workspace_id) for t in page.items]

    yield from _guarded(ctx, "tags", pages())


@dlt.resource(**_snapshot("data_attributes"))
def data_attributes(ctx: WorkspaceContext) -> Iterator[list[dict[str, Any]]]:
    def pages() -> Iterator[list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        for model in ("contact", "company"):
            for page in ctx.client.iter_full("/data_attributes", "data", {"model": model}, resource="data_attributes"):
                rows += [data_attribute_row(a, ctx.region, ctx.workspace_id, model) for a in page.items]
        # `model=conversation` answers 422 in 2.16; conversation attributes have their own endpoint.
        for page in ctx.client.iter_full("/conversations/attributes", "data", resource="data_attributes"):
            rows += [data_attribute_row(a, ctx.region, ctx.workspace_id, "conversation") for a in page.items]
        yield _unique(rows)

    yield from _guarded(ctx, "data_attributes", pages())


# ---------------------------------------------------------------- incremental


@dlt.resource(**_upsert("contacts", schema_contract=_PII_CONTRACT))
def contacts(
    ctx: WorkspaceContext,
    updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(
        "updated_at", initial_value=EPOCH, lag=OVERLAP_SECONDS, on_cursor_value_missing="include"
    ),
) -> Iterator[list[dict[str, Any]]]:
    """Contacts, pseudonymised. Search dates are whole days in the workspace time zone
    (docs/intercom-api.md#search-semantics), so `updated_at = S OR updated_at > S` re-reads the start's day; the
    cursor filter
    and the overlap filter drop what was already loaded."""

    def pages() -> Iterator[Any]:
        report = ctx.report.resource("contacts")
        state = dlt.current.resource_state()
        floor = int(_window_start(ctx, updated_at, report).timestamp())
        overlap = OverlapFilter(state, "updated_at", OVERLAP_SECONDS, reset=ctx.full_refresh,
                                not_after=ctx.cursor_not_after)
        builders = _Builders(ctx, CONTACTS)
        pages = windowed_search(ctx.client, CONTACTS_SEARCH, floor, ctx.run_started_at, tz=ctx.timezone,
                                workers=ctx.workers, split_above=ctx.split_above,
                                on_plan=_note_plan(ctx, "contacts"), on_split=_on_split(builders, overlap))
        # The re-read day brings records before the window; dlt's cursor would drop them too.
        yield from _tables(ctx, builders, pages, report, overlap, floor=floor)
        overlap.prune()
        report.unchanged_skipped += overlap.skipped
        if _reconcile_due(ctx, state):
            yield from _reconcile_contacts(ctx, state, report)
        report.window_end = _iso(datetime.now(UTC))

    with fewer_gc_passes():
        yield from _guarded(ctx, "contacts", pages(), cursor=updated_at)


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


@dlt.resource(**_upsert("conversations", schema_contract=_PII_CONTRACT))
def conversations(
    ctx: WorkspaceContext,
    updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(
        "updated_at", initial_value=EPOCH, lag=OVERLAP_SECONDS, on_cursor_value_missing="include"
    ),
) -> Iterator[list[dict[str, Any]]]:
    """Conversation metadata only. Search bounds are inclusive and results come in relevance
    order unless sorted, so always sort by updated_at ascending (docs/intercom-api.md#search-semantics). Deleted
    conversations (GET /conversations/deleted) become hard-delete markers."""

    def pages() -> Iterator[Any]:
        report = ctx.report.resource("conversations")
        state = dlt.current.resource_state()
        floor = int(_window_start(ctx, updated_at, report).timestamp())
        overlap = OverlapFilter(state, "updated_at", OVERLAP_SECONDS, reset=ctx.full_refresh,
                                not_after=ctx.cursor_not_after)
        builders = _Builders(ctx, CONVERSATIONS)
        pages = windowed_search(ctx.client, CONVERSATIONS_SEARCH, floor, ctx.run_started_at,
                                workers=ctx.workers, split_above=ctx.split_above,
                                on_plan=_note_plan(ctx, "conversations"), on_split=_on_split(builders, overlap))
        yield from _tables(ctx, builders, pages, report, overlap)
        overlap.prune()
        report.unchanged_skipped += overlap.skipped
        tombstones = OverlapFilter(state, "deleted_at", OVERLAP_SECONDS, key="deleted_hashes",
                                   reset=ctx.full_refresh, not_after=ctx.cursor_not_after)
        since = (0 if ctx.full_refresh else state.get("deleted_since", 0)) - OVERLAP_SECONDS
        for items in _deleted_since(ctx, since):
            marks = [conversation_tombstone(i, ctx.region, ctx.workspace_id) for i in tombstones.keep(items)]
            report.deleted += len(marks)
            if marks:
                yield tombstones_table(CONVERSATIONS_SCHEMA, marks)
        tombstones.prune()
        state["deleted_since"] = max(state.get("deleted_since", 0), int(tombstones.max_seen))
        report.window_end = _iso(datetime.now(UTC))

    with fewer_gc_passes():
        yield from _guarded(ctx, "conversations", pages(), cursor=updated_at)


def _deleted_since(ctx: WorkspaceContext, since: float) -> Iterator[list[dict[str, Any]]]:
    """Deleted conversations, newest first, until older than `since` (page-numbered, max 60).
    One whose `deleted_at` cannot be read is kept and decides nothing: only a readable older
    one ends the listing."""
    for page in ctx.client.iter_numbered(
        "/conversations/deleted", "conversations", {"order": "desc"},
        per_page=DELETED_CONVERSATIONS_PAGE_SIZE, resource="deleted_conversations",
    ):
        stamps = [readable_cursor(i.get("deleted_at"), ctx.cursor_not_after) for i in page.items]
        fresh = [i for i, stamp in zip(page.items, stamps, strict=True) if stamp is None or stamp >= since]
        if fresh:
            yield fresh
        if len(fresh) < len(page.items):
            return


@dlt.resource(**_upsert("deleted_conversations"))
def deleted_conversations(
    ctx: WorkspaceContext,
    deleted_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(
        "deleted_at", initial_value=EPOCH, lag=OVERLAP_SECONDS, on_cursor_value_missing="include"
    ),
) -> Iterator[list[dict[str, Any]]]:
    def pages() -> Iterator[list[dict[str, Any]]]:
        report = ctx.report.resource("deleted_conversations")
        state = dlt.current.resource_state()
        start = _window_start(ctx, deleted_at, report)
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

    yield from _guarded(ctx, "deleted_conversations", pages(), cursor=deleted_at)


@dlt.resource(**_upsert("activity_logs"))
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
        start = _window_start(ctx, created_at, report)
        after = max(int(start.timestamp()), ctx.run_started_at - INITIAL_ACTIVITY_LOG_DAYS * 86400)
        report.window_start = _iso(datetime.fromtimestamp(after, UTC))
        report.window_end = _iso(datetime.fromtimestamp(ctx.run_started_at, UTC))
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

    yield from _guarded(ctx, "activity_logs", pages(), cursor=created_at)


# ---------------------------------------------------------------- shared pieces


def _window_start(ctx: WorkspaceContext, cursor: Any, report: Any) -> datetime:
    """Where this run's window starts: the stored cursor minus the overlap, or the beginning."""
    stored = cursor.last_value
    report.cursor_before = _iso(stored) if stored and stored > EPOCH else None
    start = cursor.start_value if not ctx.full_refresh else EPOCH
    if ctx.full_refresh:
        # Re-read everything: lower the incremental's own filter too, or it would drop the
        # rows before the stored cursor.
        cursor.start_value = EPOCH
        state = cursor.get_state()
        state["last_value"] = EPOCH
    start = start if isinstance(start, datetime) else EPOCH
    report.window_start = _iso(start)
    return start


def _guarded(ctx: WorkspaceContext, name: str, pages: Iterator[list[dict[str, Any]]],
    cursor: Any = None) -> Iterator[list[dict[str, Any]]]:
    """Run a resource's pages so that its failure stays its own.

    A 403, plan restriction or version error before any data skips the resource with the
    reason recorded. Any other Intercom error (after the client's retries: a bad page, a
    refused pagination, 5xx or timeouts past the bound) fails this resource only: its state is
    put back as it was at its start and the other resources load and commit. A rejected token
    (401) or a bad `/me` concerns the whole workspace and fails the region's run.

    Why put the state back rather than extract each resource on its own: dlt commits a
    pipeline's whole state (every resource's cursor) with the region's one load package, and
    a resource that fails part-way has already moved its incremental cursor and overlap
    hashes over the rows it yielded. Restoring its state in place (the incremental step holds
    a reference to the same dict) keeps its cursor where it was; the rows it did yield still
    load, merged on their keys, and the next run reads them again. Separate extracts would cost
    one load package and one DuckDB write per resource on every run."""
    report = ctx.report.resource(name)
    _ = ctx.workspace_id  # /me is the workspace's: a bad one fails the region, not one resource
    state = dlt.current.resource_state()
    saved = copy.deepcopy(state)
    yielded = False
    last_note = time.monotonic()
    try:
        for rows in pages:
            report.rows += rows.num_rows if hasattr(rows, "num_rows") else len(rows)
            yielded = True
            if time.monotonic() - last_note >= PROGRESS_EVERY_SECONDS:
                last_note = time.monotonic()
                progress.info("[%s] %s: %d pages, %d rows so far", ctx.region, name, report.pages, report.rows)
            yield rows
    except IntercomAuthError as exc:
        _record(report, "failed", exc)
        raise
    except IntercomError as exc:
        skipped = isinstance(exc, SKIPPABLE_ERRORS) and not yielded
        _restore_state(state, saved)
        _record(report, "skipped" if skipped else "failed", exc)
        progress.warning("[%s] %s %s: %s", ctx.region, name, report.status, exc.message)
        return
    except Exception as exc:
        report.status, report.reason = "failed", f"{type(exc).__name__}: {exc}"
        raise
    report.status = "ok"
    progress.info("[%s] %s: done, %d rows (%d unchanged skipped)", ctx.region, name, report.rows,
        report.unchanged_skipped)
    if cursor is not None:
        _hold_cursor_in_range(ctx, cursor, report)
        try:
            last = cursor.last_value
            report.cursor_after = _iso(last) if last and last > EPOCH else report.cursor_before
        except Exception:  # the cursor is informational here
            pass
    if report.undecided:
        report.status = "partial"
        report.reason = (f"workspace {ctx.workspace_id} ({ctx.region}) {name}: {report.undecided} record(s) "
                         f"with a cursor value that cannot be read were loaded but moved no cursor "
                         f"(first: {report.first_undecided}); the cursor stays at the newest readable value")
        progress.warning("[%s] %s partial: %s", ctx.region, name, report.reason)


def _hold_cursor_in_range(ctx: WorkspaceContext, cursor: Any, report: Any) -> None:
    """dlt's cursor is the newest value its rows carry; a value after the run's start (plus
    skew) is garbage that would skip every record to come, so the cursor goes back to the
    newest in-range value this run loaded, or where it was."""
    limit = datetime.fromtimestamp(ctx.cursor_not_after, UTC)
    last = cursor.last_value
    if not isinstance(last, datetime) or last <= limit:
        return
    newest = datetime.fromtimestamp(report.newest_in_range, UTC) if report.newest_in_range else EPOCH
    before = datetime.fromisoformat(report.cursor_before) if report.cursor_before else EPOCH
    held = max(newest, min(before, limit))
    cursor.get_state()["last_value"] = held


def _record(report: Any, status: str, exc: IntercomError) -> None:
    report.status, report.reason = status, str(exc)
    report.error_code, report.status_code, report.request_id = exc.code, exc.status, exc.request_id


def _restore_state(state: dict[str, Any], saved: dict[str, Any]) -> None:
    """Put `saved` back into `state` in place: nested dicts stay the same objects, so dlt's
    incremental step, which holds its cursor's dict, sees the old values."""
    for key in [k for k in state if k not in saved]:
        del state[key]
    for key, value in saved.items():
        if isinstance(value, dict) and isinstance(state.get(key), dict):
            _restore_state(state[key], value)
        else:
            state[key] = value


class _Builders:
    """Where a resource's tables are built: here, or, once the sync is known to be large,
    in worker processes (started as soon as the first page's count shows it, so they are
    up before the windows are planned)."""

    def __init__(self, ctx: WorkspaceContext, spec: TableSpec, cursor: str = "updated_at") -> None:
        self.ctx, self.spec, self.cursor = ctx, spec, cursor
        self.workers: Any = None

    def start_if_large(self, expected: int) -> None:
        above = self.ctx.table_workers_above
        if self.workers is None and above is not None and expected > above:
            self.workers = self.ctx.table_workers(self.spec, self.cursor)
            progress.info("[%s] %s: building tables in %d worker processes", self.ctx.region, self.spec.name,
                          self.workers.processes)

    def close(self, abort: bool = False) -> None:
        if self.workers is not None:
            self.workers.close(abort=abort)


def _on_split(builders: _Builders, overlap: OverlapFilter) -> Callable[[int, Any], None]:
    def split(total: int, newest: Any) -> None:
        builders.start_if_large(total)
        if newest is not None:
            overlap.saw(newest)  # records older than its overlap need no content hash
    return split


def _tables(
    ctx: WorkspaceContext, builders: _Builders, pages: Iterator[Page], report: Any, overlap: OverlapFilter,
    floor: int | None = None, rows: int = ARROW_BATCH_ROWS,
) -> Iterator[pa.Table]:
    """The records of search pages as Arrow tables of about `rows` rows, without those the
    overlap filter skips and (contacts) those whose cursor is before `floor`.

    Batches: dlt's per-item work (schema merge and validation of each table) dominated when
    every 150-row page was its own table. Once the sync is large the tables are built in
    worker processes, PAGES_PER_TASK pages at a time (table_workers.py); the filter still
    runs here, on what the workers report of each record."""
    spec, cursor = builders.spec, builders.cursor
    # Records whose cursor value cannot be read are loaded and named in the report.
    check = partial(report.check_cursors, field=cursor, not_after=ctx.cursor_not_after)
    items: list[dict[str, Any]] = []
    task: list[bytes] = []
    tables: list[pa.Table] = []
    seen = 0
    completed = False
    try:
        for page in pages:
            report.pages += 1
            if page.records_json:
                builders.start_if_large(max(seen, page.total_count or 0, report.total_count_reported or 0))
            workers = builders.workers
            if workers is not None and page.records_json:
                task.append(page.records_json)
                if len(task) >= PAGES_PER_TASK:
                    for built in workers.submit(join_arrays(task), overlap.hash_floor):
                        seen += len(built[1])
                        tables.append(_filtered(overlap, built, floor, check))
                    task = []
            else:
                seen += len(page.items)
                items += _kept(overlap, page.items, cursor, floor, check)
                if len(items) >= rows:
                    tables.append(spec.table(items, ctx.region, ctx.workspace_id, _pseudo_for(ctx, spec)))
                    items = []
            if sum(t.num_rows for t in tables) >= rows:
                yield _concat(tables)
                tables = []
        workers = builders.workers
        if workers is not None:
            if task:
                tables += (_filtered(overlap, built, floor, check)
                           for built in workers.submit(join_arrays(task), overlap.hash_floor))
            tables += (_filtered(overlap, built, floor, check) for built in workers.drain())
        if items:
            tables.append(spec.table(items, ctx.region, ctx.workspace_id, _pseudo_for(ctx, spec)))
        if sum(t.num_rows for t in tables):
            yield _concat(tables)
        completed = True
    except TableWorkerError as exc:
        raise IntercomResponseError(str(exc), region=ctx.region, endpoint=f"POST /{spec.name}/search",
                                    resource=spec.name) from None
    finally:
        # Stop the window threads now: an exception's traceback keeps this generator alive,
        # and threads blocked on a full queue would keep the process from exiting.
        close = getattr(pages, "close", None)
        if close is not None:
            close()
        builders.close(abort=not completed)  # a failed or stopped sync waits for no worker


def _kept(overlap: OverlapFilter, items: list[dict[str, Any]], cursor: str, floor: int | None,
          check: Callable[[list[str], list[Any]], None]) -> list[dict[str, Any]]:
    """The records to load: not before `floor` (contacts' re-read day), and not skipped by the
    overlap filter."""
    keys, cursors = [str(i.get("id")) for i in items], [i.get(cursor) for i in items]
    check(keys, cursors)
    mask = _selected(overlap, keys, cursors, lambda n: content_hash(items[n]), floor)
    return [item for item, keep in zip(items, mask, strict=True) if keep]


def _filtered(overlap: OverlapFilter, built: Built, floor: int | None,
              check: Callable[[list[str], list[Any]], None]) -> pa.Table:
    """`_kept` on a table a worker built, from what it reported of each record."""
    table, keys, cursors, hashes = built
    check(keys, cursors)
    mask = _selected(overlap, keys, cursors, hashes.__getitem__, floor)
    return table if all(mask) else table.filter(pa.array(mask, pa.bool_()))


def _selected(overlap: OverlapFilter, keys: list[str], cursors: list[Any], digest: Callable[[int], str | None],
              floor: int | None) -> list[bool]:
    if floor is None:
        return overlap.keep_rows(keys, cursors, digest)
    candidates = [n for n, c in enumerate(cursors) if _at_or_after(c, floor)]
    chosen = overlap.keep_rows([keys[n] for n in candidates], [cursors[n] for n in candidates],
                               lambda k: digest(candidates[k]))
    mask = [False] * len(keys)
    for n, keep in zip(candidates, chosen, strict=True):
        mask[n] = keep
    return mask


def _pseudo_for(ctx: WorkspaceContext, spec: TableSpec) -> Any:
    return ctx.pseudonymizer if spec is CONTACTS else None


def _concat(tables: list[pa.Table]) -> pa.Table:
    nonempty = [t for t in tables if t.num_rows]
    return nonempty[0] if len(nonempty) == 1 else pa.concat_tables(nonempty).combine_chunks()


def _note_plan(ctx: WorkspaceContext, name: str) -> Callable[[list[Any], int], None]:
    def note(windows: list[Any], total: int) -> None:
        ctx.report.resource(name).total_count_reported = total
        progress.info("[%s] %s: about %d records in %d windows, fetched %d at a time", ctx.region, name, total,
                      len(windows), ctx.workers)
    return note


def _at_or_after(value: Any, floor: int) -> bool:
    """False only for a readable time before `floor`: a value that is not one (before 2000,
    not an int) cannot place its record, which is then kept."""
    return not (type(value) is int and CURSOR_MIN_SECONDS <= value < floor)


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("id") is not None:
            seen[row["id"]] = row
    return list(seen.values())


def _iso(value: Any) -> str | None:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else None
