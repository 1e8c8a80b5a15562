"""What every resource of the source runs inside: its window start, and the guard that keeps
a resource's failure its own (state put back, outcome recorded in the run's report).

The resources are in `__init__.py`; the batching of search pages into Arrow tables is in
`batching.py`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from iru_pipeline.intercom_client import SKIPPABLE_ERRORS, IntercomAuthError, IntercomError
from iru_pipeline.intercom_source.helpers import EPOCH, WorkspaceContext

progress = logging.getLogger("iru_pipeline.progress")
PROGRESS_EVERY_SECONDS = 2.0


def window_start(ctx: WorkspaceContext, cursor: Any, report: Any) -> datetime:
    """Where this run's window starts: the stored cursor minus the overlap, or the beginning."""
    stored = cursor.last_value
    report.cursor_before = iso(stored) if stored and stored > EPOCH else None
    start = cursor.start_value if not ctx.full_refresh else EPOCH
    if ctx.full_refresh:
        # Re-read everything: lower the incremental's own filter too, or it would drop the
        # rows before the stored cursor.
        cursor.start_value = EPOCH
        state = cursor.get_state()
        state["last_value"] = EPOCH
    start = start if isinstance(start, datetime) else EPOCH
    report.window_start = iso(start)
    return start


def guarded(ctx: WorkspaceContext, name: str, pages: Iterator[list[dict[str, Any]]],
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
                progress.info("[%s] %s: %d pages, %d rows so far", ctx.label, name, report.pages, report.rows)
            yield rows
    except IntercomAuthError as exc:
        _record(report, "failed", exc)
        raise
    except IntercomError as exc:
        skipped = isinstance(exc, SKIPPABLE_ERRORS) and not yielded
        _restore_state(state, saved)
        _record(report, "skipped" if skipped else "failed", exc)
        progress.warning("[%s] %s %s: %s", ctx.label, name, report.status, exc.message)
        return
    except Exception as exc:
        report.status, report.reason = "failed", f"{type(exc).__name__}: {exc}"
        raise
    report.status = "ok"
    progress.log(ctx.done_level, "[%s] %s: done, %d rows (%d unchanged skipped)", ctx.label, name, report.rows,
                 report.unchanged_skipped)
    if cursor is not None:
        _hold_cursor_in_range(ctx, cursor, report)
        try:
            last = cursor.last_value
            report.cursor_after = iso(last) if last and last > EPOCH else report.cursor_before
        except Exception:  # the cursor is informational here
            pass
    if report.undecided:
        report.status = "partial"
        report.reason = (f"workspace {ctx.workspace_id} ({ctx.label}) {name}: {report.undecided} record(s) "
                         f"with a cursor value that cannot be read were loaded but moved no cursor "
                         f"(first: {report.first_undecided}); the cursor stays at the newest readable value")
        progress.warning("[%s] %s partial: %s", ctx.label, name, report.reason)


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


def iso(value: Any) -> str | None:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else None
