"""Search pages of contacts and conversations turned into Arrow tables in worker processes.

Why processes: decoding a page's records and coercing their values is pure Python work,
about 15 µs per contact, and the GIL keeps it on one core whatever the number of threads.
The main process fetches the pages and reads only their pagination (the client leaves the
records as JSON bytes); the workers decode the records, build the table and report, for the
overlap filter, each record's id, cursor value and (when it may be needed) content hash. So
tables are built on the other cores while the main process fetches and hands them to dlt.

Why not `multiprocessing`: its spawn and forkserver children re-import the parent's main
module, which runs an unguarded user script (a plain dlt pipeline script) a second time in
every worker; fork is unsafe in a process that runs threads. So each worker is a plain
`python -m iru_pipeline.intercom_records.table_workers` speaking a small framed protocol on
its stdin and stdout:

- first frame: the settings as JSON, including the PII key (through the pipe, never argv,
  environment or a file; the worker's environment has none of our settings);
- then per task (PAGES_PER_TASK pages' records as one JSON array):
  `<u32 length><f64 hash_from>` and the records' JSON, written piece by piece from the pages
  (`array_pieces`: views of each page's elements, never a joined copy);
- answered per task, in order: `<u32 length>` and `[table as Arrow IPC, meta as JSON]`,
  or an error line.

The workers use the same `tables` builders, so a table is the same wherever it was built.
A worker ends when its stdin closes, so it never outlives its parent.
"""

from __future__ import annotations

import gc
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, BinaryIO

import msgspec
import orjson
import pyarrow as pa

from iru_pipeline.intercom_records.pii import Pseudonymizer
from iru_pipeline.intercom_records.tables import CONTACTS, CONVERSATIONS, TableSpec
from iru_pipeline.intercom_records.transforms import content_hash, cursor_seconds

SPECS = {spec.name: spec for spec in (CONTACTS, CONVERSATIONS)}
_LENGTH = struct.Struct("<I")
_TASK = struct.Struct("<Id")
_OK, _ERROR = b"T", b"E"
IN_FLIGHT_PER_WORKER = 3
"""Tasks queued per worker: enough to keep it busy while the main process hands a batch to
dlt (tens of milliseconds), few enough to bound memory (a task of 10 contact pages is about
3.3 MB)."""
GC_EVERY_TASKS = 50

_RAW_RECORDS = msgspec.json.Decoder(list[msgspec.Raw])

Built = tuple[pa.Table, list[str], list[Any], list[str | None]]
"""A task's table, and its records' ids, cursor values and content hashes (or None)."""


class TableWorkerError(RuntimeError):
    """A worker could not build a page's table (its records are not JSON it can read), or died."""


