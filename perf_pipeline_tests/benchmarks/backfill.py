"""Benchmark: a backfill of every daily asset as one run over the range, against one run per day.

    python -m perf_pipeline_tests.benchmarks.backfill --days 90 --tasks-per-day 10000 --agents 200

A backfill from the UI runs ``daily_job`` once over the whole range (every daily asset has a
single-run backfill policy); the alternative is a run per partition, in day order, as the daily
schedule would have built them. This measures both on the same data and checks they build the same
warehouse. Synthetic logs of ``--days`` days (a fixed seed) are generated into a temporary landing
folder and ingested once into a SQLite warehouse through ``ingest_job``; the warehouse is copied
twice, and each copy is backfilled one way, with its own Dagster instance: one run of ``daily_job``
tagged with the range, or one run per day. A day built before the days after it has not seen the
feedback and answers that land on them yet; the late feedback sensor and the automation condition
bring it up to date, as they do in production. So each way is followed by ``perf-pipeline run``'s
launcher until nothing is requested ("settle"), timed apart. Reported: the wall time of each (and
of the generation and the ingest, apart), the peak RSS of the process that ran it, and whether the
tables the daily assets write hold the same rows after both ways have settled. Floats must be
exactly equal: the pipeline sums with fsum and reads in key order; when they differ, the largest
difference is reported.

``--no-settle`` times the two backfills alone, without settling or comparing: at 90 days of 10,000
tasks each settle re-runs most of the range, which doubles a run of hours; the equality is then
checked on a smaller range of the same generator.

Each pipeline step (the ingest, each way) runs in a fresh process, so the RSS peak is that step's
own and neither way starts with the other's caches or memory.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import sqlalchemy as sa

from perf_pipeline.launcher import RANGE_END_TAG, RANGE_START_TAG
from perf_pipeline.partitions import PARTITION_START, days_between
from perf_pipeline.synthetic.generator import generate_logs
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import (
    alert_conditions,
    alerts,
    collaboration_scores,
    daily_rollups,
    leaderboard,
    provider_rankings,
    task_events,
    task_scores,
    trends,
    window_stats,
)

SEED = 7
# Warnings and errors only: the assets' INFO progress lines would be thousands over 90 days.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
COMPARED_TABLES = [task_events, task_scores, collaboration_scores, daily_rollups, window_stats, trends, leaderboard,
                   provider_rankings, alert_conditions, alerts]
WAYS = {"single_run": "single-run backfill", "per_partition": "per-partition backfill"}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _pipeline_step(step: str, warehouse: Path, landing: Path, days: list[dt.date],
                   settle: bool = True) -> tuple[float, float, float]:
    """Run ``step`` (ingest, single_run or per_partition) on ``warehouse``, then settle it unless
    told not to; (seconds, seconds to settle, peak RSS in MiB).

    Runs in a child process: the environment is set before the definitions are built, because
    resources read it then."""
    from dagster import DagsterInstance

    from perf_pipeline.definitions import build_definitions
    from perf_pipeline.launcher import Launcher

    os.environ["PERF_WAREHOUSE_URL"] = f"sqlite:///{warehouse}"
    os.environ["PERF_LANDING_DIR"] = str(landing)
    defs = build_definitions()
    with DagsterInstance.ephemeral() as instance:
        launcher = Launcher(defs, instance, echo=lambda _: None)
        if step != "ingest":
            launcher.run()  # its cursor starts here: what the backfill updates, it sees
        started = time.perf_counter()
        if step == "ingest":
            defs.resolve_job_def("ingest_job").execute_in_process(instance=instance, run_config=RUN_CONFIG)
        elif step == "single_run":
            defs.resolve_job_def("daily_job").execute_in_process(
                instance=instance, run_config=RUN_CONFIG,
                tags={RANGE_START_TAG: days[0].isoformat(), RANGE_END_TAG: days[-1].isoformat()})
        else:
            for k, day in enumerate(days, start=1):
                defs.resolve_job_def("daily_job").execute_in_process(
                    instance=instance, run_config=RUN_CONFIG, partition_key=day.isoformat())
                if k % 10 == 0 or k == len(days):  # a long run shows it is moving, and its pace
                    print(f"    {k}/{len(days)} days ({time.perf_counter() - started:.0f} s)", flush=True)
        seconds = time.perf_counter() - started
        if step != "ingest" and settle:
            launcher.run()
        return seconds, time.perf_counter() - started - seconds, _peak_rss_mib()


def in_fresh_process(step: str, warehouse: Path, landing: Path, days: list[dt.date],
                     settle: bool = True) -> tuple[float, float, float]:
    # spawn, not fork: this process may hold threads and SQLite connections a fork would copy.
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_pipeline_step, step, warehouse, landing, days, settle).result()


def copy_warehouse(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite warehouse in WAL mode (the backup API includes the WAL's pages)."""
    with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _rows(conn: sa.Connection, table: sa.Table) -> Iterator[tuple[tuple, sa.Row]]:
    """(primary key, row) of every row, in key order, streamed."""
    key = list(table.primary_key.columns)
    for row in conn.execute(sa.select(table).order_by(*key)):
        yield tuple(row._mapping[c] for c in key), row


