"""Checks of the scoring assets over a run's range, each counted inside the transaction that wrote what it
checks: the scores' in each weekly chunk's (``scores_counts``, summed over the range's chunks, then judged
by ``scores_result`` and ``judge_and_cost_results``), the collaboration scores' in their write's.
Blocking: windows, trends and leaderboards never read scores that lost tasks or left 0..1."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import sqlalchemy as sa
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from perf_pipeline.warehouse.schema import EVENT_TABLES, collaboration_scores, task_scores

SCORES_CHECK = "one_valid_score_per_task"
COLLABORATION_CHECK = "collaboration_scores_in_range"
JUDGE_STATUSES = ["scored", "cached", "skipped_no_key", "skipped_no_content", "skipped_sampling",
                  "skipped_budget", "failed"]
TASK_SCORE_COLUMNS = ["efficiency_score", "cost_score", "judge_accuracy", "judge_relevance", "judge_completeness",
                      "judge_score", "peer_score", "user_score", "code_review_score", "quality_score", "overall_score"]
COLLABORATION_SCORE_COLUMNS = ["answer_rate", "latency_score", "helpfulness_score", "peer_score",
                               "collaboration_score"]


def scores_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(SCORES_CHECK, asset="task_scores", blocking=True, description=(
        "Every task of the range has exactly one score row; every score is null or in 0..1; every judge_status "
        "is a known one; a quality score exists exactly when a quality component does."))


def _out_of_range(table: sa.Table, columns: list[str]) -> sa.ColumnElement[bool]:
    return sa.or_(*[sa.or_(table.c[c] < 0, table.c[c] > 1) for c in columns])


# The score rows each problem of ``one_valid_score_per_task`` counts.
SCORE_PROBLEMS: dict[str, sa.ColumnElement[bool]] = {
    "scores_outside_0_1": _out_of_range(task_scores, TASK_SCORE_COLUMNS),
    "unknown_judge_status": task_scores.c.judge_status.not_in(JUDGE_STATUSES),
    "quality_inconsistent_with_components": sa.or_(
        sa.and_(task_scores.c.quality_score.is_(None), task_scores.c.components_used > 0),
        sa.and_(task_scores.c.quality_score.isnot(None), task_scores.c.components_used == 0)),
}


def scores_counts(conn: sa.Connection, first: dt.date, last: dt.date) -> Counter[str]:
    """What the scores' checks count of days [first, last], in one pass over their score rows: the
    tasks, their score rows and distinct scored tasks, the rows with each problem, the tasks sent to
    the judge and its failures, and the tasks of unknown cost. Each adds up over a range's chunks: a
    day's rows are its own, and a task id is the primary key of task_events and task_scores alike."""
    tasks = EVENT_TABLES["task"]
    task_count = conn.execute(sa.select(sa.func.count()).select_from(tasks)
                              .where(tasks.c.partition_date.between(first, last))).scalar_one()
    shares = {"judge_failures": task_scores.c.judge_status == "failed",
              "tasks_sent_to_judge": task_scores.c.judge_status.in_(["scored", "failed"]),
              "tasks_with_unknown_cost": task_scores.c.cost_source == "unknown"}
    conditions = {**SCORE_PROBLEMS, **shares}
    rows, distinct, *found = conn.execute(sa.select(
        sa.func.count(), sa.func.count(sa.distinct(task_scores.c.task_id)),
        *[sa.func.count().filter(condition) for condition in conditions.values()])
        .where(task_scores.c.partition_date.between(first, last))).one()
    return Counter({"tasks": task_count, "score_rows": rows, "distinct_tasks": distinct,
                    **dict(zip(conditions, found, strict=True))})


