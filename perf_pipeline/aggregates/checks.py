"""Checks of the aggregate assets, evaluated over a run's range once its writes are committed.

Blocking: a rollup that lost tasks, a window whose status disagrees with its task count, or a
leaderboard with a hole in its ranks must not reach the reports built on them. The freshness checks
warn when the latest day is missing; their sensor evaluates them.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    SupersessionWarning,
    build_time_partition_freshness_checks,
)

from perf_pipeline.aggregates.rollups import ENTITY_TYPES
from perf_pipeline.warehouse.schema import EVENT_TABLES, daily_rollups, leaderboard, window_stats

ROLLUPS_CHECK = "rollups_count_every_task"
WINDOWS_CHECK = "windows_consistent"
LEADERBOARD_CHECK = "ranks_consistent"
RATES = ["success_rate", "sla_compliance_rate", "correction_rate", "enhancement_rate", "approval_rate",
         "avg_quality_score", "avg_overall_score", "avg_efficiency_score", "collaboration_score"]


def rollups_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(ROLLUPS_CHECK, asset="daily_rollups", blocking=True, description=(
        "For every entity type whose id every task has (all but prompt_version), the rollups of the range add up "
        "to the range's task count."))


def rollups_check(conn: sa.Connection, first: dt.date, last: dt.date) -> AssetCheckResult:
    tasks = EVENT_TABLES["task"]
    task_count = conn.execute(sa.select(sa.func.count()).select_from(tasks)
                              .where(tasks.c.partition_date.between(first, last))).scalar_one()
    sums = dict(conn.execute(sa.select(daily_rollups.c.entity_type, sa.func.sum(daily_rollups.c.n_tasks))
                             .where(daily_rollups.c.date.between(first, last))
                             .group_by(daily_rollups.c.entity_type)).all())
    complete = [t for t, columns in ENTITY_TYPES.items() if "prompt_version" not in columns]
    wrong = {t: int(sums.get(t) or 0) for t in complete if int(sums.get(t) or 0) != task_count}
    over = int(sums.get("prompt_version") or 0) > task_count
    return AssetCheckResult(asset_key="daily_rollups", check_name=ROLLUPS_CHECK, passed=not wrong and not over,
                            severity=AssetCheckSeverity.ERROR, metadata={
                                "tasks": task_count, "entity_types_not_adding_up": str(wrong or "none"),
                                "partition_range": f"{first}..{last}"})


def windows_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(WINDOWS_CHECK, asset="window_stats", blocking=True, description=(
        "status is ok exactly when n_tasks reaches the minimum; insufficient_data rows have null metrics; rates "
        "and scores are in 0..1; completed + failed tasks never exceed n_tasks."))


def windows_check(conn: sa.Connection, first: dt.date, last: dt.date, min_points: int) -> AssetCheckResult:
    w = window_stats.c
    count = sa.select(sa.func.count()).select_from(window_stats).where(w.as_of_date.between(first, last))
    problems = {
        "status_disagrees_with_n_tasks": sa.or_(sa.and_(w.status == "ok", w.n_tasks < min_points),
                                                sa.and_(w.status != "ok", w.n_tasks >= min_points)),
        "insufficient_with_metrics": sa.and_(w.status != "ok", sa.or_(w.success_rate.is_not(None),
                                                                      w.avg_overall_score.is_not(None))),
        "rates_outside_0_1": sa.or_(*[sa.or_(w[c] < 0, w[c] > 1) for c in RATES]),
        "more_outcomes_than_tasks": w.tasks_completed + w.tasks_failed > w.n_tasks,
    }
    found = {name: conn.execute(count.where(condition)).scalar_one() for name, condition in problems.items()}
    return AssetCheckResult(asset_key="window_stats", check_name=WINDOWS_CHECK, passed=not any(found.values()),
                            severity=AssetCheckSeverity.ERROR, metadata={
                                "rows": conn.execute(count).scalar_one(), **found,
                                "partition_range": f"{first}..{last}"})


def leaderboard_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(LEADERBOARD_CHECK, asset="leaderboard", blocking=True, description=(
        "Exactly the ranked agents have a rank; each day and window's ranks start at 1 and never pass the "
        "number of ranked agents."))


def leaderboard_check(conn: sa.Connection, first: dt.date, last: dt.date) -> AssetCheckResult:
    board = leaderboard.c
    in_range = board.as_of_date.between(first, last)
    mismatched = conn.execute(sa.select(sa.func.count()).select_from(leaderboard).where(
        in_range, (board.status == "ranked") != board.rank.is_not(None))).scalar_one()
    groups = (sa.select(sa.func.min(board.rank).label("best"), sa.func.max(board.rank).label("worst"),
                        sa.func.count(board.rank).label("ranked"))
              .where(in_range).group_by(board.as_of_date, board.window_days)
              .having(sa.func.count(board.rank) > 0).subquery())
    bad_groups = conn.execute(sa.select(sa.func.count()).select_from(groups).where(
        sa.or_(groups.c.best != 1, groups.c.worst > groups.c.ranked))).scalar_one()
    return AssetCheckResult(asset_key="leaderboard", check_name=LEADERBOARD_CHECK,
                            passed=mismatched == bad_groups == 0, severity=AssetCheckSeverity.ERROR, metadata={
                                "rank_disagrees_with_status": mismatched, "days_with_bad_ranks": bad_groups,
                                "partition_range": f"{first}..{last}"})


# What stakeholders read: today's partition of each is built once the daily schedule has built
# yesterday's (their windows hold yesterday).
FRESH_ASSETS = ["window_stats", "trends", "leaderboard"]
FRESHNESS_GRACE = dt.timedelta(hours=2)  # after the daily schedule's tick
warnings.filterwarnings("ignore", message="Function `build_(time_partition_freshness_checks|sensor_for_freshness"
                        "_checks)` is superseded", category=SupersessionWarning)


def build_freshness_checks(schedule_time: dt.time) -> Sequence[AssetChecksDefinition]:
    """Dagster's freshness checks: warn when the latest daily partition of the windows, trends or
    leaderboard is missing two hours after the daily schedule's tick.

    Dagster 1.13 prefers ``FreshnessPolicy``, but that judges an asset by its latest update of any
    partition: a backfill of old days would pass it. These checks ask for the latest partition."""
    deadline = (dt.datetime.combine(dt.date.min, schedule_time) + FRESHNESS_GRACE).time()
    return build_time_partition_freshness_checks(assets=FRESH_ASSETS, deadline_cron=f"{deadline.minute} "
                                                 f"{deadline.hour} * * *", timezone="UTC",
                                                 severity=AssetCheckSeverity.WARN)
