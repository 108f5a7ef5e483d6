"""Dagster owns the rules: a late file for a day 40 days back makes the automation conditions request
exactly the partitions that depend on it, and once those ran the warehouse equals a clean run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetKey, evaluate_automation_conditions, instance_for_test
from dagster._core.test_utils import freeze_time

from perf_pipeline.definitions import build_definitions
from perf_pipeline.launcher import Launcher
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import (
    DDL_GROUPS,
    EVENT_TABLES,
    alert_conditions,
    alerts,
    collaboration_scores,
    task_scores,
    task_steps,
)
from perf_pipeline_tests.events_factory import feedback, message, peer_evaluation, task, write_jsonl

# Up to yesterday, as in production: the partitions end today, so the days after the late day that
# depend on it are the days up to today. Dagster's clock stands still at noon of that day for the
# whole test (frozen_clock): a run across midnight would otherwise add a partition half-way through.
TODAY = dt.datetime.now(dt.UTC).date()
NOON = dt.datetime.combine(TODAY, dt.time(12), tzinfo=dt.UTC)
DAYS = 45
FIRST = TODAY - dt.timedelta(days=DAYS)
LAST = TODAY - dt.timedelta(days=1)
LATE = LAST - dt.timedelta(days=40)
# Compared table by table; the ledger, staging and quarantine record files and runs, not results.
RESULT_TABLES = [*EVENT_TABLES.values(), task_steps, task_scores, collaboration_scores,
                 *DDL_GROUPS["050_aggregates.sql"], *DDL_GROUPS["060_rankings.sql"], alert_conditions, alerts]
LINEAGE_COLUMNS = {"source_file", "line_number"}


def history(landing: Path) -> None:
    """45 days of two agents' tasks, up to yesterday, with reviews, feedback and messages."""
    events = []
    for d in range(DAYS):
        day = FIRST + dt.timedelta(days=d)
        for agent in ("agent-1", "agent-2"):
            for n in range(2):
                task_id = f"t-{d}-{agent}-{n}"
                events.append(task(task_id, agent_id=agent, status="failed" if (d + n) % 5 == 0 else "success",
                                   assigned_at=f"{day}T08:00:00Z", started_at=f"{day}T08:01:00Z",
                                   completed_at=f"{day}T{9 + n}:{10 + d % 40}:00Z", input_tokens=900 + 20 * d,
                                   response_time_ms=400.0 + 15 * d + n, cost_usd=0.01 + 0.0005 * d))
            other = "agent-2" if agent == "agent-1" else "agent-1"
            events.append(peer_evaluation(f"e-{d}-{agent}", task_id=f"t-{d}-{agent}-0", evaluator_agent_id=other,
                                          evaluated_agent_id=agent, accuracy=0.5 + (d % 5) / 10,
                                          created_at=f"{day}T20:00:00Z"))
            events.append(feedback(f"f-{d}-{agent}", task_id=f"t-{d}-{agent}-1", user_rating=1 + d % 5,
                                   created_at=f"{day}T21:00:00Z"))
            events.append(message(f"m-{d}-{agent}", task_id=f"t-{d}-{agent}-0", from_agent_id=agent,
                                  to_agent_id=other, sent_at=f"{day}T09:00:00Z"))
    write_jsonl(landing / "history.jsonl", events)


def late_file(landing: Path) -> None:
    """Tasks of a day 40 days before the last, their review, feedback and a request, arriving late."""
    day = LATE.isoformat()
    write_jsonl(landing / "late.jsonl", [
        *[task(f"late-{n}", agent_id="agent-3", assigned_at=f"{day}T10:00:00Z", started_at=f"{day}T10:01:00Z",
               completed_at=f"{day}T11:0{n}:00Z", cost_usd=0.05) for n in range(6)],
        peer_evaluation("late-e", task_id="late-0", evaluator_agent_id="agent-1", evaluated_agent_id="agent-3",
                        created_at=f"{day}T12:00:00Z"),
        feedback("late-f", task_id="late-1", user_rating=5, created_at=f"{day}T13:00:00Z"),
        message("late-m", task_id="late-0", from_agent_id="agent-3", to_agent_id="agent-1",
                sent_at=f"{day}T10:30:00Z"),
    ])


def days(first: int, last: int) -> set[str]:
    """The days LATE+first .. LATE+last, up to today (the last partition)."""
    return {(LATE + dt.timedelta(days=k)).isoformat() for k in range(first, last + 1)
            if LATE + dt.timedelta(days=k) <= TODAY}


