"""Checks on the daily event tables, evaluated over a run's range once its writes are committed."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from perf_pipeline.warehouse.schema import EVENT_TABLES, staged_events

CHECK_NAME = "matches_staging"


def matches_staging_spec(asset_name: str) -> AssetCheckSpec:
    return AssetCheckSpec(CHECK_NAME, asset=asset_name, blocking=True, description=(
        "After the write, the table holds exactly the staged events of the partition range, one row per id. "
        "Blocking: scoring never reads a day that lost or doubled events."))


def matches_staging(conn: sa.Connection, event_type: str, first: dt.date, last: dt.date) -> AssetCheckResult:
    table = EVENT_TABLES[event_type]
    id_column = next(c for c in table.primary_key.columns)
    in_range = table.c.partition_date.between(first, last)
    rows, ids = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(id_column))).where(in_range)).one()
    staged = conn.execute(sa.select(sa.func.count()).select_from(staged_events).where(
        staged_events.c.event_type == event_type, staged_events.c.partition_date.between(first, last))).scalar_one()
    return AssetCheckResult(asset_key=table.name, check_name=CHECK_NAME, passed=rows == staged == ids,
                            severity=AssetCheckSeverity.ERROR,
                            metadata={"rows": rows, "distinct_ids": ids, "staged_events": staged,
                                      "partition_range": f"{first}..{last}"})
