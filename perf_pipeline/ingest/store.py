"""Warehouse reads and writes of the ingest's Dagster layer: the days whose staged events changed, and
which landing files are ingested already."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.warehouse.db import chunked, to_python_date
from perf_pipeline.warehouse.schema import (
    EVENT_TABLE_NAMES,
    ingested_files,
    quarantined_events,
    staged_day_changes,
    staged_events,
)


def pending_day_changes(conn: Connection) -> dict[dt.date, set[str]]:
    """Day -> event types whose staged events changed and were not reported yet (this run's, and
    those of a run that stopped before reporting them)."""
    changes: dict[dt.date, set[str]] = defaultdict(set)
    for event_type, day in conn.execute(sa.select(staged_day_changes.c.event_type,
                                                  staged_day_changes.c.partition_date)):
        changes[to_python_date(day)].add(event_type)
    return dict(sorted(changes.items()))


def clear_day_changes(conn: Connection, changes: dict[dt.date, set[str]]) -> None:
    """Forget the changes reported (and only those: a concurrent ingest may have added more)."""
    for day, event_types in changes.items():
        conn.execute(staged_day_changes.delete().where(staged_day_changes.c.partition_date == day,
                                                       staged_day_changes.c.event_type.in_(sorted(event_types))))


def day_figures(conn: Connection, days: list[dt.date]) -> dict[dt.date, dict[str, int]]:
    """Per day: the events staged for it by type (named like their tables) and its quarantined lines."""
    figures: dict[dt.date, dict[str, int]] = {day: {name: 0 for name in EVENT_TABLE_NAMES.values()} | {
        "quarantined_lines": 0} for day in days}
    if not days:
        return figures
    staged = conn.execute(sa.select(staged_events.c.partition_date, staged_events.c.event_type, sa.func.count())
                          .where(staged_events.c.partition_date.in_(days))
                          .group_by(staged_events.c.partition_date, staged_events.c.event_type))
    for day, event_type, count in staged:
        figures[to_python_date(day)][EVENT_TABLE_NAMES[event_type]] = count
    quarantined = conn.execute(sa.select(quarantined_events.c.partition_date, sa.func.count())
                               .where(quarantined_events.c.partition_date.in_(days))
                               .group_by(quarantined_events.c.partition_date))
    for day, count in quarantined:
        figures[to_python_date(day)]["quarantined_lines"] = count
    return figures


def ingested_hashes(conn: Connection, hashes: list[str]) -> set[str]:
    """Those of ``hashes`` whose content was ingested already."""
    done: set[str] = set()
    for part in chunked(sorted(set(hashes)), 1_000):
        done.update(conn.execute(sa.select(ingested_files.c.sha256).where(
            ingested_files.c.sha256.in_(list(part)), ingested_files.c.status == "ingested")).scalars())
    return done
