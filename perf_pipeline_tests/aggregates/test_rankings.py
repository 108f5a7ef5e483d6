"""Leaderboard, most improved agent and provider rankings against values computed by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from perf_pipeline.aggregates.rankings import (
    MOST_IMPROVED_COLUMNS,
    competition_ranks,
    leaderboard,
    most_improved,
    provider_rankings,
)
from perf_pipeline.aggregates.rollups import daily_rollups
from perf_pipeline.aggregates.trends import TheilSenTrendStrategy, daily_metric_values
from perf_pipeline_tests.aggregates.test_windows import D, scored_task


def agent_stats(*agents: tuple[str, float | None, int, str]) -> pd.DataFrame:
    """window_stats rows of agents: (agent, avg_overall_score, n_tasks, status)."""
    return pd.DataFrame([{"as_of_date": D, "window_days": 7, "entity_type": "agent", "entity_id": a,
                          "avg_overall_score": s, "n_tasks": n, "status": st, "avg_quality_score": s,
                          "success_rate": 1.0, "avg_cost_per_task": 0.01, "total_cost_usd": 0.01 * n,
                          "n_overall": n if s is not None else 0} for a, s, n, st in agents])


def departments(*rows: tuple[str, str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"date": D, "department": d, "agent_id": a, "n_tasks": n} for d, a, n in rows],
                        columns=["date", "department", "agent_id", "n_tasks"])


def test_competition_ranks_share_the_best_rank() -> None:
    assert competition_ranks([(0.9, 5), (0.8, 7), (0.8, 7), (0.7, 9)]) == [1, 2, 2, 4]


def test_leaderboard_ranks_by_score_then_tasks_and_lists_the_unranked() -> None:
    board = leaderboard(agent_stats(("low", 0.5, 9, "ok"), ("tie-few", 0.8, 5, "ok"), ("tie-many", 0.8, 12, "ok"),
                                    ("best", 0.95, 6, "ok"), ("same-a", 0.5, 9, "ok"),
                                    ("thin", None, 4, "insufficient_data"), ("unscored", None, 8, "ok")),
                        departments(("eng", "best", 3), ("ops", "best", 5), ("eng", "low", 9)))
    ranks = [None if pd.isna(r) else int(r) for r in board["rank"]]
    assert list(zip(board["agent_id"], ranks, board["status"], strict=True)) == [
        ("best", 1, "ranked"), ("tie-many", 2, "ranked"), ("tie-few", 3, "ranked"),
        ("low", 4, "ranked"), ("same-a", 4, "ranked"),  # equal score and tasks: equal rank, listed by name
        ("unscored", None, "no_scores"), ("thin", None, "insufficient_data")]  # unranked: more tasks first
    by_agent = board.set_index("agent_id")
    assert by_agent.loc["best", "department"] == "ops"  # 5 of its 8 tasks
    assert pd.isna(by_agent.loc["tie-few", "department"])


def improving_agents() -> pd.DataFrame:
    """Agent trends as TheilSenTrendStrategy computes them for three planted agents."""
    rows = []
    for i in range(10):
        day = D - dt.timedelta(days=9 - i)
        rows += [scored_task(day, agent="fast", overall_score=0.3 + 0.05 * i),
                 scored_task(day, agent="slow", overall_score=0.3 + 0.02 * i),
                 scored_task(day, agent="flat", overall_score=0.5 + 0.01 * (i % 2))]
    rollups = daily_rollups(pd.DataFrame(rows), pd.DataFrame())
    daily = daily_metric_values(rollups[rollups["entity_type"] == "agent"])
    return TheilSenTrendStrategy(windows=(7, 30), metrics=["avg_overall_score"]).compute(daily, [D])


def test_most_improved_is_the_steepest_significant_improver() -> None:
    best = most_improved(improving_agents(), [D], [7, 30]).set_index("window_days")
    assert best.loc[30, "agent_id"] == "fast" and best.loc[30, "slope_per_day"] == pytest.approx(0.05)
    assert (best.loc[30, "candidates"], best.loc[30, "agents_evaluated"]) == (2, 3)  # flat is evaluated, stable



def _most_improved_by_filtering(trends: pd.DataFrame, as_of, windows) -> pd.DataFrame:
    """Each (day, window)'s trends found by comparing every row's day and window, as ``most_improved``
    found them before it grouped them once: the reference for the test below."""
    trends = trends[trends["metric"] == "avg_overall_score"]
    rows = []
    for day in as_of:
        for window in windows:
            part = trends[(trends["as_of_date"] == day) & (trends["window_days"] == window)]
            improving = part[part["direction"] == "improving"]
            row = {"as_of_date": day, "window_days": window, "candidates": len(improving),
                   "agents_evaluated": int(part["slope_per_day"].notna().sum())}
            if not improving.empty:
                best = improving.sort_values(["slope_per_day", "relative_change", "entity_id"],
                                             ascending=[False, False, True], kind="stable").iloc[0]
                row.update(agent_id=best["entity_id"], **{c: best[c] for c in (
                    "n_points", "slope_per_day", "slope_low", "slope_high", "relative_change", "mann_kendall_p")})
            rows.append(row)
    return pd.DataFrame(rows, columns=MOST_IMPROVED_COLUMNS)


def test_most_improved_over_days_and_windows_equals_each_one_alone() -> None:
    """The rows of each (day, window) found at once give what filtering the trends by each day and
    window gave: planted agents over 12 as-of days and three windows, another metric and a day
    without trends mixed in, in shuffled order."""
    rng = np.random.default_rng(5)
    days = [D - dt.timedelta(days=k) for k in range(12)]
    rows = [{"entity_type": "agent", "entity_id": f"agent-{a}", "as_of_date": day, "window_days": window,
             "metric": metric, "n_points": 9, "slope_per_day": slope, "slope_low": slope / 2,
             "slope_high": slope * 2, "intercept": 0.5, "relative_change": round(slope * 10, 1),
             "mann_kendall_p": 0.01, "direction": direction}
            for day in days[1:] for window in (7, 30, 90) for a in range(8)
            for metric in ("avg_overall_score", "success_rate")
            for slope, direction in [(round(float(rng.choice([0.01, 0.02, 0.03, -0.01])), 2),
                                      str(rng.choice(["improving", "stable", "declining"])))]]
    trends = pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)
    together = most_improved(trends, days, [7, 30, 90])
    pd.testing.assert_frame_equal(together, _most_improved_by_filtering(trends, days, [7, 30, 90]))
    assert together["agent_id"].notna().sum() > 20 and together["agent_id"].isna().sum() >= 3


def test_no_most_improved_agent_when_none_qualifies() -> None:
    trends = improving_agents()
    flat_only = most_improved(trends[trends["entity_id"] == "flat"], [D], [30]).iloc[0]
    assert flat_only["agent_id"] is None or pd.isna(flat_only["agent_id"])
    assert (flat_only["candidates"], flat_only["agents_evaluated"]) == (0, 1)


def model_rollups(*candidates: tuple[str, str, int, float, float | None, float]) -> pd.DataFrame:
    """model_task_type rollups of (provider, model, tasks, quality, cost, response ms) on day D."""
    rows = [scored_task(D, provider=p, model=m, quality_score=q, cost_usd=c, response_time_ms=ms)
            for p, m, n, q, c, ms in candidates for _ in range(n)]
    rollups = daily_rollups(pd.DataFrame(rows), pd.DataFrame())
    return rollups[rollups["entity_type"] == "model_task_type"]


def test_provider_utility_by_hand() -> None:
    ranked = provider_rankings(model_rollups(("openai", "big", 5, 0.9, 0.04, 2000.0),
                                             ("openai", "small", 5, 0.8, 0.01, 1000.0),
                                             ("anthropic", "mid", 6, 0.86, 0.02, 1000.0)), [D])
    by_model = ranked.set_index("model")
    # References: median cost 0.02, median latency 1000 ms (the histogram reads it within 1 %).
    big = 0.9 - 0.05 * math.log2(0.04 / 0.02) - 0.02 * math.log2(2000 / 1000)  # 0.83: best quality, but dear
    small = 0.8 - 0.05 * math.log2(0.01 / 0.02)  # 0.85: half the reference cost
    assert by_model.loc["big", "utility"] == pytest.approx(big, abs=1e-3)
    assert by_model.loc["small", "utility"] == pytest.approx(small, abs=1e-3)
    assert by_model.loc["mid", "utility"] == pytest.approx(0.86, abs=1e-3)  # the reference itself
    assert ranked[["model", "rank"]].values.tolist() == [["mid", 1], ["small", 2], ["big", 3]]


def test_candidates_need_five_tasks_and_known_quality_cost_and_latency() -> None:
    ranked = provider_rankings(model_rollups(("openai", "ok", 5, 0.9, 0.01, 900.0),
                                             ("openai", "four", 4, 0.99, 0.001, 100.0),
                                             ("openai", "no-cost", 5, 0.99, None, 100.0)), [D])
    status = ranked.set_index("model")[["rank", "status"]]
    assert status.loc["ok"].tolist() == [1, "ranked"]
    assert status.loc["four", "status"] == "insufficient_data" and pd.isna(status.loc["four", "rank"])
    assert status.loc["no-cost", "status"] == "unknown_cost" and pd.isna(status.loc["no-cost", "rank"])


def test_the_order_of_two_candidates_does_not_depend_on_the_others() -> None:
    pair = [("openai", "a", 5, 0.9, 0.04, 2000.0), ("openai", "b", 5, 0.8, 0.01, 1000.0)]
    alone = provider_rankings(model_rollups(*pair), [D])
    crowded = provider_rankings(model_rollups(*pair, ("x", "c", 5, 0.5, 5.0, 90000.0),
                                              ("x", "d", 5, 0.4, 0.0, 10.0)), [D])
    order = [m for m in crowded["model"] if m in ("a", "b")]
    assert order == alone["model"].tolist()
    gap = alone.set_index("model")["utility"]
    crowded_gap = crowded.set_index("model")["utility"]
    assert gap["a"] - gap["b"] == pytest.approx(crowded_gap["a"] - crowded_gap["b"])


def test_a_free_model_counts_at_the_cost_floor() -> None:
    ranked = provider_rankings(model_rollups(("local", "free", 5, 0.5, 0.0, 1000.0),
                                             ("openai", "paid", 5, 0.9, 0.0002, 1000.0)), [D]).set_index("model")
    # Floor 0.0001: the free model is one doubling cheaper than the paid one, worth 0.05 quality.
    assert ranked.loc["paid", "utility"] - ranked.loc["free", "utility"] == pytest.approx(0.4 - 0.05, abs=1e-9)
