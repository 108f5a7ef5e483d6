"""each_chunk: a range's chunks, each in a transaction of its own, by worker processes from three
chunks on, with the results in chunk order, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.daily import day_chunks
from perf_pipeline.warehouse import chunks
from perf_pipeline.warehouse.chunks import WORKERS_MIN_CHUNKS, each_chunk, stop_workers, uses_workers
from perf_pipeline.warehouse.db import warehouse_engine

FIRST = dt.date(2026, 1, 1)
LOG = sa.Table("chunk_log", sa.MetaData(), sa.Column("first_day", sa.Date, primary_key=True),
               sa.Column("last_day", sa.Date), sa.Column("pid", sa.Integer))


def log_chunk(conn: Connection, first: dt.date, last: dt.date, failing: dt.date | None) -> tuple[dt.date, int]:
    """A chunk's work: a row of the chunk and the process that wrote it; fails on the chunk starting
    at ``failing`` after writing its row (which its rollback must drop)."""
    conn.execute(LOG.insert().values(first_day=first, last_day=last, pid=os.getpid()))
    if first == failing:
        raise ValueError(f"chunk {first} failed")
    return first, os.getpid()


def write_nothing(conn: Connection, first: dt.date, last: dt.date, _: None) -> None:
    """A chunk's work that writes nothing."""


def backfill_in_a_child(url: str) -> None:
    """A process started by multiprocessing (as the benchmark runs the pipeline) that starts workers."""
    chunks.settings.usable_cpus = lambda: 2
    each_chunk(url, day_chunks(FIRST, FIRST + dt.timedelta(days=20)), log_chunk, None)


@pytest.fixture
def url(warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(chunks.settings, "usable_cpus", lambda: 2)  # workers, whatever CPUs run the test
    engine = warehouse_engine(warehouse_url)
    LOG.create(engine, checkfirst=True)
    return warehouse_url


def logged(url: str) -> list[tuple[dt.date, dt.date, int]]:
    with warehouse_engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(LOG).order_by(LOG.c.first_day))]


def test_workers_do_the_chunks_and_return_their_results_in_order(url: str) -> None:
    spans = day_chunks(FIRST, FIRST + dt.timedelta(days=30))  # 5 chunks of a week
    results = each_chunk(url, spans, log_chunk, None)
    assert [first for first, _ in results] == [first for first, _ in spans]
    assert os.getpid() not in {pid for _, pid in results}  # done by workers...
    assert len({pid for _, pid in results}) <= 2  # ...two of them
    assert [(first, last) for first, last, _ in logged(url)] == spans  # each chunk committed


def test_a_short_range_is_done_here(url: str) -> None:
    spans = day_chunks(FIRST, FIRST + dt.timedelta(days=13))  # 2 chunks
    assert {pid for _, pid in each_chunk(url, spans, log_chunk, None)} == {os.getpid()}
    assert len(logged(url)) == 2


def slow_log_chunk(conn: Connection, first: dt.date, last: dt.date, failing: dt.date | None,
                   prepared: dt.date) -> tuple[dt.date, int]:
    """``log_chunk`` taking a moment, with the argument its chunk's ``prepare`` gave."""
    assert prepared == first
    time.sleep(0.2)
    return log_chunk(conn, first, last, failing)


def test_prepare_runs_here_in_order_at_most_one_chunk_per_worker_ahead(url: str) -> None:
    spans = day_chunks(FIRST, FIRST + dt.timedelta(days=69))  # 10 chunks
    prepared: list[tuple[dt.date, int, int]] = []

    def prepare(first: dt.date, _last: dt.date) -> tuple[dt.date]:
        prepared.append((first, os.getpid(), len(logged(url))))
        return (first,)

    results = each_chunk(url, spans, slow_log_chunk, None, prepare=prepare)
    assert [first for first, _ in results] == [first for first, _ in spans]
    assert [(first, pid) for first, pid, _ in prepared] == [(first, os.getpid()) for first, _ in spans]
    # Two workers: four chunks handed out and not done at most, so the next is prepared only once
    # all but three of those before it are done (and committed).
    assert all(index - committed <= 3 for index, (_, _, committed) in enumerate(prepared))
    assert max(index - committed for index, (_, _, committed) in enumerate(prepared)) >= 2  # prepared ahead


def test_a_failing_chunk_is_raised_and_rolled_back_the_others_stay_committed(url: str) -> None:
    spans = day_chunks(FIRST, FIRST + dt.timedelta(days=27))  # 4 chunks
    with pytest.raises(ValueError, match="chunk 2026-01-15 failed"):
        each_chunk(url, spans, log_chunk, spans[2][0])
    written = [first for first, _, _ in logged(url)]
    assert spans[2][0] not in written  # its transaction rolled back
    assert set(written) <= {first for first, _ in spans} and spans[0][0] in written


def test_when_workers_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file_url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setattr(chunks.settings, "usable_cpus", lambda: 2)
    assert not uses_workers(file_url, WORKERS_MIN_CHUNKS - 1)
    assert uses_workers(file_url, WORKERS_MIN_CHUNKS)
    assert uses_workers("postgresql+psycopg://postgres@127.0.0.1:5432/test", 52)
    assert not uses_workers("sqlite://", 52) and not uses_workers("sqlite:///:memory:", 52)  # private to this process
    monkeypatch.setattr(chunks.settings, "usable_cpus", lambda: 1)
    assert not uses_workers(file_url, 52)


def test_the_workers_serve_the_next_ranges_until_stopped(url: str) -> None:
    first = {pid for _, pid in each_chunk(url, day_chunks(FIRST, FIRST + dt.timedelta(days=20)), log_chunk, None)}
    workers = chunks._pool()
    each_chunk(url, day_chunks(FIRST + dt.timedelta(days=21), FIRST + dt.timedelta(days=41)), log_chunk, None)
    assert chunks._pool() is workers  # not started again for the next range
    assert len(logged(url)) == 6
    stop_workers()
    for pid in first:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone


def test_a_process_started_by_multiprocessing_exits_with_its_workers(url: str) -> None:
    child = multiprocessing.get_context("spawn").Process(target=backfill_in_a_child, args=(url,))
    child.start()
    child.join(120)
    hung = child.is_alive()
    if hung:
        child.kill()
        child.join()
    assert not hung and child.exitcode == 0  # its exit stopped the workers instead of waiting for them
    assert len(logged(url)) == 3


def test_a_worker_killed_between_ranges_fails_one_range_and_the_next_starts_new_ones(url: str) -> None:
    each_chunk(url, day_chunks(FIRST, FIRST + dt.timedelta(days=20)), log_chunk, None)
    os.kill(next(iter(chunks._pool()._processes)), signal.SIGKILL)  # out of memory, say
    later = day_chunks(FIRST + dt.timedelta(days=21), FIRST + dt.timedelta(days=41))
    with pytest.raises(BrokenProcessPool):
        for _ in range(50):  # the pool notices the death within moments; until then a range may still pass
            each_chunk(url, later, write_nothing, None)
            time.sleep(0.1)
    assert chunks._workers is None  # dropped: the next range starts new workers
    assert [first for first, _ in each_chunk(url, later, log_chunk, None)] == [first for first, _ in later]