def default_processes() -> int:
    """One worker per core, at most 4 (beyond that the API's rate limit is the bound)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores))


class TableWorkers:
    """Worker processes building one resource's tables from pages' records, in page order.

    `submit` takes a task's records (JSON bytes) and yields what earlier tasks built; `drain`
    yields the rest. At most IN_FLIGHT_PER_WORKER tasks per worker are in flight, so memory
    stays bounded however large the sync."""

    def __init__(
        self, spec: TableSpec, cursor: str, region: str, workspace_id: str | None,
        pii_key: str | None = None, internal_domains: Iterable[str] = (), known_clear_emails: Iterable[str] = (),
        processes: int | None = None,
    ) -> None:
        settings = orjson.dumps({
            "table": spec.name, "cursor": cursor, "region": region, "workspace_id": workspace_id,
            "pii_key": pii_key, "internal_domains": list(internal_domains),
            "known_clear_emails": list(known_clear_emails),
        })
        self.processes = processes or default_processes()
        self._workers = [_Worker(settings) for _ in range(self.processes)]
        self._in_flight: deque[_Worker] = deque()
        self._next = 0

    def submit(self, pages: Sequence[bytes], hash_from: float) -> Iterator[Built]:
        """Queue the records of `pages` (JSON arrays, each already checked to be one) as one
        task, hashing those whose cursor is at or after `hash_from`."""
        worker = self._workers[self._next]
        self._next = (self._next + 1) % len(self._workers)
        worker.send(array_pieces(pages), hash_from)
        self._in_flight.append(worker)
        yield from self._ready(block=len(self._in_flight) > IN_FLIGHT_PER_WORKER * len(self._workers))

    def drain(self) -> Iterator[Built]:
        while self._in_flight:
            yield from self._ready(block=True)

    def _ready(self, block: bool) -> Iterator[Built]:
        while self._in_flight and (block or self._in_flight[0].has_result()):
            block = False
            yield self._in_flight.popleft().result()

    def close(self, abort: bool = False) -> None:
        """End the workers: after their queued tasks, or at once with `abort` (the sync failed
        or the process is stopping, so nothing they would still build is wanted)."""
        for worker in self._workers:
            worker.close(abort=abort)
        self._in_flight.clear()

    def __enter__(self) -> TableWorkers:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abort=exc_type is not None)


class _Worker:
    """One worker process. A thread writes its tasks and another reads its answers, so the
    main process never blocks on a full pipe (a task is larger than the pipe's buffer: a
    blocking write would wait for the worker to finish its previous task)."""

    def __init__(self, settings: bytes) -> None:
        # The worker needs no setting of ours: tokens and the PII key stay out of its environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCOM_", "IRU_"))}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self._answers: queue.Queue[tuple[bytes, bytes]] = queue.Queue()
        self._tasks: queue.Queue[list[bytes | memoryview] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="table-worker-reader", daemon=True)
        self._reader.start()
        self._writer = threading.Thread(target=self._write_tasks, name="table-worker-writer", daemon=True)
        self._writer.start()
        self._tasks.put([_LENGTH.pack(len(settings)), settings])

    def send(self, pieces: list[bytes | memoryview], hash_from: float) -> None:
        """Queue a task: one JSON array in `pieces`, written to the pipe one after the other."""
        if not self._writer.is_alive():
            raise TableWorkerError(f"a table worker process ended unexpectedly (exit status {self._proc.poll()})")
        self._tasks.put([_TASK.pack(sum(len(p) for p in pieces), hash_from), *pieces])

    def has_result(self) -> bool:
        return not self._answers.empty()

    def result(self) -> Built:
        kind, payload = self._answers.get()
        if kind != _OK:
            raise TableWorkerError(payload.decode(errors="replace"))
        return decode_built(payload)

    def _write_tasks(self) -> None:
        """Until None: a failed write means the worker ended, which the reader reports."""
        stream = self._proc.stdin
        assert stream is not None
        while (pieces := self._tasks.get()) is not None:
            try:
                for piece in pieces:
                    stream.write(piece)
                stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                return
        try:
            stream.close()  # the worker ends at end of input
        except OSError:
            pass

    def _read(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            while True:
                header = _read_exactly(stream, _LENGTH.size + 1)
                if header is None:
                    break
                (length,) = _LENGTH.unpack(header[:_LENGTH.size])
                payload = _read_exactly(stream, length)
                if payload is None:
                    break
                self._answers.put((header[_LENGTH.size:], payload))
        finally:
            status = self._proc.wait()
            self._answers.put((_ERROR, f"a table worker process ended unexpectedly (exit status {status})".encode()))

    def close(self, abort: bool = False) -> None:
        if abort:
            self._proc.kill()
        self._tasks.put(None)
        self._writer.join(timeout=10)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=10)


def array_pieces(arrays: Sequence[bytes]) -> list[bytes | memoryview]:
    """JSON arrays (each already checked to be one) as the pieces of one array: `[`, each
    non-empty array's elements with `,` between them, `]`. Several pages make a task because a
    table's fixed cost per column (Arrow calls) is paid per task.

    The elements are views into the pages, not copies, written to the worker's pipe one after
    the other: joining ten contact pages (3.3 MB) with slices and `bytes.join` copied them five
    times over in the main process, 5-6 ms per task with the GIL held, against 0.013 ms for the
    views (the same pages from the fake, 200 tasks each)."""
    pieces: list[bytes | memoryview] = [b"["]
    for array in arrays:
        elements = _elements(array)
        if elements:
            if len(pieces) > 1:
                pieces.append(b",")
            pieces.append(elements)
    pieces.append(b"]")
    return pieces


_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")
"""What `bytes.strip` keeps: JSON's whitespace, plus the vertical tab and form feed."""


def _elements(array: bytes) -> memoryview:
    """The bytes between a JSON array's brackets, without the whitespace around them, as a
    view (empty for an empty array)."""
    opening = _NOT_SPACE.search(array)
    if opening is None:
        return memoryview(b"")
    closing = _stripped_end(array, len(array)) - 1  # the `]`
    first = _NOT_SPACE.search(array, opening.start() + 1, closing)
    if first is None:
        return memoryview(b"")
    return memoryview(array)[first.start():_stripped_end(array, closing)]


