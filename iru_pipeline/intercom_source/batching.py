"""Search pages -> Arrow tables for contacts and conversations: where the tables are built
(here or in worker processes), the overlap filter applied to each record, and batches of
about ARROW_BATCH_ROWS rows for dlt (docs/ingestion.md#tables-arrow-built-in-worker-processes-for-large-syncs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pyarrow as pa

from iru_pipeline.intercom_client import IntercomResponseError, Page
from iru_pipeline.intercom_records.table_workers import Built, TableWorkerError
from iru_pipeline.intercom_records.tables import CONTACTS, TableSpec
from iru_pipeline.intercom_records.transforms import CURSOR_MIN_SECONDS, content_hash
from iru_pipeline.intercom_source.helpers import OverlapFilter, WorkspaceContext
from iru_pipeline.intercom_source.settings import ARROW_BATCH_ROWS, PAGES_PER_TASK

progress = logging.getLogger("iru_pipeline.progress")


class Builders:
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
            progress.info("[%s] %s: building tables in %d worker processes", self.ctx.label, self.spec.name,
                          self.workers.processes)

    def close(self, abort: bool = False) -> None:
        if self.workers is not None:
            self.workers.close(abort=abort)


def on_split(builders: Builders, overlap: OverlapFilter) -> Callable[[int, Any], None]:
    def split(total: int, newest: Any) -> None:
        builders.start_if_large(total)
        if newest is not None:
            overlap.saw(newest)  # records older than its overlap need no content hash
    return split


class _Batches:
    """The filtered tables of a search, handed out in batches of about `rows` rows. Pages go
    to the worker processes (PAGES_PER_TASK at a time) once they are started, else their
    records are filtered and built here."""

    def __init__(self, ctx: WorkspaceContext, builders: Builders, report: Any, overlap: OverlapFilter,
                 floor: int | None, rows: int) -> None:
        self.ctx, self.builders, self.report, self.overlap = ctx, builders, report, overlap
        self.floor, self.rows = floor, rows
        # Records whose cursor value cannot be read are loaded and named in the report.
        self.check = partial(report.check_cursors, field=builders.cursor, not_after=ctx.cursor_not_after)
        self.items: list[dict[str, Any]] = []
        self.task: list[bytes] = []
        self.tables: list[pa.Table] = []
        self.seen = 0

    def add(self, page: Page) -> None:
        self.report.pages += 1
        if page.records_json:
            self.builders.start_if_large(max(self.seen, page.total_count or 0, self.report.total_count_reported or 0))
        if self.builders.workers is not None and page.records_json:
            self.task.append(page.records_json)
            if len(self.task) >= PAGES_PER_TASK:
                self._submit()
        else:
            self.seen += len(page.items)
            self.items += _kept(self.overlap, page.items, self.builders.cursor, self.floor, self.check)
            if len(self.items) >= self.rows:
                self._build_items()

    def finish(self) -> None:
        """Everything still with the workers or in hand becomes tables."""
        workers = self.builders.workers
        if workers is not None:
            if self.task:
                self._submit()
            self.tables += (_filtered(self.overlap, built, self.floor, self.check) for built in workers.drain())
        if self.items:
            self._build_items()

    def pending_rows(self) -> int:
        return sum(t.num_rows for t in self.tables)

    def take(self) -> pa.Table:
        batch, self.tables = _concat(self.tables), []
        return batch

    def _submit(self) -> None:
        for built in self.builders.workers.submit(self.task, self.overlap.hash_floor):
            self.seen += len(built[1])
            self.tables.append(_filtered(self.overlap, built, self.floor, self.check))
        self.task = []

    def _build_items(self) -> None:
        spec = self.builders.spec
        self.tables.append(spec.table(self.items, self.ctx.region, self.ctx.workspace_id, _pseudo_for(self.ctx, spec)))
        self.items = []


def search_tables(
    ctx: WorkspaceContext, builders: Builders, pages: Iterator[Page], report: Any, overlap: OverlapFilter,
    floor: int | None = None, rows: int = ARROW_BATCH_ROWS,
) -> Iterator[pa.Table]:
    """The records of search pages as Arrow tables of about `rows` rows, without those the
    overlap filter skips and (contacts) those whose cursor is before `floor`.

    Batches: dlt's per-item work (schema merge and validation of each table) dominated when
    every 150-row page was its own table. Once the sync is large the tables are built in
    worker processes, PAGES_PER_TASK pages at a time (table_workers.py); the filter still
    runs here, on what the workers report of each record."""
    batches = _Batches(ctx, builders, report, overlap, floor, rows)
    completed = False
    try:
        for page in pages:
            batches.add(page)
            if batches.pending_rows() >= rows:
                yield batches.take()
        batches.finish()
        if batches.pending_rows():
            yield batches.take()
        completed = True
    except TableWorkerError as exc:
        spec = builders.spec
        raise IntercomResponseError(str(exc), region=ctx.label, endpoint=f"POST /{spec.name}/search",
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


def note_plan(ctx: WorkspaceContext, name: str) -> Callable[[list[Any], int], None]:
    def note(windows: list[Any], total: int) -> None:
        ctx.report.resource(name).total_count_reported = total
        progress.info("[%s] %s: about %d records in %d windows, fetched %d at a time", ctx.label, name, total,
                      len(windows), ctx.workers)
    return note


def _at_or_after(value: Any, floor: int) -> bool:
    """False only for a readable time before `floor`: a value that is not one (before 2000,
    not an int) cannot place its record, which is then kept."""
    return not (type(value) is int and CURSOR_MIN_SECONDS <= value < floor)
