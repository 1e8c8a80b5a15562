"""Pages fetched by several threads at once, handed to one consumer: `parallel_pages` (the
search windows) and `EarlyPages` (a listing started ahead of when it is read). Bounded by a
queue (`QUEUED_PAGES`), drained on early exit, and stopped promptly on a stop request
(`STOP_REQUESTED`, set by the command line on SIGINT or SIGTERM)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_DONE = object()


STOP_REQUESTED = threading.Event()
"""Set when the process is asked to stop (SIGINT, SIGTERM; see `iru_pipeline.cli`): window
threads end after their current request, start no further window, and never wait on a full
queue, so the process can exit within seconds."""

_PUT_WAIT_S = 0.1
"""How long a window thread waits on a full queue before checking whether to stop."""


class ExtractionStopped(Exception):
    """The process was asked to stop while pages were being fetched."""


QUEUED_PAGES = 128
"""Most pages fetched and waiting for the consumer: two per worker at the default 64. With
one page held by each of `workers` threads at most, a sync holds at most workers + 128 pages
(192 at the default 64: about 64 MB of contacts pages, 32 MB more than with 32 queued). At
250 ms per answer and Intercom's real limit, 32 queued pages filled in about 0.16 s; while the
main thread was inside dlt's extract (writing parquet, the incremental transform) the
fetchers stalled and 0-4 requests were in flight
(docs/ingestion.md#windows-paging-several-searches-at-once)."""


def parallel_pages(jobs: list[Callable[[], Iterator[Any]]], workers: int) -> Iterator[Any]:
    """Run page iterators on `workers` threads and yield their pages as they arrive.

    The queue is bounded, so memory stays flat however large the sync; an error in any job
    stops the others and is raised here. When the consumer goes away (the generator is
    closed) or the process is asked to stop, threads end after their current request: they
    never block on the full queue, and windows not started are cancelled."""
    pages: queue.Queue[Any] = queue.Queue(maxsize=max(2, min(workers * 2, QUEUED_PAGES)))
    stop = threading.Event()
    producer = _Producer(pages, stop)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="intercom-window")
    for job in jobs:
        pool.submit(producer.run, job)
    remaining = len(jobs)
    failure: BaseException | None = None
    try:
        while remaining:
            if STOP_REQUESTED.is_set():
                raise ExtractionStopped("stopped on request")
            try:
                got = pages.get(timeout=_PUT_WAIT_S)
            except queue.Empty:
                continue
            if got is _DONE:
                remaining -= 1
            elif isinstance(got, _Failure):
                failure = failure or got.exc
                stop.set()
            elif not stop.is_set():
                yield got
        if failure is not None:
            raise failure
    finally:
        stop.set()  # running threads end after their current request; queued windows never start
        pool.shutdown(wait=True, cancel_futures=True)


class _Producer:
    """The worker side of `parallel_pages`: runs one job and offers its pages to the queue,
    never blocking on a full queue once the run is stopped."""

    def __init__(self, pages: queue.Queue[Any], stop: threading.Event) -> None:
        self.pages = pages
        self.stop = stop

    def stopped(self) -> bool:
        return self.stop.is_set() or STOP_REQUESTED.is_set()

    def offer(self, item: Any) -> bool:
        while not self.stopped():
            try:
                self.pages.put(item, timeout=_PUT_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def run(self, job: Callable[[], Iterator[Any]]) -> None:
        try:
            if self.stopped():
                return
            for items in job():
                if not self.offer(items):
                    return
        except BaseException as exc:  # handed to the consumer
            self.offer(_Failure(exc))
        finally:
            self.offer(_DONE)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class EarlyPages:
    """One listing paged on its own thread from now on, its pages kept in order until they
    are read. Small listings only (the buffer is unbounded): deleted conversations are read
    while the search's windows page, instead of one page after another once they are done.

    Closing it (or a stop request) ends the thread after its current request."""

    def __init__(self, pages: Iterator[Any]) -> None:
        self._pages: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pages,), name="intercom-window-early", daemon=True)
        self._thread.start()

    def _run(self, pages: Iterator[Any]) -> None:
        try:
            for page in pages:
                if self._stop.is_set() or STOP_REQUESTED.is_set():
                    return
                self._pages.put(page)
        except BaseException as exc:  # handed to the reader
            self._pages.put(_Failure(exc))
        finally:
            self._pages.put(_DONE)

    def __iter__(self) -> Iterator[Any]:
        while True:
            if STOP_REQUESTED.is_set():
                raise ExtractionStopped("stopped on request")
            try:
                got = self._pages.get(timeout=_PUT_WAIT_S)
            except queue.Empty:
                continue
            if got is _DONE:
                return
            if isinstance(got, _Failure):
                raise got.exc
            yield got

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
