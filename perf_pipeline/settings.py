"""Where perf_pipeline keeps its files and how its Dagster definitions are shaped, resolved from the
environment at call time; and how its processes run (worker processes, garbage collection).

Read lazily (never at import of this module) so that a test or the CLI can set the environment first.

| variable                  | default                              |
|---------------------------|--------------------------------------|
| ``PERF_HOME``             | ``./.perf``                          |
| ``PERF_WAREHOUSE_URL``    | ``sqlite:///$PERF_HOME/warehouse.db`` |
| ``PERF_LANDING_DIR``      | ``$PERF_HOME/landing``               |
| ``PERF_DEFAULT_TIMEZONE`` | unset: timestamps without a UTC offset are quarantined |
| ``PERF_REPORTS_DIR``      | ``$PERF_HOME/reports``: the reports' HTML and charts |
| ``PERF_PARTITION_START``  | ``2026-01-01``: the first daily partition |
| ``PERF_SENSOR_SECONDS``   | ``30``: seconds between ticks of the landing and automation sensors |
| ``PERF_DAILY_SCHEDULE_TIME`` | ``02:00``: when (UTC) the daily schedule builds the previous day |

The last three shape the Dagster definitions (partitions, sensor, schedule): they are read when the
code location loads, so a change takes effect when the code server restarts.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
from collections.abc import Sequence
from multiprocessing.context import BaseContext
from pathlib import Path

DEFAULT_PARTITION_START = dt.date(2026, 1, 1)


# Collect the youngest objects after this many allocations (Python's default: 700), the middle
# generation every 20 of those, the oldest every 20 of those (and then only when it grew by a quarter).
GC_THRESHOLDS = (50_000, 20, 20)
_gc_tuned = False


class SettingError(ValueError):
    """An environment variable holds a value perf_pipeline cannot use; the message names it."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_context(preload: Sequence[str]) -> BaseContext:
    """Where worker processes come from: a "forkserver" (or, where there is none, "spawn") context.
    Dagster may run an asset in a thread of its process, where forking is unsafe. The forkserver (one
    per process, started by the first workers that need it) imports ``preload`` once, so that those
    workers start in milliseconds; workers of another kind forked from it later import their own
    modules. (A forkserver preloading every kind would make a run of the daemon, a process of its
    own, import them all: the ingest's Great Expectations, 11 s, for a run of reports.)"""
    context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                          else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(list(preload))
    return context


def perf_home() -> Path:
    return Path(os.environ.get("PERF_HOME") or ".perf").resolve()


def warehouse_url() -> str:
    return os.environ.get("PERF_WAREHOUSE_URL") or f"sqlite:///{perf_home() / 'warehouse.db'}"


def landing_dir() -> Path:
    configured = os.environ.get("PERF_LANDING_DIR")
    return Path(configured).resolve() if configured else perf_home() / "landing"


def reports_dir() -> Path:
    configured = os.environ.get("PERF_REPORTS_DIR")
    return Path(configured).resolve() if configured else perf_home() / "reports"


def default_timezone() -> str | None:
    return os.environ.get("PERF_DEFAULT_TIMEZONE") or None


def partition_start() -> dt.date:
    """The first daily partition: events before it are quarantined (``before_partition_start``)."""
    text = os.environ.get("PERF_PARTITION_START")
    if not text:
        return DEFAULT_PARTITION_START
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SettingError(f"PERF_PARTITION_START={text!r} is not a date like 2026-01-31") from None


def sensor_seconds() -> int:
    """Seconds between two ticks of the landing sensor and of the automation sensor."""
    text = os.environ.get("PERF_SENSOR_SECONDS") or "30"
    if not text.isdigit() or not 5 <= int(text) <= 86_400:
        raise SettingError(f"PERF_SENSOR_SECONDS={text!r} must be a whole number of seconds from 5 to 86400")
    return int(text)


def daily_schedule_time() -> dt.time:
    """The UTC time of day at which the daily schedule builds the previous day."""
    text = os.environ.get("PERF_DAILY_SCHEDULE_TIME") or "02:00"
    try:
        at = dt.time.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.second or at.microsecond or at.tzinfo:
        raise SettingError(f"PERF_DAILY_SCHEDULE_TIME={text!r} must be a UTC time of day like 02:00")
    return at


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages and metadata: the password of its user
    (``user:password@``), and a ``password`` in its query (``?password=...``, which drivers take too)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def tune_garbage_collection() -> None:
    """Make Python's cyclic garbage collector cheap in a process that runs the pipeline's steps (a
    process loading the code location for Dagster, ``defs``; the CLI's ``Launcher``), once per
    process: the objects alive now (the libraries, Dagster, the definitions) are frozen out of every
    later collection, and collections come after ``GC_THRESHOLDS`` allocations.

    A run allocates millions of short-lived objects (the rows it fetches, the values it converts)
    while a few hundred thousand long-lived ones stay: with Python's defaults the pipeline process of
    the 30-day fleet benchmark spent 10.4 s of its 86 s collecting (33 full collections of about
    0.23 s, mostly traversing the imported libraries' objects), 3.3 s with these settings, at about
    the same peak memory (1,615 MiB against 1,571). Reference counting frees everything acyclic as
    before, and later cycles are still collected, only less often. An object frozen here that later
    becomes part of a garbage cycle stays until the process ends: frozen are the libraries' and the
    definitions' objects, which live as long as the process anyway."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()  # garbage cycles of before are freed, not frozen
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
