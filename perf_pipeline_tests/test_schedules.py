"""The schedules: each daily tick asks daily_job for the previous UTC day's partition, at the time of
day PERF_DAILY_SCHEDULE_TIME gives; each Monday, an hour later, weekly_job for the previous week."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import build_schedule_context, instance_for_test

from perf_pipeline.definitions import build_definitions


def tick(defs, at: dt.datetime, name: str = "daily_schedule"):
    schedule = defs.get_schedule_def(name)
    with instance_for_test() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=at,
                                         repository_def=defs.get_repository_def())
        return schedule.evaluate_tick(context).run_requests


def test_a_tick_targets_the_previous_days_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERF_DAILY_SCHEDULE_TIME", raising=False)
    defs = build_definitions()
    schedule = defs.get_schedule_def("daily_schedule")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.job_name == "daily_job"
    [request] = tick(defs, dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC))
    assert request.partition_key == "2026-02-28"  # across a month end
    assert request.run_key == "daily:2026-02-28"  # one run per day, however often it is evaluated


def test_the_time_of_day_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERF_DAILY_SCHEDULE_TIME", "05:30")
    defs = build_definitions()
    assert defs.get_schedule_def("daily_schedule").cron_schedule == "30 5 * * *"
    [request] = tick(defs, dt.datetime(2026, 11, 28, 5, 30, tzinfo=dt.UTC))
    assert request.partition_key == "2026-11-27"


def test_on_mondays_the_weekly_schedule_targets_the_previous_iso_week(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERF_DAILY_SCHEDULE_TIME", raising=False)
    defs = build_definitions()
    schedule = defs.get_schedule_def("weekly_schedule")
    assert schedule.cron_schedule == "0 3 * * 1" and schedule.job_name == "weekly_job"
    [request] = tick(defs, dt.datetime(2026, 3, 16, 3, 0, tzinfo=dt.UTC), "weekly_schedule")
    assert request.partition_key == "2026-03-09" and request.run_key == "weekly:2026-03-09"


def test_the_weekly_schedule_waits_for_sunday_to_be_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daily schedule at 23:30 builds Sunday on Monday night: the week's report comes after, on Tuesday."""
    monkeypatch.setenv("PERF_DAILY_SCHEDULE_TIME", "23:30")
    defs = build_definitions()
    assert defs.get_schedule_def("weekly_schedule").cron_schedule == "30 0 * * 2"
    [request] = tick(defs, dt.datetime(2026, 3, 17, 0, 30, tzinfo=dt.UTC), "weekly_schedule")
    assert request.partition_key == "2026-03-09"


@pytest.mark.parametrize("value", ["2am", "02:00:30", "25:00"])
def test_a_bad_time_of_day_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from perf_pipeline.settings import SettingError

    monkeypatch.setenv("PERF_DAILY_SCHEDULE_TIME", value)
    with pytest.raises(SettingError, match=f"PERF_DAILY_SCHEDULE_TIME={value!r} must be a UTC time of day"):
        build_definitions()
