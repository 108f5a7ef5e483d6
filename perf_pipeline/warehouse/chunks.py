"""A range's chunks of days, each read, computed and written in a transaction of its own, by two
worker processes at once when the range is long enough to repay starting them.

A backfill's step reads a chunk (a week of events, four weeks of as-of days), computes its rows and
replaces the chunk's rows in the warehouse. Done one chunk after the other in one process, half of
that time is SQLite inserting rows, during which the second CPU stays idle, and the other half is
reading and computing, during which the database does. With a worker per CPU, one worker inserts a
chunk while the other reads and computes the next: SQLite lets one transaction write at a time, and
each chunk's transaction takes the write lock only at its first write (``db.replace_partition``
deletes, then inserts), after its reading and computing, so a worker waits for the lock at most as
long as the other worker's inserts. Threads would not do it: reading and computing are mostly
Python and pandas holding the GIL (two aggregate steps run in two threads took as long as one after
the other). The rows are the same either way: each chunk is computed by the same function from the
same committed inputs.

Each chunk commits on its own, as a run of those days alone would. A run that fails part way leaves
the chunks before the failure written and the others as they were; each day then holds what a run
of that day writes, and re-running the range gives what a clean run gives (the README's guarantee).

The work is a module-level function (workers import it by name) taking a connection inside the
chunk's transaction, the chunk's first and last day and picklable arguments, returning small,
picklable figures (what the asset reports per day). A worker opens its own engine for the
warehouse's URL; the process that started it created the schema. An in-memory SQLite database is
private to its process, so its chunks always run here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from functools import cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from perf_pipeline import settings
from perf_pipeline.warehouse.db import create_warehouse_engine, warehouse_engine

T = TypeVar("T")
Chunk = tuple[dt.date, dt.date]
# From this many chunks on, workers do them: starting the workers (a fork of the process's
# forkserver, which imports the project once) costs about a chunk of work, so two chunks gain little.
WORKERS_MIN_CHUNKS = 3


def each_chunk(url: str, chunks: Sequence[Chunk], work: Callable[..., T], *args: Any) -> list[T]:
    """``work(conn, first, last, *args)`` for each chunk, each in a transaction of its own
    (``engine.begin()``), in workers when there are ``WORKERS_MIN_CHUNKS`` chunks or more and more
    than one usable CPU (``worker_count``); the results in chunk order. The first failure is raised
    once the chunks already running are done; the chunks not started then are dropped."""
    chunks = list(chunks)
    engine = warehouse_engine(url)  # the schema, created here before any worker opens the database
    workers = worker_count(url, len(chunks))
    if workers < 2:
        return [_in_transaction(engine, work, first, last, args) for first, last in chunks]
    with ProcessPoolExecutor(workers, mp_context=settings.worker_context([__name__, work.__module__]),
                             initializer=settings.tune_garbage_collection) as pool:
        running: list[Future[T]] = [pool.submit(_in_worker, url, work, first, last, args) for first, last in chunks]
        try:
            return [future.result() for future in running]
        except BaseException:
            for future in running:
                future.cancel()
            raise


def worker_count(url: str, chunks: int) -> int:
    """How many worker processes ``each_chunk`` starts for ``chunks`` chunks of the warehouse at
    ``url``: one per usable CPU (at most one per chunk) from ``WORKERS_MIN_CHUNKS`` chunks on, none
    (0: this process does them) below that, with one CPU, or for an in-memory SQLite database."""
    parsed = sa.engine.make_url(url)
    in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
    if chunks < WORKERS_MIN_CHUNKS or in_memory:
        return 0
    workers = min(settings.usable_cpus(), chunks)
    return workers if workers > 1 else 0


def _in_transaction(engine: Engine, work: Callable[..., T], first: dt.date, last: dt.date,
                    args: tuple[Any, ...]) -> T:
    with engine.begin() as conn:
        return work(conn, first, last, *args)


def _in_worker(url: str, work: Callable[..., T], first: dt.date, last: dt.date, args: tuple[Any, ...]) -> T:
    return _in_transaction(_worker_engine(url), work, first, last, args)


@cache
def _worker_engine(url: str) -> Engine:
    """The worker's engine for ``url``, without creating the schema (the starting process did; a
    worker doing it again would wait for the other worker's write lock)."""
    return create_warehouse_engine(url)
