"""Prompt-version comparisons, project summaries and node performance against hand-computed values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perf_pipeline.aggregates.prompts import compare_prompt_versions, holm
from perf_pipeline.aggregates.rollups import daily_rollups
from perf_pipeline.aggregates.summaries import node_performance, node_rollups, project_summaries
from perf_pipeline.aggregates.trends import TheilSenTrendStrategy, daily_metric_values
from perf_pipeline_tests.aggregates.test_windows import D, scored_task


def quality(version: str, values: list[float], task_type: str = "bug_fix", day: dt.date = D) -> list[dict]:
    return [{"task_type": task_type, "prompt_version": version, "quality_score": v, "partition_date": day}
            for v in values]


def test_holm_by_hand() -> None:
    # Sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (kept monotone).
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_a_better_prompt_version_wins_with_scipys_p_value() -> None:
    v1 = [0.50, 0.52, 0.55, 0.48, 0.51, 0.53, 0.49, 0.50]
    v2 = [0.80, 0.78, 0.85, 0.82, 0.79, 0.81, 0.84, 0.83]
    row = compare_prompt_versions(pd.DataFrame(quality("v1", v1) + quality("v2", v2)), [D]).iloc[0]
    expected = stats.mannwhitneyu(v1, v2, alternative="two-sided")
    assert (row["version_a"], row["version_b"], row["verdict"]) == ("v1", "v2", "b_better")
    assert row["p_value"] == pytest.approx(expected.pvalue) and row["p_value_holm"] == pytest.approx(expected.pvalue)
    assert (row["u_statistic"], row["prob_a_beats_b"]) == (0.0, 0.0)  # every v2 score beats every v1 score


def test_no_difference_and_too_few_tasks() -> None:
    interleaved = [0.4 + 0.01 * i for i in range(40)]  # v1 takes the even ones, v2 the odd ones
    rows = quality("v1", interleaved[0::2]) + quality("v2", interleaved[1::2]) + quality("v3", [0.99] * 4)
    compared = compare_prompt_versions(pd.DataFrame(rows), [D]).set_index(["version_a", "version_b"])
    assert compared.loc[("v1", "v2"), "verdict"] == "no_difference"
    insufficient = compared.loc[("v1", "v3")]
    assert insufficient["verdict"] == "insufficient_data" and (insufficient["n_a"], insufficient["n_b"]) == (20, 4)
    assert pd.isna(insufficient["p_value"])


def test_comparisons_do_not_depend_on_the_order_of_a_days_scores() -> None:
    """The warehouse hands a day's scores in no particular order (read_task_quality)."""
    rng = np.random.default_rng(5)
    rows = [row for k in range(6) for version in ("v1", "v2", "v3") for task_type in ("bug_fix", "research")
            for row in quality(version, np.round(rng.random(15), 2).tolist(), task_type, D - dt.timedelta(days=k))]
    scores = pd.DataFrame(rows)
    days = [D - dt.timedelta(days=k) for k in range(3)]
    expected = compare_prompt_versions(scores, days)
    for seed in range(3):
        shuffled = scores.sample(frac=1, random_state=seed).sort_values("partition_date", kind="stable")
        pd.testing.assert_frame_equal(compare_prompt_versions(shuffled.reset_index(drop=True), days), expected,
                                      check_exact=True)


def test_versions_are_compared_within_the_window_and_task_type() -> None:
    old = quality("v2", [0.9] * 10, day=D - dt.timedelta(days=30))  # (D - 30, D]: outside
    other_type = quality("v2", [0.9] * 10, task_type="research")
    rows = quality("v1", [0.5] * 10) + old + other_type
    assert compare_prompt_versions(pd.DataFrame(rows), [D]).empty


def project_tasks() -> list[dict]:
    """Project p1 from D-40; agent a1 improves steadily, a2 does not; feedback types by hand."""
    rows = [scored_task(D - dt.timedelta(days=40), agent="a1", feedback_type="approval")]
    for i in range(7):
        day = D - dt.timedelta(days=6 - i)
        rows.append(scored_task(day, agent="a1", overall_score=0.3 + 0.05 * i,
                                feedback_type=("correction", "approval", None)[i % 3]))
        rows.append(scored_task(day, agent="a2", overall_score=0.6, feedback_type="innovation" if i == 0 else None))
    return rows


def test_project_summary_by_hand() -> None:
    rollups = daily_rollups(pd.DataFrame(project_tasks()), pd.DataFrame())
    spans = rollups[rollups["entity_type"] == "project"][["project_id", "date", "first_task_at", "last_task_at"]]
    agents = rollups[rollups["entity_type"] == "agent"]
    trends = TheilSenTrendStrategy(windows=(7, 30), metrics=["avg_overall_score"]).compute(
        daily_metric_values(agents), [D])
    summaries, per_agent = project_summaries(rollups, spans, trends, [D], [7, 30])
    week = summaries.set_index("window_days").loc[7]
    assert week["first_task_at"] == pd.Timestamp(f"{D - dt.timedelta(days=40)}T08:00:00Z")  # before the window
    assert week["last_task_at"] == pd.Timestamp(f"{D}T09:00:00Z")
    # 14 tasks in 7 days; typed feedback: a1 has correction x3 (i = 0, 3, 6), approval x2, a2 one innovation.
    assert (week["n_tasks"], week["n_agents"], week["n_feedback_typed"], week["innovation_count"]) == (14, 2, 6, 1)
    assert (week["correction_rate"], week["approval_rate"]) == (pytest.approx(3 / 6), pytest.approx(2 / 6))
    assert week["most_improved_agent"] == "a1" and week["most_improved_slope"] == pytest.approx(0.05)
    a1 = per_agent.set_index(["window_days", "agent_id"]).loc[(7, "a1")]
    assert (a1["n_tasks"], a1["n_feedback_typed"], a1["correction_rate"]) == (7, 5, pytest.approx(3 / 5))
    assert a1["avg_overall_score"] == pytest.approx(np.mean([0.3 + 0.05 * i for i in range(7)]))
    assert summaries.set_index("window_days").loc[30, "n_tasks"] == 14  # the D-40 task is in neither window


def steps(agent: str, node: str, day: dt.date, *specs: tuple[str | None, float | None, int | None]) -> list[dict]:
    return [{"agent_id": agent, "node": node, "partition_date": day, "status": s, "duration_s": d, "tokens": t}
            for s, d, t in specs]


def test_node_performance_by_hand() -> None:
    rows = (steps("a1", "plan", D, ("success", 2.0, 100), ("failed", 4.0, None), ("timeout", None, 300))
            + steps("a1", "plan", D - dt.timedelta(days=1), ("success", 6.0, 200), (None, 8.0, 400))
            + steps("a1", "act", D, ("success", 1.0, 10)))
    performance = node_performance(node_rollups(pd.DataFrame(rows)), [D], [7])
    plan = performance.set_index("node").loc["plan"]
    assert (plan["n_steps"], plan["status"]) == (5, "ok")
    assert plan["failure_rate"] == pytest.approx(2 / 4)  # failed + timeout of the 4 steps with a status
    assert (plan["avg_duration_s"], plan["n_duration"]) == (pytest.approx(5.0), 4)
    assert (plan["avg_tokens"], plan["n_tokens"]) == (pytest.approx(250.0), 4)
    act = performance.set_index("node").loc["act"]
    assert act["status"] == "insufficient_data" and pd.isna(act["failure_rate"])