def weeks(first: int, last: int) -> set[str]:
    """The Mondays of the weeks over (the weekly partitions) that hold a day of days(first, last)."""
    mondays = {dt.date.fromisoformat(day) - dt.timedelta(days=dt.date.fromisoformat(day).weekday())
               for day in days(first, last)}
    return {monday.isoformat() for monday in mondays if monday + dt.timedelta(days=7) <= TODAY}


# What each asset's partition mappings make depend on the late day (offsets from it): the event
# tables that day; scores for 90 days (baselines and leniency hold it); collaboration from 2 days
# before (its requests are answered by the day's messages); windows, trends and rankings for 90 days
# after each changed rollup; baselines for the 90 days after a changed metric.
EXPECTED = {
    **{name: days(0, 0) for name in ("task_events", "task_steps", "feedback_events", "peer_evaluations",
                                     "collaboration_messages", "node_rollups")},
    "task_scores": days(0, 89),
    "node_performance": days(0, 89),
    "collaboration_scores": days(-2, 89),
    "daily_rollups": days(-2, 89),
    "daily_metrics": days(-2, 89),
    **{name: days(-2, 178) for name in ("window_stats", "trends", "leaderboard", "most_improved_agents",
                                        "provider_rankings", "project_summaries", "project_agent_stats")},
    "prompt_version_comparisons": days(0, 178),
    "baselines": days(-2, 179),
    "anomalies": days(-2, 179),
    "alert_conditions": days(-2, 179),
    # The states of the 90 days after each changed condition, and the reports that read them.
    "alerts": days(-2, 268),
    "daily_report": days(-2, 268),
}
# Weekly partitions are not run with daily ones, so Dagster requests them on the next evaluation,
# once their days are updated (its will_be_requested only counts parents of the same run).
EXPECTED_LATER = {"weekly_report": weeks(-2, 268)}


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    """Dagster's current time (partitions, evaluations, run and event timestamps) fixed at NOON, by the
    helper Dagster's own tests of time-dependent automation use (private: ``pyproject.toml`` pins
    Dagster's release)."""
    with freeze_time(NOON):
        yield


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A warehouse, landing folder and Dagster instance per name, with definitions built from the
    environment as the code location builds them. Instances are closed in the reverse order of
    opening: each sets the current definitions-state storage until it closes."""
    with ExitStack() as instances:

        def make(name: str):
            landing = tmp_path / name / "landing"
            landing.mkdir(parents=True)
            url = f"sqlite:///{tmp_path / name / 'warehouse.db'}"
            monkeypatch.setenv("PERF_WAREHOUSE_URL", url)
            monkeypatch.setenv("PERF_LANDING_DIR", str(landing))
            return build_definitions(), instances.enter_context(instance_for_test()), landing, url

        yield make


def result_rows(url: str, table: sa.Table) -> list[tuple]:
    columns = [c for c in table.columns if c.name not in LINEAGE_COLUMNS]
    with warehouse_engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(*columns).order_by(*table.primary_key.columns))]


@pytest.mark.slow
def test_a_late_file_requests_exactly_its_dependents_and_ends_as_a_clean_run(pipeline) -> None:
    defs, instance, landing, url = pipeline("incremental")
    history(landing)
    launcher = Launcher(defs, instance, echo=lambda _: None)
    launcher.run()
    late_file(landing)
    assert launcher.tick("landing_sensor") == 1  # the late file's ingest run
    cursor = launcher.load_cursor()
    requested = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    got = {key.to_user_string(): requested.get_requested_partitions(key)
           for key in defs.resolve_asset_graph().materializable_asset_keys}
    assert {name: partitions for name, partitions in got.items() if partitions} == EXPECTED
    rebuilt = Launcher(defs, instance, echo=lambda _: None).run()
    assert {"weekly_report": set(map(str, rebuilt.days("weekly_report")))} == EXPECTED_LATER
    again = evaluate_automation_conditions(defs=defs, instance=instance, cursor=launcher.load_cursor())
    assert again.total_requested == 0

    clean_defs, clean_instance, clean_landing, clean_url = pipeline("clean")
    history(clean_landing)
    late_file(clean_landing)
    Launcher(clean_defs, clean_instance, echo=lambda _: None).run()
    for table in RESULT_TABLES:
        assert result_rows(url, table) == result_rows(clean_url, table), table.name
    with warehouse_engine(url).connect() as conn:
        late_scores = conn.execute(sa.select(sa.func.count()).select_from(task_scores).where(
            task_scores.c.agent_id == "agent-3")).scalar_one()
    assert late_scores == 6
    assert instance.get_latest_materialization_event(AssetKey("window_stats")) is not None
