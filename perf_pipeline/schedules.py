"""The schedules: every day, the previous day's partition of every daily asset; every Monday, an
hour later, the previous week's report.

The landing sensor and the automation condition rebuild the days new files touch; this builds the
days no file touched, because windows and trends move every day even without new tasks. Built on
the partitioned ``daily_job``, so each tick targets a partition key, shown in the UI.
"""

from __future__ import annotations

import datetime as dt

from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule

from perf_pipeline.jobs import daily_job, weekly_job


def build_daily_schedule(at: dt.time) -> ScheduleDefinition:
    """The daily schedule, ticking at ``at`` UTC (``PERF_DAILY_SCHEDULE_TIME``)."""

    @schedule(name="daily_schedule", job=daily_job, cron_schedule=f"{at.minute} {at.hour} * * *",
              execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING, description=(
                  f"At {at:%H:%M} UTC, builds the previous day's partition of every daily asset."))
    def daily_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        day = (context.scheduled_execution_time.astimezone(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
        return RunRequest(run_key=f"daily:{day}", partition_key=day, tags={"perf_pipeline/trigger": "schedule"})

    return daily_schedule


def build_weekly_schedule(daily_at: dt.time) -> ScheduleDefinition:
    """An hour after the daily schedule builds Sunday (on Mondays, or Tuesdays when that hour is past
    midnight), the previous ISO week's partition of ``weekly_job``."""
    later = dt.datetime.combine(dt.date(2026, 3, 2), daily_at) + dt.timedelta(hours=1)  # a Monday
    at, weekday = later.time(), later.isoweekday()  # past midnight: Tuesday, after Sunday was built
    day_name = later.strftime("%A")

    @schedule(name="weekly_schedule", job=weekly_job, cron_schedule=f"{at.minute} {at.hour} * * {weekday}",
              execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING, description=(
                  f"On {day_name}s at {at:%H:%M} UTC, builds the previous week's report."))
    def weekly_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        day = context.scheduled_execution_time.astimezone(dt.UTC).date()
        monday = day - dt.timedelta(days=day.weekday() + 7)
        return RunRequest(run_key=f"weekly:{monday}", partition_key=monday.isoformat(),
                          tags={"perf_pipeline/trigger": "schedule"})

    return weekly_schedule