def scores_result(counts: Counter[str], first: dt.date, last: dt.date) -> AssetCheckResult:
    """The check of a range from its chunks' ``scores_counts``."""
    found = {name: counts[name] for name in SCORE_PROBLEMS}
    passed = counts["score_rows"] == counts["distinct_tasks"] == counts["tasks"] and not any(found.values())
    return AssetCheckResult(asset_key="task_scores", check_name=SCORES_CHECK, passed=passed,
                            severity=AssetCheckSeverity.ERROR, metadata={
                                "tasks": counts["tasks"], "score_rows": counts["score_rows"],
                                "distinct_tasks": counts["distinct_tasks"], **found,
                                "partition_range": f"{first}..{last}"})


def collaboration_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(COLLABORATION_CHECK, asset="collaboration_scores", blocking=True, description=(
        "Every score is null or in 0..1, and no agent answered more requests than it received."))


def collaboration_check(conn: sa.Connection, first: dt.date, last: dt.date) -> AssetCheckResult:
    in_range = collaboration_scores.c.date.between(first, last)
    count = sa.select(sa.func.count()).select_from(collaboration_scores).where(in_range)
    out_of_range = conn.execute(count.where(_out_of_range(collaboration_scores, COLLABORATION_SCORE_COLUMNS))
                                ).scalar_one()
    over_answered = conn.execute(count.where(collaboration_scores.c.requests_answered
                                             > collaboration_scores.c.requests_received)).scalar_one()
    return AssetCheckResult(asset_key="collaboration_scores", check_name=COLLABORATION_CHECK,
                            passed=out_of_range == over_answered == 0, severity=AssetCheckSeverity.ERROR,
                            metadata={"rows": conn.execute(count).scalar_one(), "scores_outside_0_1": out_of_range,
                                      "answered_more_than_received": over_answered,
                                      "partition_range": f"{first}..{last}"})


JUDGE_FAILURES_CHECK = "judge_failure_rate"
UNKNOWN_COST_CHECK = "unknown_cost_share"
# Warnings, not blocks: a flaky judge or a missing price lowers what the scores can say, but the
# scores that exist are still right. Above these shares, someone should look.
MAX_JUDGE_FAILURE_RATE = 0.10  # of the tasks sent to the judge in the range
MAX_UNKNOWN_COST_SHARE = 0.20  # of the range's tasks


def judge_failures_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(JUDGE_FAILURES_CHECK, asset="task_scores", description=(
        f"Warns when more than {MAX_JUDGE_FAILURE_RATE:.0%} of the tasks sent to the LLM judge in the range failed "
        "(after the client's retries): the quality scores then rest on fewer judgements."))


def unknown_cost_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(UNKNOWN_COST_CHECK, asset="task_scores", description=(
        f"Warns when more than {MAX_UNKNOWN_COST_SHARE:.0%} of the range's tasks have no known cost (no cost_usd "
        "and no price in price_table for their model): cost scores and provider rankings leave them out."))


def share_check(check_name: str, part: int, whole: int, limit: float, first: dt.date, last: dt.date,
                **metadata: object) -> AssetCheckResult:
    """``part`` of ``whole`` at most ``limit``, as a warning on task_scores."""
    share = part / whole if whole else 0.0
    return AssetCheckResult(asset_key="task_scores", check_name=check_name, passed=share <= limit,
                            severity=AssetCheckSeverity.WARN, metadata={
                                "share": round(share, 4), "limit": limit, **metadata,
                                "partition_range": f"{first}..{last}"})


def judge_and_cost_results(counts: Counter[str], first: dt.date, last: dt.date) -> list[AssetCheckResult]:
    """The two warnings of a range from its chunks' ``scores_counts`` (the unknown costs' share of the
    scored tasks)."""
    failed, sent = counts["judge_failures"], counts["tasks_sent_to_judge"]
    tasks, unknown = counts["score_rows"], counts["tasks_with_unknown_cost"]
    return [share_check(JUDGE_FAILURES_CHECK, failed, sent, MAX_JUDGE_FAILURE_RATE, first, last,
                        tasks_sent_to_judge=sent, judge_failures=failed),
            share_check(UNKNOWN_COST_CHECK, unknown, tasks, MAX_UNKNOWN_COST_SHARE, first, last,
                        tasks=tasks, tasks_with_unknown_cost=unknown)]
