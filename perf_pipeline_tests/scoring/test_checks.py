"""The scores' checks count each chunk of a range in the chunk's transaction: the counts of its days
add up to the range's, and each problem the check names is counted."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import sqlalchemy as sa

from perf_pipeline.scoring.checks import judge_and_cost_results, scores_counts, scores_result
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import task_scores
from perf_pipeline_tests.benchmarks.aggregate_scaling import Population, write_raw

FIRST = dt.date(2026, 3, 1)
DAYS = [FIRST + dt.timedelta(days=d) for d in range(3)]


def _by_days(conn: sa.Connection) -> Counter[str]:
    """``scores_counts`` of each day, added up (as the asset adds up its chunks')."""
    total: Counter[str] = Counter()
    for day in DAYS:
        total.update(scores_counts(conn, day, day))
    return total


def _task_ids(day: dt.date) -> list[str]:
    return [f"{day}-{i:05d}" for i in range(10)]  # the benchmark population's task ids of a day of 10


def test_counts_of_the_days_add_up_and_name_each_problem(warehouse_url: str) -> None:
    engine = warehouse_engine(warehouse_url)
    population = Population(4)
    with engine.begin() as conn:
        for day in DAYS:
            write_raw(conn, *population.day(day, 10))
    first, last = DAYS[0], DAYS[-1]
    with engine.connect() as conn:
        clean = scores_counts(conn, first, last)
        assert clean == _by_days(conn)
        assert clean["tasks"] == clean["score_rows"] == clean["distinct_tasks"] == 30
        assert scores_result(clean, first, last).passed
        assert all(result.passed for result in judge_and_cost_results(clean, first, last))
    day0, day1, day2 = (_task_ids(day) for day in DAYS)
    scores = task_scores.c
    with engine.begin() as conn:
        conn.execute(task_scores.delete().where(scores.task_id == day0[0]))  # a task without a score
        conn.execute(task_scores.update().where(scores.task_id == day0[1]).values(overall_score=1.5))
        conn.execute(task_scores.update().where(scores.task_id == day1[0]).values(judge_status="guessed"))
        conn.execute(task_scores.update().where(scores.task_id == day2[0]).values(quality_score=None))
        conn.execute(task_scores.update().where(scores.task_id.in_(day2[1:4])).values(judge_status="failed"))
        conn.execute(task_scores.update().where(scores.task_id.in_(day2[4:6])).values(judge_status="scored"))
        conn.execute(task_scores.update().where(scores.task_id.in_(day1[1:8])).values(cost_source="unknown"))
    with engine.connect() as conn:
        counts = _by_days(conn)
        assert counts == scores_counts(conn, first, last)
    result = scores_result(counts, first, last)
    assert not result.passed
    assert {name: result.metadata[name].value for name in (
        "tasks", "score_rows", "distinct_tasks", "scores_outside_0_1", "unknown_judge_status",
        "quality_inconsistent_with_components")} == {
        "tasks": 30, "score_rows": 29, "distinct_tasks": 29, "scores_outside_0_1": 1, "unknown_judge_status": 1,
        "quality_inconsistent_with_components": 1}
    judge, cost = judge_and_cost_results(counts, first, last)
    assert not judge.passed and judge.metadata["judge_failures"].value == 3
    assert judge.metadata["tasks_sent_to_judge"].value == 5
    assert not cost.passed and cost.metadata["tasks_with_unknown_cost"].value == 7
    assert cost.metadata["tasks"].value == 29
