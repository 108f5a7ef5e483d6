"""A range's chunks of days, each read, computed and written in a transaction of its own, by worker
processes (two, on a machine with two CPUs or more) when the range has several chunks.

A backfill's step reads a chunk (a week of events, four weeks of as-of days), computes its rows and
replaces the chunk's rows in the warehouse. Done one chunk after the other in one process, half of
that time is SQLite inserting rows, during which the second CPU stays idle, and the other half is
reading and computing, during which the database does. With two workers, one inserts a chunk
while the other reads and computes the next: SQLite lets one transaction write at a time, and
each chunk's transaction takes the write lock only at its first write (``db.replace_partition``
deletes, then inserts), after its reading and computing, so a worker waits for the lock at most as
long as the other worker's inserts. Threads would not do it: reading and computing are mostly
Python and pandas holding the GIL (two aggregate steps run in two threads took as long as one after
the other). The rows are the same either way: each chunk is computed by the same function from the
same inputs (what it reads, committed, and what ``prepare`` hands it).

Each chunk commits on its own, as a run of those days alone would. A run that fails part way leaves
the chunks done before the failure written and the others as they were; each day then holds what a
run of that day writes, and re-running the range gives what a clean run gives (the README's
guarantee).

The work is a module-level function (workers import it by name) taking a connection inside the
chunk's transaction, the chunk's first and last day and picklable arguments, returning small,
picklable figures (what the asset reports per day). A worker opens an engine of its own for each
chunk; the process that hands it the chunks created the schema. An in-memory SQLite database is
private to its process, so its chunks always run here.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import multiprocessing.util
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from perf_pipeline import settings
from perf_pipeline.warehouse.db import create_warehouse_engine, warehouse_engine

T = TypeVar("T")
Chunk = tuple[dt.date, dt.date]
# From this many chunks on, workers do them: a range of one or two chunks (a day, a week of events,
# four weeks of as-of days) gains little from them, and a run of a new day never starts them.
WORKERS_MIN_CHUNKS = 3
# Two workers: one inserts while the other reads and computes. More would queue for SQLite's one
# writer (and hold PostgreSQL connections besides the warehouse pool's), each with a chunk in memory.
MAX_WORKERS = 2


def each_chunk(url: str, chunks: Sequence[Chunk], work: Callable[..., T], *args: Any,
               prepare: Callable[[dt.date, dt.date], tuple[Any, ...]] | None = None) -> list[T]:
    """``work(conn, first, last, *args)`` for each chunk, each in a transaction of its own
    (``engine.begin()``), by the workers when ``uses_workers``; the results in chunk order.

    ``prepare(first, last)``, when given, runs in this process for each chunk in order, before the
    chunk is handed out, and what it returns is added to the chunk's arguments: what must stay in this
    process (the LLM judge, its client and cache) is done here for the next chunks while the workers do
    the ones before, at most one chunk per worker ahead of them (prepared chunks wait in memory).

    A failure is raised once the chunks then running are done: those commit (a chunk queued to a
    worker but not started may still run), the others are dropped. A chunk's failure is seen as soon
    as it happens, or, while ``prepare`` runs, when it returns; a failure of ``prepare`` is raised the
    same way. A worker that died (killed, out of memory) takes the chunks of the other worker down
    with it (rolled back); the next range starts new workers."""
    chunks = list(chunks)
    engine = warehouse_engine(url)  # the schema, created here before any worker opens the database

    def arguments(first: dt.date, last: dt.date) -> tuple[Any, ...]:
        return args if prepare is None else (*args, *prepare(first, last))

    if not uses_workers(url, len(chunks)):
        return [_in_transaction(engine, work, first, last, arguments(first, last)) for first, last in chunks]
    running: list[Future[T]] = []
    try:
        pool = _pool()
        workers = _worker_count()
        for first, last in chunks:
            pending = [future for future in running if not future.done()]
            if len(pending) >= 2 * workers:  # each worker has one chunk queued: prepare the next later
                wait(pending, return_when=FIRST_COMPLETED)
            if _failed(running):
                break  # prepare no more: the error is raised below
            chunk_args = arguments(first, last)
            if _failed(running):  # while this one was prepared
                break
            running.append(pool.submit(_in_worker, url, work, first, last, chunk_args))
        wait(running, return_when=FIRST_EXCEPTION)
        return [future.result() for future in running]
    except BaseException as error:
        for future in running:
            future.cancel()
        wait(running)
        if isinstance(error, BrokenProcessPool) or any(
                isinstance(future.exception(), BrokenProcessPool) for future in running if not future.cancelled()):
            stop_workers(wait=False)
        raise


def _failed(running: Sequence[Future[Any]]) -> bool:
    return any(future.done() and future.exception() is not None for future in running)


def uses_workers(url: str, chunks: int) -> bool:
    """Whether ``each_chunk`` hands ``chunks`` chunks of the warehouse at ``url`` to the workers: from
    ``WORKERS_MIN_CHUNKS`` chunks on, with more than one usable CPU, and not for an in-memory SQLite
    database, which only this process sees."""
    parsed = sa.engine.make_url(url)
    in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
    return chunks >= WORKERS_MIN_CHUNKS and settings.usable_cpus() > 1 and not in_memory


def _in_transaction(engine: Engine, work: Callable[..., T], first: dt.date, last: dt.date,
                    args: tuple[Any, ...]) -> T:
    with engine.begin() as conn:
        return work(conn, first, last, *args)


def _in_worker(url: str, work: Callable[..., T], first: dt.date, last: dt.date, args: tuple[Any, ...]) -> T:
    """A chunk in a worker, with an engine of its own for the chunk: a worker serves every range of
    its process, whose warehouses (a test's, say) come and go; the schema exists (``each_chunk``)."""
    engine = create_warehouse_engine(url)
    try:
        return _in_transaction(engine, work, first, last, args)
    finally:
        engine.dispose()
        _release_memory()


def _release_memory() -> None:
    """Give the chunk's memory back to the system: an idle worker kept the 450 to 490 MB of RSS a
    week of the fleet's task events left in its heap (freed, but not returned) while the run's process
    went on with steps of its own; glibc's ``malloc_trim`` returns it (elsewhere: nothing to do)."""
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc
        return None


_libc = _load_libc()


_workers: ProcessPoolExecutor | None = None
_workers_lock = threading.Lock()
_finalizer: multiprocessing.util.Finalize | None = None


def _pool() -> ProcessPoolExecutor:
    """The process's workers (``MAX_WORKERS`` at most, one per usable CPU), started by the first range
    that needs them and kept for the next ones (a run's steps, the runs of ``perf-pipeline run``), so
    that each step does not pay for starting them; they stop when the process exits."""
    global _workers, _finalizer
    with _workers_lock:
        if _workers is None:
            _workers = ProcessPoolExecutor(_worker_count(),
                                           mp_context=settings.worker_context([__name__]),
                                           initializer=settings.tune_garbage_collection)
        if _finalizer is None:
            # Stopped before the process's exit waits for its children: a process started by
            # multiprocessing (as the benchmark runs the pipeline) waits for them before any other
            # exit handler, and idle workers would wait for work for ever.
            _finalizer = multiprocessing.util.Finalize(None, stop_workers, exitpriority=100)
        return _workers


def _worker_count() -> int:
    return min(settings.usable_cpus(), MAX_WORKERS)


def stop_workers(wait: bool = True) -> None:
    """Stop the process's workers, if started (a later range starts new ones): after a worker died,
    and at the end of a test that started them."""
    global _workers
    with _workers_lock:
        if _workers is not None:
            _workers.shutdown(wait=wait, cancel_futures=True)
        _workers = None
