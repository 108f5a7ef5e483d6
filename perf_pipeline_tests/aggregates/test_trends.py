"""Theil-Sen trends: planted improving, declining and flat agents, polarity, and scipy's own numbers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perf_pipeline.aggregates.rollups import daily_rollups
from perf_pipeline.aggregates.trends import TheilSenTrendStrategy, daily_metric_values, fit
from perf_pipeline_tests.aggregates.test_windows import D, scored_task


def trends_for(per_day: dict[str, list[dict]], days: int = 10) -> pd.DataFrame:
    rows = []
    for agent, fields in per_day.items():
        for i in range(days):
            rows += [scored_task(D - dt.timedelta(days=days - 1 - i), agent=agent, **fields[i])]
    daily = daily_metric_values(daily_rollups(pd.DataFrame(rows), pd.DataFrame()))
    return TheilSenTrendStrategy(windows=(30,)).compute(daily, [D])


def direction(trends: pd.DataFrame, agent: str, metric: str) -> str:
    row = trends[(trends["entity_type"] == "agent") & (trends["entity_id"] == agent) & (trends["metric"] == metric)]
    return row.iloc[0]["direction"]


def test_planted_improving_declining_and_flat_agents() -> None:
    noise = [0.01, -0.01, 0.0, 0.02, -0.02, 0.01, 0.0, -0.01, 0.02, -0.02]
    trends = trends_for({
        "rising": [{"quality_score": 0.5 + 0.03 * i + noise[i] / 4} for i in range(10)],
        "falling": [{"quality_score": 0.9 - 0.03 * i + noise[i] / 4} for i in range(10)],
        "flat": [{"quality_score": 0.7 + noise[i]} for i in range(10)],
        "cheaper": [{"cost_usd": 0.10 - 0.005 * i} for i in range(10)],  # lower cost: improving
    })
    assert direction(trends, "rising", "avg_quality_score") == "improving"
    assert direction(trends, "falling", "avg_quality_score") == "declining"
    assert direction(trends, "flat", "avg_quality_score") == "stable"
    assert direction(trends, "cheaper", "avg_cost_per_task") == "improving"
    assert direction(trends, "cheaper", "avg_quality_score") == "stable"  # constant 0.8: slope 0


def test_slope_interval_and_p_value_are_scipys() -> None:
    days = np.arange(10, dtype=float) + 739000
    values = np.array([0.5, 0.55, 0.52, 0.6, 0.58, 0.66, 0.61, 0.7, 0.69, 0.75])
    result = fit(days, values, polarity=1, min_points=5, min_relative_change=0.05)
    slope, intercept, low, high = stats.theilslopes(values, days)
    assert (result["slope_per_day"], result["slope_low"], result["slope_high"]) == pytest.approx((slope, low, high))
    assert result["intercept"] == pytest.approx(intercept)
    assert result["mann_kendall_p"] == pytest.approx(stats.kendalltau(days, values).pvalue)
    assert result["relative_change"] == pytest.approx(slope * 9 / np.median(values))
    assert result["direction"] == "improving"


def test_four_points_are_insufficient_five_are_enough() -> None:
    days, values = np.arange(5, dtype=float), np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert fit(days[:4], values[:4], 1, 5, 0.05)["direction"] == "insufficient_data"
    assert fit(days[:4], values[:4], 1, 5, 0.05)["slope_per_day"] is None
    assert fit(days, values, 1, 5, 0.05)["direction"] == "improving"


def test_a_significant_but_tiny_change_is_stable() -> None:
    days = np.arange(10, dtype=float)
    values = 100.0 + 0.01 * days  # steady, but 0.09 % over the window
    assert fit(days, values, 1, 5, 0.05)["direction"] == "stable"
    assert fit(days, values, 1, 5, 0.0001)["direction"] == "improving"


def test_days_without_tasks_are_not_points() -> None:
    trends = trends_for({"sparse": [{"quality_score": 0.5 + 0.05 * i} for i in range(10)]}, days=10)
    row = trends[(trends["entity_id"] == "sparse") & (trends["metric"] == "avg_quality_score")].iloc[0]
    assert row["n_points"] == 10
    unknown = trends_for({"blind": [{"quality_score": None if i % 2 else 0.7} for i in range(10)]})
    row = unknown[(unknown["entity_id"] == "blind") & (unknown["metric"] == "avg_quality_score")].iloc[0]
    assert row["n_points"] == 5  # days whose quality is unknown are left out
