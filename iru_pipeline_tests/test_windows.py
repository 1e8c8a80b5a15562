"""Parallel windowed search: every record exactly once, whatever the split, and the same
ingestion guarantees with windows on."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from iru_pipeline.fake_intercom import FakeIntercom
from iru_pipeline.intercom_client import IntercomClient, IntercomServerError, RetryPolicy
from iru_pipeline.intercom_source.parallel import parallel_pages
from iru_pipeline.intercom_source.windows import (
    CONTACTS_SEARCH,
    CONVERSATIONS_SEARCH,
    FIRST_SYNC_START,
    DayClock,
    SearchSpec,
    Window,
    windowed_search,
)
from iru_pipeline_tests.helpers import (
    FAST_RETRY,
    assert_matches_fake,
    assert_nothing_leaked,
    assert_values_match_fake,
    contact_updated_at,
    db_ids,
    pipeline_env,
    run_with_env,
)

FAST = RetryPolicy(max_retries=4, backoff_base=0.01, backoff_cap=0.05)


def client(fake: FakeIntercom, region: str) -> IntercomClient:
    return IntercomClient(region, fake.base_url(region), fake.token(region), retry=FAST)


@pytest.mark.parametrize("region", ["us", "au"])
@pytest.mark.parametrize("workers", [1, 4])
def test_contact_day_windows_return_every_contact_once(fake: FakeIntercom, region: str, workers: int) -> None:
    plans: list[list[Window]] = []
    splits: list[tuple[int, object]] = []
    ws = fake.workspace(region)
    with client(fake, region) as c:
        ids = [str(i["id"]) for page in windowed_search(
            c, CONTACTS_SEARCH, 0, int(fake.now()), tz=ws.timezone, workers=workers, split_above=40,
            per_page=25, on_plan=lambda windows, total: plans.append(windows),
            on_split=lambda total, newest: splits.append((total, newest))) for i in page.items]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(str(x["id"]) for x in ws.contacts())
    if workers > 1:
        assert plans and len(plans[0]) > 4, "the sync was split into windows"
        assert splits == [(len(ids), None)], "a sync from the beginning is read oldest first: newest unknown"
        days = DayClock(ws.timezone)
        assert all(days.day_start(w.lo) == w.lo for w in plans[0]), "contact windows are whole local days"


def _search_sorts(c: IntercomClient) -> list[tuple[str, int]]:
    """Records each search's sort order and page size as it is sent."""
    sent: list[tuple[str, int]] = []

    def on_request(request: httpx.Request) -> None:
        if request.url.path.endswith("/search"):
            body = json.loads(request.content)
            sent.append(((body.get("sort") or {}).get("order", "none"), body["pagination"]["per_page"]))

    c._http.event_hooks = {"request": [on_request], "response": []}
    return sent


