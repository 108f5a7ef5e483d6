"""The one partitions definition (a UTC day), the partition mappings that state how a day depends on
other days, and the days of a range and the ranges of a set of days. Every daily asset imports them from here.

The first partition comes from ``PERF_PARTITION_START`` (``settings``), read once when the code
location loads: partitions are the shape of the definitions, not a value a run could change.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable

from dagster import BetaWarning, DailyPartitionsDefinition, TimeWindowPartitionMapping, WeeklyPartitionsDefinition

from perf_pipeline import settings

# allow_nonexistent_upstream_partitions is beta in Dagster 1.13; a window reaching before the first
# partition (or a lookahead past the last) must not fail the run.
warnings.filterwarnings("ignore", message="Parameter `allow_nonexistent_upstream_partitions`", category=BetaWarning)

PARTITION_START = settings.partition_start()

# end_offset=1 makes today's partition exist, so today's tasks can be processed before midnight.
daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START.isoformat(), timezone="UTC", end_offset=1)
# ISO weeks, Monday to Sunday, from the week that holds the first day (so every day is in a week's
# report); a week's partition exists once the week is over.
FIRST_MONDAY = PARTITION_START - dt.timedelta(days=PARTITION_START.weekday())
weekly_partitions = WeeklyPartitionsDefinition(start_date=FIRST_MONDAY.isoformat(), timezone="UTC", day_offset=1)


def days_of_week() -> TimeWindowPartitionMapping:
    """A week depends on its days; the first week's days before the first partition do not exist."""
    return TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)


def trailing_days(days: int) -> TimeWindowPartitionMapping:
    """A day depends on the ``days`` days ending with it."""
    return TimeWindowPartitionMapping(start_offset=-(days - 1), end_offset=0,
                                      allow_nonexistent_upstream_partitions=True)


def following_days(days: int) -> TimeWindowPartitionMapping:
    """A day depends on itself and the ``days`` days after it (events about it that land later)."""
    return TimeWindowPartitionMapping(start_offset=0, end_offset=days, allow_nonexistent_upstream_partitions=True)


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The days of [first, last], in order: the partitions of a range run."""
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


def contiguous(days: Iterable[str], step_days: int = 1) -> list[tuple[str, str]]:
    """Partition keys (ISO days) grouped into ranges of consecutive partitions, ``step_days`` apart
    (7 for weeks): [(first, last), ...] in order."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(dt.date.fromisoformat(d) for d in days):
        if ranges and day == ranges[-1][1] + dt.timedelta(days=step_days):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return [(first.isoformat(), last.isoformat()) for first, last in ranges]
