"""The one partitions definition: a UTC day. Every daily asset imports it from here."""

from __future__ import annotations

import datetime as dt

from dagster import DailyPartitionsDefinition

PARTITION_START = dt.date(2023, 1, 1)

# end_offset=1 makes today's partition exist, so today's tasks can be processed before midnight.
daily_partitions = DailyPartitionsDefinition(start_date=PARTITION_START.isoformat(), timezone="UTC", end_offset=1)


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The days of [first, last], in order: the partitions of a range run."""
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
