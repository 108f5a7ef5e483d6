"""How every daily asset is declared and reports: daily partitions, a backfill of a range as one run,
the warehouse concurrency pool, the automation condition that rebuilds a day when a day it depends
on changed, and figures per day. One place, so no daily asset can miss one of them.

Figures per day: Dagster attaches a run's ``MaterializeResult`` metadata to every partition of a
ranged run, so a range's totals would show as each day's in the UI's plots. Each day's own figures
are therefore added to that day's materialization (``record_days``: Dagster's per-partition asset
metadata, written with the materializations, not as events of their own), and in a run of several
days the result's figures are renamed ``range_<name>`` (``range_metadata``).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    AutomationCondition,
    BackfillPolicy,
    BetaWarning,
    asset,
    multi_asset,
)

from perf_pipeline.automation import rebuild_when_upstream_changes
from perf_pipeline.partitions import daily_partitions, days_between
from perf_pipeline.resources import WAREHOUSE_POOL

# BackfillPolicy is beta in Dagster 1.13; one run per backfill range is a deliberate choice here.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

DAILY = {"partitions_def": daily_partitions, "backfill_policy": BackfillPolicy.single_run(), "pool": WAREHOUSE_POOL}
# Metadata that describes the run rather than adding up over its days keeps its name in a range.
RUN_KEYS = {"partition_range", "judge", "top_agents", "preview"}


def daily_asset(*, automation_condition: AutomationCondition | None = None, **kwargs: Any):
    """``@asset`` for a daily partitioned asset (the defaults above; ``kwargs`` as for ``@asset``)."""
    return asset(**DAILY, automation_condition=automation_condition or rebuild_when_upstream_changes(), **kwargs)


def daily_multi_asset(*, specs: list[AssetSpec], **kwargs: Any):
    """``@multi_asset`` for daily partitioned assets computed together; each spec without an
    automation condition gets the default one."""
    specs = [spec if spec.automation_condition else spec.replace_attributes(
        automation_condition=rebuild_when_upstream_changes()) for spec in specs]
    return multi_asset(**DAILY, specs=specs, **kwargs)


def partition_days(context: AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The first and last UTC day of the partition range this run materializes."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


# A run over a range reads and writes the heaviest tables this many days at a time, so that its
# memory follows a week's data, not the range's (a year's backfill of a fleet's logs is tens of GB).
CHUNK_DAYS = 7
# As-of aggregates (and alert conditions) go this many as-of days at a time: each chunk holds the 89
# days of history before it too, so their chunks are longer (memory follows the outputs of 4 weeks).
AS_OF_CHUNK_DAYS = 28


def day_chunks(first: dt.date, last: dt.date, as_of: bool = False) -> list[tuple[dt.date, dt.date]]:
    """[first, last] cut into consecutive ranges of at most CHUNK_DAYS days (AS_OF_CHUNK_DAYS for
    ``as_of`` days of windowed aggregates), in order."""
    step = dt.timedelta(days=AS_OF_CHUNK_DAYS if as_of else CHUNK_DAYS)
    chunks = []
    start = first
    while start <= last:
        chunks.append((start, min(start + step - dt.timedelta(days=1), last)))
        start += step
    return chunks


def rows_of_day(_day: dt.date, rows: pd.DataFrame) -> dict[str, Any]:
    return {"rows": len(rows)}


def record_days(context: AssetExecutionContext, asset_key: str, frame: pd.DataFrame, date_column: str,
                figures: Callable[[dt.date, pd.DataFrame], Mapping[str, Any]] = rows_of_day,
                days: tuple[dt.date, dt.date] | None = None) -> None:
    """``figures(day, rows)`` of each day's rows of ``frame``, for each day of the run's range (or of
    ``days``, a part of it), added to that day's materialization of ``asset_key`` (a day without
    rows is recorded too: its figures are those of an empty frame). A day's materialization then
    holds its own figures beside the run's (named ``range_<name>`` over several days)."""
    first, last = days or partition_days(context)
    by_day = dict(tuple(frame.groupby(date_column, sort=False))) if not frame.empty else {}
    for day in days_between(first, last):
        rows = by_day.get(day, frame.iloc[0:0])
        context.add_asset_metadata({key: value for key, value in figures(day, rows).items() if value is not None},
                                   asset_key=asset_key, partition_key=day.isoformat())


def record_day_rows(context: AssetExecutionContext, asset_key: str, rows: Mapping[dt.date, int]) -> None:
    """``record_days``' default figures (the rows of each day of the run's range) from counts per day
    already made: what worker processes report of the chunks they wrote (``warehouse/chunks.py``)."""
    first, last = partition_days(context)
    for day in days_between(first, last):
        context.add_asset_metadata({"rows": int(rows.get(day, 0))}, asset_key=asset_key,
                                   partition_key=day.isoformat())


def range_metadata(context: AssetExecutionContext, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` of a run's result: as is for one day; over several days, each figure named
    ``range_<name>``, so that no day shows the range's totals as its own."""
    first, last = partition_days(context)
    if first == last:
        return dict(metadata)
    return {key if key in RUN_KEYS else f"range_{key}": value for key, value in metadata.items()}


def mean(values: pd.Series) -> float | None:
    """The mean rounded for display, or None (left out of the metadata) without values."""
    value = values.mean() if len(values) else None
    return None if value is None or pd.isna(value) else round(float(value), 4)
