"""Ingest + validation benchmark: generate N task events, ingest them, report events/s and peak memory.

Run with ``perf-pipeline benchmark --events 1000000``. Generation runs in a child process so that
the peak memory reported (``ru_maxrss`` of this process) is the ingest's own.
"""

from __future__ import annotations

import datetime as dt
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from perf_pipeline.ingest.pipeline import IngestOptions, ingest_landing
from perf_pipeline.partitions import PARTITION_START
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import staged_events

TASKS_PER_DAY = 20_000


def run_ingest_benchmark(events: int, warehouse_url: str | None = None, keep: bool = False) -> str:
    """Generate ``events`` task events (plus their feedback, reviews and messages), ingest, and report."""
    workdir = Path(tempfile.mkdtemp(prefix="perf-bench-"))
    landing = workdir / "landing"
    days = max(1, round(events / TASKS_PER_DAY))
    per_day = max(1, events // days)
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days + 1)
    gen_started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "perf_pipeline", "generate", "--out", str(landing), "--start",
                    start.isoformat(), "--days", str(days), "--tasks-per-day", str(per_day), "--agents", "200"],
                   check=True, stdout=subprocess.DEVNULL)
    gen_seconds = time.perf_counter() - gen_started
    url = warehouse_url or f"sqlite:///{workdir / 'warehouse.db'}"
    engine = warehouse_engine(url)
    rss_before = _peak_rss_mib()
    started = time.perf_counter()
    report = ingest_landing(engine, landing, IngestOptions(partition_start=PARTITION_START))
    seconds = time.perf_counter() - started
    with engine.connect() as conn:
        tasks = conn.execute(sa.select(sa.func.count()).select_from(staged_events)
                             .where(staged_events.c.event_type == "task")).scalar_one()
    lines = report.total("lines_read")
    size = sum(p.stat().st_size for p in landing.iterdir())
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return "\n".join([
        f"generated {days} days x {per_day:,} tasks/day ({size / 2**20:,.0f} MiB) in {gen_seconds:.1f}s",
        f"warehouse: {sa.engine.make_url(url).get_backend_name()}" + (f" (kept in {workdir})" if keep else ""),
        f"ingest + validation: {lines:,} lines ({tasks:,} task events staged, {report.total('loaded'):,} events "
        f"loaded, {report.total('quarantined'):,} quarantined, {report.total('duplicates'):,} duplicates) "
        f"in {seconds:.1f}s",
        f"throughput: {lines / seconds:,.0f} events/s",
        f"peak memory (max RSS of the ingesting process): {_peak_rss_mib():,.0f} MiB "
        f"(before ingest: {rss_before:,.0f} MiB)",
        "conservation: " + ("holds for every file" if all(f.conserved for f in report.files) else "VIOLATED"),
    ])


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
