"""Checks on the daily event tables, counted inside the write's transaction (of each chunk of a range)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import sqlalchemy as sa
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from perf_pipeline.warehouse.schema import EVENT_TABLES, staged_events

CHECK_NAME = "matches_staging"


def matches_staging_spec(asset_name: str) -> AssetCheckSpec:
    return AssetCheckSpec(CHECK_NAME, asset=asset_name, blocking=True, description=(
        "After the write, the table holds exactly the staged events of the partition range, one row per id. "
        "Blocking: scoring never reads a day that lost or doubled events."))


def staging_counts(conn: sa.Connection, event_type: str, first: dt.date, last: dt.date) -> Counter[str]:
    """The event table's rows and distinct ids of days [first, last], and their staged events: counted
    in the transaction that wrote those days (a range's chunks each in its own, the counts added up;
    an id is the table's key, so the distinct ids of the chunks add up too)."""
    table = EVENT_TABLES[event_type]
    id_column = next(c for c in table.primary_key.columns)
    in_range = table.c.partition_date.between(first, last)
    rows, ids = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(id_column))).where(in_range)).one()
    staged = conn.execute(sa.select(sa.func.count()).select_from(staged_events).where(
        staged_events.c.event_type == event_type, staged_events.c.partition_date.between(first, last))).scalar_one()
    return Counter({"rows": rows, "distinct_ids": ids, "staged_events": staged})


def matches_staging_result(event_type: str, counts: Counter[str], first: dt.date, last: dt.date) -> AssetCheckResult:
    rows, ids, staged = counts["rows"], counts["distinct_ids"], counts["staged_events"]
    return AssetCheckResult(asset_key=EVENT_TABLES[event_type].name, check_name=CHECK_NAME,
                            passed=rows == staged == ids, severity=AssetCheckSeverity.ERROR,
                            metadata={"rows": rows, "distinct_ids": ids, "staged_events": staged,
                                      "partition_range": f"{first}..{last}"})
