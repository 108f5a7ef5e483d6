"""Daily rollups and rolling windows against values computed by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from perf_pipeline.aggregates import latency
from perf_pipeline.aggregates.rollups import WINDOWED_ENTITY_TYPES, daily_rollups
from perf_pipeline.aggregates.windows import METRICS, RollingWindowStrategy

D = dt.date(2026, 3, 31)


def scored_task(day: dt.date, agent: str = "a1", **fields) -> dict:
    row = {"agent_id": agent, "department": "eng", "project_id": "p1", "provider": "openai", "model": "gpt-4.1",
           "task_type": "bug_fix", "prompt_version": "v1", "partition_date": day, "status": "success",
           "quality_score": 0.8, "overall_score": 0.7, "efficiency_score": 0.5, "cost_usd": 0.01,
           "completion_time_s": 100.0, "total_tokens": 1000, "tool_invocations": 2, "revision_count": 1,
           "user_score": 0.75, "user_rating_count": 1, "feedback_type": None, "sla_seconds": 120.0,
           "response_time_ms": 1000.0,
           "assigned_at": pd.Timestamp(f"{day}T08:00:00Z"), "completed_at": pd.Timestamp(f"{day}T09:00:00Z")}
    row.update(fields)
    return row


def windows(rows: list[dict], collaboration: pd.DataFrame | None = None, as_of=(D,)) -> pd.DataFrame:
    rollups = daily_rollups(pd.DataFrame(rows), collaboration if collaboration is not None else pd.DataFrame())
    windowed = rollups[rollups["entity_type"].isin(WINDOWED_ENTITY_TYPES)]  # as store.read_rollups reads them
    return RollingWindowStrategy().compute(windowed, list(as_of))


def pick(stats: pd.DataFrame, window: int, entity_type: str = "agent", entity: str = "a1") -> pd.Series:
    row = stats[(stats["window_days"] == window) & (stats["entity_type"] == entity_type)
                & (stats["entity_id"] == entity)]
    assert len(row) == 1
    return row.iloc[0]


def test_window_boundaries_exclude_d_minus_w_and_include_d() -> None:
    rows = [scored_task(D - dt.timedelta(days=7), quality_score=0.0),  # (D-7, D]: out of the 7-day window
            *[scored_task(D - dt.timedelta(days=k), quality_score=1.0) for k in (6, 3, 2, 1, 0)]]
    stats = windows(rows)
    seven, thirty = pick(stats, 7), pick(stats, 30)
    assert (seven["n_tasks"], seven["avg_quality_score"], seven["status"]) == (5, 1.0, "ok")
    assert (thirty["n_tasks"], thirty["avg_quality_score"]) == (6, pytest.approx(5 / 6))


def test_four_tasks_are_insufficient_and_five_are_enough() -> None:
    four = windows([scored_task(D) for _ in range(4)])
    row = pick(four, 7)
    assert row["status"] == "insufficient_data" and row["n_tasks"] == 4
    assert all(pd.isna(row[m]) for m in METRICS)
    assert pick(windows([scored_task(D) for _ in range(5)]), 7)["status"] == "ok"


def test_averages_skip_unknown_values_and_say_how_many_they_used() -> None:
    rows = [scored_task(D, cost_usd=c, total_tokens=t, sla_seconds=s, feedback_type=f, status=st)
            for c, t, s, f, st in [(0.02, 1000, 120.0, "correction", "success"),
                                   (None, None, None, "approval", "failed"),
                                   (0.04, 3000, 50.0, "correction", "timeout"),
                                   (None, 2000, 120.0, None, "success"),
                                   (0.06, None, None, "innovation", "cancelled")]]
    row = pick(windows(rows), 7)
    assert (row["n_tasks"], row["tasks_completed"], row["tasks_failed"]) == (5, 2, 2)
    assert row["success_rate"] == pytest.approx(2 / 5)
    assert (row["avg_cost_per_task"], row["total_cost_usd"], row["n_cost"]) == (
        pytest.approx(0.04), pytest.approx(0.12), 3)  # the two unknown costs are not zeros
    assert (row["avg_tokens"], row["n_tokens"]) == (pytest.approx(2000), 3)
    assert (row["sla_compliance_rate"], row["n_sla"]) == (pytest.approx(2 / 3), 3)  # 100 s <= 120, > 50
    assert (row["correction_rate"], row["approval_rate"], row["innovation_count"]) == (
        pytest.approx(2 / 4), pytest.approx(1 / 4), 1)
    assert row["avg_user_rating"] == pytest.approx(4.0)  # user_score 0.75 -> rating 4


def test_every_entity_type_is_rolled_up() -> None:
    stats = windows([scored_task(D, agent="a1", prompt_version=None) for _ in range(5)])
    assert set(stats["entity_type"]) == {"agent", "department", "project", "provider", "model", "task_type",
                                         "provider_task_type"}  # no prompt version: no prompt_version entity
    assert pick(stats, 7, "provider_task_type", "openai/bug_fix")["n_tasks"] == 5


def test_rollups_name_the_parts_of_composite_entities() -> None:
    rows = [scored_task(D, model="meta/llama-3"), scored_task(D, agent="a2", project_id=None, department=None)]
    rollups = daily_rollups(pd.DataFrame(rows), pd.DataFrame()).set_index(["entity_type", "entity_id"])
    model = rollups.loc[("model_task_type", "openai/meta/llama-3/bug_fix")]
    assert (model["provider"], model["model"], model["task_type"], model["agent_id"]) == (
        "openai", "meta/llama-3", "bug_fix", None)  # a "/" inside a model name needs no splitting
    assert rollups.loc[("project_agent", "unassigned/a2"), ["project_id", "agent_id"]].tolist() == ["unassigned", "a2"]
    assert rollups.loc[("department_agent", "eng/a1"), "n_tasks"] == 1
    assert rollups.loc[("agent", "a1"), "first_task_at"] == pd.Timestamp(f"{D}T08:00:00Z")


def test_collaboration_score_is_the_mean_of_the_agents_days() -> None:
    collaboration = pd.DataFrame({"agent_id": ["a1", "a1"], "date": [D, D - dt.timedelta(days=1)],
                                  "collaboration_score": [0.2, 0.6]})
    rows = [scored_task(D), scored_task(D - dt.timedelta(days=1)), *[scored_task(D) for _ in range(3)]]
    row = pick(windows(rows, collaboration), 7)
    assert (row["collaboration_score"], row["n_collaboration_days"]) == (pytest.approx(0.4), 2)
    assert pd.isna(pick(windows(rows, collaboration), 7, "department", "eng")["collaboration_score"])


def test_response_time_percentiles_are_within_one_percent() -> None:
    times = np.random.default_rng(3).lognormal(7, 1, 400)
    rows = [scored_task(D - dt.timedelta(days=i % 7), response_time_ms=t) for i, t in enumerate(times)]
    row = pick(windows(rows), 7)
    assert row["p50_response_time_ms"] == pytest.approx(np.percentile(times, 50), rel=0.01)
    assert row["p95_response_time_ms"] == pytest.approx(np.percentile(times, 95), rel=0.01)
    assert row["n_response_times"] == 400
    assert latency.percentiles({}, (50, 95)) == [None, None]
    assert latency.percentiles({"0": 1, "300": 1}, (50, 100)) == [pytest.approx(10 ** 0.01), pytest.approx(10 ** 3.01)]

