"""Checks of the aggregate assets. Each counts what it checks inside the write's transaction (of
each chunk of a range, its counts added up over the range: ``chunk_steps``), so that no other
writer's rows come in between.

Blocking: a rollup that lost tasks, a window whose status disagrees with its task count, or a
leaderboard with a hole in its ranks must not reach the reports built on them. The freshness checks
warn when the latest day is missing; their sensor evaluates them.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections import Counter
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
ENTITY_PREFIX = "entity:"  # rollups_counts' key of an entity type's summed task counts
WINDOW_PROBLEMS = ["status_disagrees_with_n_tasks", "insufficient_with_metrics", "rates_outside_0_1",
                   "more_outcomes_than_tasks"]
RATES = ["success_rate", "sla_compliance_rate", "correction_rate", "enhancement_rate", "approval_rate",
         "avg_quality_score", "avg_overall_score", "avg_efficiency_score", "collaboration_score"]


def rollups_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(ROLLUPS_CHECK, asset="daily_rollups", blocking=True, description=(
        "For every entity type whose id every task has (all but prompt_version), the rollups of the range add up "
        "to the range's task count."))


def rollups_check(conn: sa.Connection, first: dt.date, last: dt.date) -> AssetCheckResult:
    return rollups_result(rollups_counts(conn, first, last), first, last)


def rollups_counts(conn: sa.Connection, first: dt.date, last: dt.date) -> Counter[str]:
    """What ``rollups_check`` compares, for days [first, last]: their tasks and the sum of each entity
    type's rollup task counts (added over the chunks of a range, each counted in its transaction)."""
    tasks = EVENT_TABLES["task"]
    counts = Counter({"tasks": conn.execute(sa.select(sa.func.count()).select_from(tasks)
                                            .where(tasks.c.partition_date.between(first, last))).scalar_one()})
    rollup = daily_rollups.c
    sums = (sa.select(rollup.entity_type, sa.func.sum(rollup.n_tasks)).where(rollup.date.between(first, last))
            .group_by(rollup.entity_type))
    for entity_type, total in conn.execute(sums).all():
        counts[f"{ENTITY_PREFIX}{entity_type}"] = int(total or 0)
    return counts


def rollups_result(counts: Counter[str], first: dt.date, last: dt.date) -> AssetCheckResult:
    task_count = counts["tasks"]
    sums = {key.removeprefix(ENTITY_PREFIX): n for key, n in counts.items() if key.startswith(ENTITY_PREFIX)}
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
    return windows_result(windows_counts(conn, first, last, min_points), first, last)


def windows_counts(conn: sa.Connection, first: dt.date, last: dt.date, min_points: int) -> Counter[str]:
    """The window rows of days [first, last] and how many of them have each problem."""
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
    return Counter({"rows": conn.execute(count).scalar_one(), **found})


def windows_result(counts: Counter[str], first: dt.date, last: dt.date) -> AssetCheckResult:
    found = {name: counts[name] for name in WINDOW_PROBLEMS}
    return AssetCheckResult(asset_key="window_stats", check_name=WINDOWS_CHECK, passed=not any(found.values()),
                            severity=AssetCheckSeverity.ERROR, metadata={
                                "rows": counts["rows"], **found, "partition_range": f"{first}..{last}"})


def leaderboard_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(LEADERBOARD_CHECK, asset="leaderboard", blocking=True, description=(
        "Exactly the ranked agents have a rank; each day and window's ranks start at 1 and never pass the "
        "number of ranked agents."))


def leaderboard_check(conn: sa.Connection, first: dt.date, last: dt.date) -> AssetCheckResult:
    return leaderboard_result(leaderboard_counts(conn, first, last), first, last)


def leaderboard_counts(conn: sa.Connection, first: dt.date, last: dt.date) -> Counter[str]:
    """Of days [first, last]: rows whose rank disagrees with their status, and (day, window) groups
    whose ranks do not start at 1 or pass the number ranked."""
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
    return Counter({"rank_disagrees_with_status": mismatched, "days_with_bad_ranks": bad_groups})


def leaderboard_result(counts: Counter[str], first: dt.date, last: dt.date) -> AssetCheckResult:
    mismatched, bad_groups = counts["rank_disagrees_with_status"], counts["days_with_bad_ranks"]
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