def compare_table(table: sa.Table, first: Path, second: Path) -> tuple[int, int, str | None]:
    """(rows in first, rows in second, None if the tables are equal, else what differs)."""
    in_first = in_second = only_first = only_second = unequal = 0
    columns: Counter[str] = Counter()  # which columns differ says whether it is rounding or content
    largest = (0.0, "")
    with (warehouse_engine(f"sqlite:///{first}").connect() as a_conn,
          warehouse_engine(f"sqlite:///{second}").connect() as b_conn):
        a_rows, b_rows = _rows(a_conn, table), _rows(b_conn, table)
        a, b = next(a_rows, None), next(b_rows, None)
        # Merged by key, so that a missing or extra row shows as such, not as every later row differing.
        while a is not None or b is not None:
            if b is None or (a is not None and a[0] < b[0]):
                only_first += 1
                in_first += 1
                a = next(a_rows, None)
            elif a is None or b[0] < a[0]:
                only_second += 1
                in_second += 1
                b = next(b_rows, None)
            else:
                if a[1] != b[1]:
                    unequal += 1
                    for column, x, y in zip(table.columns, a[1], b[1], strict=True):
                        if x != y:
                            columns[column.name] += 1
                        if isinstance(x, float) and isinstance(y, float) and abs(x - y) > largest[0]:
                            largest = (abs(x - y), f"{column.name} at {a[0]}: {x!r} vs {y!r}")
                in_first += 1
                in_second += 1
                a, b = next(a_rows, None), next(b_rows, None)
    if not (only_first or only_second or unequal):
        return in_first, in_second, None
    parts = [f"{only_first} rows only after the single run, {only_second} only after the per-partition runs"]
    if unequal:
        parts.append(f"{unequal} rows with the same key differ, in "
                     + ", ".join(f"{name} ({n})" for name, n in columns.most_common()))
    if largest[0]:
        parts.append(f"largest float difference {largest[0]:.3g} ({largest[1]})")
    return in_first, in_second, "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--tasks-per-day", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--no-settle", dest="settle", action="store_false",
                        help="time the two backfills only: no settling, so no comparison of the tables "
                             "(unsettled, the ways differ by design)")
    args = parser.parse_args()
    # The judge stays off: with a key, scoring would call the LLM and the times would be its latency.
    os.environ.pop("OPENAI_API_KEY", None)
    days = days_between(PARTITION_START, PARTITION_START + dt.timedelta(days=args.days - 1))
    seconds: dict[str, float] = {}
    settle: dict[str, float] = {}
    peak: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="perf-backfill-") as tmp:
        folder = Path(tmp)
        landing = folder / "landing"
        print(f"{args.days} days from {days[0]}, {args.tasks_per_day:,} tasks a day, {args.agents} agents",
              flush=True)
        started = time.perf_counter()
        summary = generate_logs(landing, start=days[0], days=args.days, agents=args.agents,
                                tasks_per_day=args.tasks_per_day, seed=SEED)
        seconds["generate"] = time.perf_counter() - started
        print(f"  generated {sum(summary.events.values()):,} events in {seconds['generate']:.0f} s", flush=True)

        ingested = folder / "ingested.db"
        seconds["ingest"], _, peak["ingest"] = in_fresh_process("ingest", ingested, landing, days)
        print(f"  ingested in {seconds['ingest']:.0f} s", flush=True)

        warehouses = {way: folder / f"{way}.db" for way in WAYS}
        for warehouse in warehouses.values():
            copy_warehouse(ingested, warehouse)
        for way, warehouse in warehouses.items():
            print(f"  {WAYS[way]}:", flush=True)
            seconds[way], settle[way], peak[way] = in_fresh_process(way, warehouse, landing, days, args.settle)
            settled = f", then {settle[way]:.0f} s to settle" if args.settle else ""
            print(f"    {seconds[way]:.0f} s{settled}; peak RSS {peak[way]:,.0f} MiB",
                  flush=True)

        differences: dict[str, str] = {}
        if args.settle:
            print("  tables after both ways, settled:")
        for table in COMPARED_TABLES if args.settle else []:
            single, per_partition, difference = compare_table(table, *warehouses.values())
            rows = f"{single:,}" if single == per_partition else f"{single:,} / {per_partition:,}"
            print(f"    {table.name:22s} {rows:>12s} rows  {difference or 'equal'}", flush=True)
            if difference:
                differences[table.name] = difference

    tasks = summary.events.get("task", 0)
    print(f"\ndays                    {args.days}")
    print(f"tasks/day               {args.tasks_per_day:,}")
    print(f"total tasks             {tasks:,}")
    print(f"generate                {seconds['generate']:8.1f} s")
    print(f"ingest                  {seconds['ingest']:8.1f} s   (peak RSS {peak['ingest']:,.0f} MiB)")
    for way, label in WAYS.items():
        settled = f"then {settle[way]:.1f} s to settle " if args.settle else ""
        print(f"{label:23s} {seconds[way]:8.1f} s   {settled}(peak RSS {peak[way]:,.0f} MiB)")
    print(f"per-partition / single  {seconds['per_partition'] / seconds['single_run']:8.2f}x")
    if args.settle:
        print(f"equal                   {'no: ' + ', '.join(differences) if differences else 'yes'}")
    else:
        print("equal                   not compared (--no-settle)")


if __name__ == "__main__":
    main()