def _stripped_end(data: bytes, end: int) -> int:
    """Where `data[:end]` ends without its trailing whitespace, copying only short tails."""
    while end > 0:
        tail = data[max(0, end - 64):end]
        kept = len(tail.rstrip())
        if kept:
            return end - len(tail) + kept
        end -= len(tail)
    return 0


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """`size` bytes, or None at end of stream."""
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------- the worker process


def _read_into(stream: BinaryIO, size: int) -> bytearray | None:
    """`size` bytes read straight into one buffer (a task is megabytes: no chunks to join),
    or None at end of stream."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        n = stream.readinto(view[done:])  # type: ignore[attr-defined]  # BinaryIO's stub lacks it; stdin.buffer has it
        if not n:
            return None
        done += n
    return buffer


def _encode(built: Built) -> bytes:
    table, keys, cursors, hashes = built
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    ipc = sink.getvalue().to_pybytes()
    meta = orjson.dumps([keys, cursors, hashes])
    return _LENGTH.pack(len(ipc)) + ipc + meta


def decode_built(payload: bytes) -> Built:
    (length,) = _LENGTH.unpack_from(payload)
    ipc = payload[_LENGTH.size:_LENGTH.size + length]
    table = pa.ipc.open_stream(pa.py_buffer(ipc)).read_all()
    keys, cursors, hashes = orjson.loads(payload[_LENGTH.size + length:])
    return table, keys, cursors, hashes


def build(spec: TableSpec, cursor: str, region: str, workspace_id: str | None, pseudo: Pseudonymizer | None,
          records_json: bytes | bytearray, hash_from: float) -> Built:
    """One task's table (its records may be several pages) and what the overlap filter needs
    of each record."""
    records = spec.decode(records_json, pseudo, extra=(cursor,))
    cursors = records.values((cursor,))
    hashes: list[str | None] = [None] * len(cursors)
    hashed = [n for n, c in enumerate(cursors) if (cursor_seconds(c) or 0.0) >= hash_from]
    if hashed:
        # The hash covers the whole record; typed records hold only the fields read, so the
        # records to hash are decoded again, alone, as the main process decodes them.
        raw = _RAW_RECORDS.decode(records_json) if records.typed else None
        for n in hashed:
            hashes[n] = content_hash(orjson.loads(memoryview(raw[n])) if raw is not None else records.items[n])
    table = spec.table_of(records, region, workspace_id)
    return table, [str(k) for k in records.values(("id",))], cursors, hashes


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker's loop: settings, then pages until stdin closes."""
    header = _read_exactly(stdin, _LENGTH.size)
    if header is None:
        return
    settings = orjson.loads(_read_exactly(stdin, _LENGTH.unpack(header)[0]) or b"{}")
    key = settings["pii_key"]
    pseudo = Pseudonymizer(key, settings["workspace_id"] or "", settings["internal_domains"],
                           settings["known_clear_emails"]) if key else None
    del settings["pii_key"], key
    spec = SPECS[settings["table"]]
    # A task's records are trees (no reference cycles), freed when its table is sent; the
    # cyclic collector would only walk them, several times per task. So it runs between tasks.
    gc.freeze()
    gc.disable()
    done = 0
    while (task := _read_exactly(stdin, _TASK.size)) is not None:
        length, hash_from = _TASK.unpack(task)
        records_json = _read_into(stdin, length)
        if records_json is None:
            return
        try:
            answer = _OK + _encode(build(spec, settings["cursor"], settings["region"], settings["workspace_id"],
                                         pseudo, records_json, hash_from))
        except (ValueError, TypeError, RecursionError) as exc:  # msgspec.DecodeError is a ValueError
            # Records the envelope check let through but the decoder refuses (e.g. 1e400).
            answer = _ERROR + f"a page's records could not be decoded ({type(exc).__name__}: {exc})".encode()
        stdout.write(_LENGTH.pack(len(answer) - 1) + answer)
        stdout.flush()
        done += 1
        if done % GC_EVERY_TASKS == 0:
            gc.collect()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the parent decides when a worker ends (it
    # kills it when the run stops), so a worker neither dies mid-answer nor prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