def test_a_large_contacts_sync_after_a_cursor_is_read_newest_first(fake: FakeIntercom) -> None:
    """After a cursor, the first page is read newest first (a quiet run stops on it), so the
    split is announced with the newest contact's cursor, and the oldest record in the range is
    asked for with one one-row search sorted ascending."""
    ws = fake.workspace("us")
    stamps = sorted(x["updated_at"] for x in ws.contacts() if isinstance(x.get("updated_at"), int))
    days = DayClock(ws.timezone)
    start = stamps[len(stamps) // 4]
    expected = {str(x["id"]) for x in ws.contacts()
                if isinstance(x.get("updated_at"), int) and x["updated_at"] >= days.day_start(start)}
    splits: list[tuple[int, object]] = []
    with client(fake, "us") as c:
        sent = _search_sorts(c)
        ids = [str(i["id"]) for page in windowed_search(
            c, CONTACTS_SEARCH, start, int(fake.now()), tz=ws.timezone, workers=4, split_above=40, per_page=25,
            on_split=lambda total, newest: splits.append((total, newest))) for i in page.items]
    assert expected <= set(ids) and len(ids) == len(set(ids))
    assert splits == [(len(ids), stamps[-1])], "the split is announced with the newest contact's cursor"
    assert sent[0] == ("descending", 25)
    assert sent[1] == ("ascending", 1), "the oldest record, asked for after the first page"


def test_a_contacts_sync_from_the_beginning_takes_the_oldest_from_its_first_page(fake: FakeIntercom) -> None:
    """Without a cursor no contact is older than the start, so nothing is gained by reading
    newest first: the first page is read oldest first and names the oldest contact, and no
    one-row search asks for it again (a round trip before any window's page)."""
    ws = fake.workspace("us")
    with client(fake, "us") as c:
        sent = _search_sorts(c)
        ids = [str(i["id"]) for page in windowed_search(
            c, CONTACTS_SEARCH, FIRST_SYNC_START, int(fake.now()), tz=ws.timezone, workers=4, split_above=40,
            per_page=25) for i in page.items]
    assert sorted(ids) == sorted(str(x["id"]) for x in ws.contacts())
    assert sent[0] == ("ascending", 25)
    assert ("ascending", 1) not in sent, "no separate search for the oldest contact"


def test_conversation_second_windows_return_every_conversation_once(fake: FakeIntercom) -> None:
    ws = fake.workspace("eu")
    with client(fake, "eu") as c:
        ids = [str(i["id"]) for page in windowed_search(
            c, CONVERSATIONS_SEARCH, 0, int(fake.now()), workers=4, split_above=30, per_page=20) for i in page.items]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(str(x["id"]) for x in ws.conversations())


@pytest.mark.parametrize("spec", [CONTACTS_SEARCH, CONVERSATIONS_SEARCH], ids=lambda s: s.resource)
def test_a_full_sync_is_split_from_the_oldest_record(fake: FakeIntercom, spec: SearchSpec) -> None:
    """From the epoch, every record sits in the last few years: windows are planned from the
    oldest record on, the decades before it are one window (a lagging index may still show a
    record there), and the windows cover [start, now] and beyond without gaps or overlaps."""
    ws = fake.workspace("us")
    records = list(ws.contacts() if spec.whole_days else ws.conversations())
    now = int(fake.now())
    oldest = min(r["updated_at"] for r in records if isinstance(r.get("updated_at"), int))
    assert now - oldest < 5 * 365 * 86400, "the input: every record in the last few years"
    days = DayClock(ws.timezone if spec.whole_days else "UTC")
    lo = days.day_start(0) if spec.whole_days else 0
    floor = days.day_start(oldest) if spec.whole_days else oldest
    plans: list[list[Window]] = []
    with client(fake, "us") as c:
        ids = [str(i["id"]) for page in windowed_search(
            c, spec, 0, now, tz=days.tz.key, workers=4, split_above=40, per_page=25,
            on_plan=lambda windows, total: plans.append(windows)) for i in page.items]
    assert sorted(ids) == sorted(str(r["id"]) for r in records), "every record once"
    [windows] = plans
    assert [w for w in windows if w.hi is not None and w.hi <= floor] == [Window(lo, floor)]
    assert len(windows) > 4, "the range holding records was split"
    ordered = sorted(windows, key=lambda w: w.lo)
    assert ordered[0].lo == lo and ordered[-1].hi is None
    assert all(a.hi == b.lo for a, b in zip(ordered, ordered[1:], strict=False)), "no gap, no overlap"
    assert all(w.hi is None or w.hi > w.lo for w in windows)


def test_a_window_that_fails_stops_the_sync_with_its_error(fresh_fake: FakeIntercom) -> None:
    fresh_fake.faults("us").update(error_every=1, fault_paths=("/contacts/search",))
    with client(fresh_fake, "us") as c, pytest.raises(IntercomServerError):
        list(windowed_search(c, CONTACTS_SEARCH, 0, int(fresh_fake.now()), tz="UTC", workers=4, split_above=10))


def _settled(read: Callable[[], int], limit: int) -> int:
    """`read()` once it stops changing (producers blocked) or reaches `limit` (nothing bounds them)."""
    last = -1
    for _ in range(400):
        now = read()
        if now == last or now >= limit:  # unchanged for one poll: the producers are blocked
            return now
        last = now
        time.sleep(0.05)
    return read()


def test_parallel_pages_is_bounded_and_drains_on_early_exit() -> None:
    """A consumer that takes 3 pages and stops: the producers stall on the bounded queue, then
    stop without hanging, and no window thread outlives the generator."""
    workers, per_job, taken = 4, 100, 3
    produced = {"n": 0}
    lock = threading.Lock()

    def job() -> Iterator[list[dict[str, int]]]:
        for _ in range(per_job):
            with lock:
                produced["n"] += 1
            yield [{"id": 1}]

    gen = parallel_pages([job for _ in range(workers)], workers=workers)
    first = [next(gen) for _ in range(taken)]
    # Stalled: what was taken, a queue of two pages per worker, and one page in each
    # worker's hand waiting for room. Unbounded, it would run to workers * per_job.
    stalled = _settled(lambda: produced["n"], workers * per_job)
    assert len(first) == taken
    assert taken < stalled <= taken + 2 * workers + workers, stalled
    gen.close()  # the consumer stops early: producers must not hang
    # Each producer may make one more page after its last put before it sees the stop.
    assert produced["n"] <= stalled + workers
    assert not [t for t in threading.enumerate() if t.name.startswith("intercom-window")]


@pytest.fixture
def frozen_fake():
    clock = {"t": 1_790_000_000.0}
    with FakeIntercom(seed=5, contacts=500, conversations=300, now=lambda: clock["t"]) as fake:
        yield fake


WINDOWED = {**FAST_RETRY, "extract_workers": 4, "window_split_above": 40, "table_workers_above": None}


@pytest.mark.parametrize("options", [
    pytest.param(WINDOWED, id="tables-built-here"),
    pytest.param({**WINDOWED, "table_workers_above": 0, "table_processes": 2}, id="tables-built-in-worker-processes"),
])
def test_ingestion_with_windows_is_exact_through_changes(frozen_fake: FakeIntercom, tmp_path: Path,
                                                         options: dict) -> None:
    """The same-second, same-day change scenario of test_ingestion, with every sync split
    into parallel windows, and its tables built in this process or in worker processes."""
    WINDOWED = options  # noqa: N806
    fake = frozen_fake
    env = pipeline_env(fake, tmp_path, regions=("us", "eu"))
    settings, first = run_with_env(env, with_evidence=False, reconcile=False, intercom_options=WINDOWED)
    assert not first.failed
    db = settings.duckdb_path
    assert_matches_fake(db, fake, regions=("us", "eu"))
    us, eu = fake.workspace("us"), fake.workspace("eu")
    touched = us.update_contacts(count=150, same_second=True)
    created = us.create_contacts(90, same_second=True)
    eu.update_conversations(count=120, same_second=True)
    eu.create_conversations(60, same_second=True)
    _, second = run_with_env(env, with_evidence=False, reconcile=False, intercom_options=WINDOWED)
    assert not second.failed
    us.update_contacts(ids=touched[:40], same_second=True)
    _, third = run_with_env(env, with_evidence=False, reconcile=False, intercom_options=WINDOWED)
    assert not third.failed
    assert_matches_fake(db, fake, regions=("us", "eu"))
    assert_values_match_fake(db, fake, regions=("us", "eu"), tables=("contacts", "conversations"))
    stored = contact_updated_at(db, "us")
    assert all(stored[c] == us.contact(c)["updated_at"] for c in touched + created)
    _, quiet = run_with_env(env, with_evidence=False, reconcile=False, intercom_options=WINDOWED)
    loaded = {(r["region"], r["resource"]): r["rows_loaded"] for r in quiet.sync_rows}
    assert [loaded[(r, t)] for r in ("us", "eu") for t in ("contacts", "conversations")] == [0, 0, 0, 0], \
        "the overlap filter skipped every unchanged record"
    assert_nothing_leaked(tmp_path, fake)


def test_a_quiet_run_after_a_busy_day_costs_one_contact_search(frozen_fake: FakeIntercom, tmp_path: Path) -> None:
    """Contact search returns the cursor's whole day; read newest first, the quiet run stops
    on its first page however many contacts changed earlier that day."""
    fake = frozen_fake
    fake.workspace("us").create_contacts(400, same_second=True)
    fake.advance_clock(3600)  # an hour later, same day: the burst is before the overlap window
    fake.workspace("us").create_contacts(1)
    env = pipeline_env(fake, tmp_path, regions=("us",))
    run_with_env(env, with_evidence=False, reconcile=False)
    fake.reset_stats("us")
    _, quiet = run_with_env(env, with_evidence=False, reconcile=False)
    assert not quiet.failed
    assert fake.stats("us")["by_route"]["POST /contacts/search"] == 1
    assert {(r["resource"]): r["rows_loaded"] for r in quiet.sync_rows}["contacts"] == 0


def test_a_sync_that_fails_mid_way_leaves_no_window_threads(tmp_path: Path) -> None:
    """A table worker dies while windows are being fetched: the contacts sync fails with its
    error (that resource only: its state is put back) and the window threads stop with it (the
    exception keeps the sync's generators alive, so they must not wait for garbage collection
    to be released)."""
    import dlt

    from iru_pipeline.intercom_source import SyncReport, intercom_source
    from iru_pipeline.storage import duckdb_destination

    with FakeIntercom(seed=3, contacts=3000, conversations=10) as fake:
        fake.faults("us").update(latency_ms=20)
        c = client(fake, "us")
        report = SyncReport("us")
        source = intercom_source(region="us", client=c, pii_key="k" * 32, reconcile=False, report=report,
                                 workers=4, split_above=100, table_workers_above=0, table_processes=1)
        pipeline = dlt.pipeline(pipeline_name="fails_mid_way", pipelines_dir=str(tmp_path / "p"),
                                destination=duckdb_destination(tmp_path / "x.duckdb"), dataset_name="intercom",
                                progress=None)
        stop = threading.Event()

        def kill_the_worker() -> None:
            while not stop.is_set():
                if c.total_calls() > 8:
                    for pid in _table_worker_children():
                        os.kill(pid, signal.SIGKILL)
                        return
                stop.wait(0.01)

        killer = threading.Thread(target=kill_the_worker, daemon=True)
        killer.start()
        try:
            pipeline.extract(source.with_resources("contacts"), loader_file_format="parquet")
            contacts = report.resource("contacts")
            assert contacts.status == "failed" and "table worker process ended unexpectedly" in (contacts.reason or "")
        finally:
            stop.set()
            killer.join()
            c.close()
        windows = [t for t in threading.enumerate() if t.name.startswith("intercom-window")]
        for t in windows:
            t.join(timeout=5)
        assert not [t for t in windows if t.is_alive()], "window threads outlived the failed sync"


def _table_worker_children() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"table_workers" in cmdline:
            pids.append(int(entry.name))
    return pids


class _Timed(httpx.HTTPTransport):
    """Forwards to the real server and notes when each request started and ended."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, float, float]] = []  # "METHOD /path", start, end
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = super().handle_request(request)
        response.read()
        with self._lock:
            self.requests.append((f"{request.method} {request.url.path}", started, time.perf_counter()))
        return response


def test_deleted_conversations_are_listed_while_the_search_pages(tmp_path: Path) -> None:
    """The deleted conversations' listing starts with the conversations resource, not after its
    windows; the rows that land are still exact: every deleted conversation is a marker and
    gone from `conversations`, every other one is there once."""
    import dlt

    from iru_pipeline.intercom_source import SyncReport, intercom_source
    from iru_pipeline.storage import duckdb_destination

    with FakeIntercom(seed=4, contacts=10, conversations=2400, regions=("us",)) as fake:
        ws = fake.workspace("us")
        every = [str(c["id"]) for c in ws.conversations()]
        gone = every[::15]
        ws.delete_conversations(gone)
        listed = len(ws.deleted_conversations())
        fake.faults("us").update(latency_ms=20)
        transport = _Timed()
        report = SyncReport("us")
        with IntercomClient("us", fake.base_url("us"), fake.token("us"), retry=FAST, transport=transport) as c:
            source = intercom_source(region="us", client=c, pii_key="k" * 32, reconcile=False, report=report,
                                     workers=4, split_above=300, table_workers_above=None)
            pipeline = dlt.pipeline(pipeline_name="deleted_early", pipelines_dir=str(tmp_path / "p"),
                                    destination=duckdb_destination(tmp_path / "x.duckdb"), dataset_name="intercom",
                                    progress=None)
            pipeline.run(source.with_resources("conversations"), loader_file_format="parquet")
    assert report.resource("conversations").status == "ok", report.resource("conversations").reason
    searches = [r for r in transport.requests if r[0] == "POST /conversations/search"]
    deleted = [r for r in transport.requests if r[0] == "GET /conversations/deleted"]
    assert len(deleted) == -(-listed // 60) and len(searches) > 10, "every deleted page once; the search was split"
    assert min(start for _, start, _ in deleted) < max(end for _, _, end in searches), \
        "the deleted listing started before the search's windows were done"
    db = tmp_path / "x.duckdb"
    assert db_ids(db, "conversations", "us") == sorted(set(every) - set(gone))
    assert not [t for t in threading.enumerate() if t.name.startswith("intercom-window") and t.is_alive()]
