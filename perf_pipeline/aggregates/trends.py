"""Trends: for each entity, as-of day, window and metric, a Theil-Sen slope through the daily values
(one point per day with tasks), its 95 % confidence interval, and a Mann-Kendall p-value.

A trend is ``improving`` or ``declining`` only when the data supports it: at least ``min_points``
days, a confidence interval that excludes zero, and a change over the window of at least
``min_relative_change`` of the typical level. Polarity matters: a falling cost is improving.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import stats

from perf_pipeline.aggregates.windows import metrics_from_sums

IMPROVING, STABLE, DECLINING, INSUFFICIENT = "improving", "stable", "declining", "insufficient_data"
# Metric -> +1 when higher is better, -1 when lower is better.
POLARITY = {"success_rate": 1, "avg_quality_score": 1, "avg_overall_score": 1, "avg_efficiency_score": 1,
            "collaboration_score": 1, "avg_user_rating": 1, "sla_compliance_rate": 1,
            "avg_cost_per_task": -1, "avg_completion_time_s": -1, "p95_response_time_ms": -1,
            "p50_response_time_ms": -1, "avg_tokens": -1}
DEFAULT_METRICS = ["success_rate", "avg_quality_score", "avg_overall_score", "avg_cost_per_task",
                   "avg_completion_time_s", "p95_response_time_ms", "collaboration_score"]
TREND_COLUMNS = ["entity_type", "entity_id", "as_of_date", "window_days", "metric", "n_points", "slope_per_day",
                 "slope_low", "slope_high", "intercept", "relative_change", "mann_kendall_p", "direction"]


class TrendDetectionStrategy(Protocol):
    def compute(self, daily: pd.DataFrame, as_of: Sequence[dt.date]) -> pd.DataFrame:
        """trends rows from per-day metric values (entity_type, entity_id, date, one column per metric)."""


DAILY_METRICS = list(POLARITY)  # the metrics a trend or a baseline can follow: the daily_metrics table
DAILY_COLUMNS = ["entity_type", "entity_id", "date", "n_tasks", *DAILY_METRICS]


def daily_metric_values(rollups: pd.DataFrame) -> pd.DataFrame:
    """Each rollup row's own metrics (that day's tasks only): the points trends and baselines are
    fitted to, computed once per day (the daily_metrics table), not once per window reading them."""
    if rollups.empty:
        return pd.DataFrame(columns=DAILY_COLUMNS)
    metrics = metrics_from_sums(rollups.reset_index(drop=True), rollups["response_time_histogram"].tolist())
    frame = pd.concat([rollups[["entity_type", "entity_id", "date"]].reset_index(drop=True), metrics], axis=1)
    return frame[DAILY_COLUMNS]


def fit(days: np.ndarray, values: np.ndarray, polarity: int, min_points: int,
        min_relative_change: float) -> dict[str, float | int | str | None]:
    """Theil-Sen fit of values over day numbers, with the direction it supports."""
    n = len(values)
    result: dict[str, float | int | str | None] = {
        "n_points": n, "slope_per_day": None, "slope_low": None, "slope_high": None, "intercept": None,
        "relative_change": None, "mann_kendall_p": None, "direction": INSUFFICIENT}
    if n < min_points:
        return result
    slope, intercept, low, high = stats.theilslopes(values, days, alpha=0.95)
    tau = stats.kendalltau(days, values)
    level = float(np.median(np.abs(values)))
    change = slope * float(days.max() - days.min())
    relative = change / level if level > 0 else None
    result.update(slope_per_day=float(slope), slope_low=float(low), slope_high=float(high),
                  intercept=float(intercept), relative_change=None if relative is None else float(relative),
                  mann_kendall_p=None if np.isnan(tau.pvalue) else float(tau.pvalue))
    excludes_zero = low > 0 or high < 0
    large = relative is not None and abs(relative) >= min_relative_change
    if excludes_zero and large:
        result["direction"] = IMPROVING if np.sign(slope) == polarity else DECLINING
    else:
        result["direction"] = STABLE
    return result


class TheilSenTrendStrategy:
    """Theil-Sen trends of ``metrics`` over ``windows``; see the module docstring."""

    def __init__(self, windows: Sequence[int] = (7, 30, 90), metrics: Sequence[str] = tuple(DEFAULT_METRICS),
                 min_points: int = 5, min_relative_change: float = 0.05):
        unknown = set(metrics) - set(POLARITY)
        if unknown:
            raise ValueError(f"no polarity known for trend metric(s) {sorted(unknown)}; known: {sorted(POLARITY)}")
        self.windows, self.metrics = sorted(windows), list(metrics)
        self.min_points, self.min_relative_change = min_points, min_relative_change

    def compute(self, daily: pd.DataFrame, as_of: Sequence[dt.date]) -> pd.DataFrame:
        if daily.empty:
            return pd.DataFrame(columns=TREND_COLUMNS)
        rows = []
        daily = daily.assign(day_number=[d.toordinal() for d in daily["date"]]).sort_values("day_number")
        for (entity_type, entity_id), series in daily.groupby(["entity_type", "entity_id"], sort=True):
            # Plain arrays: slicing a day range by binary search costs microseconds, where a pandas
            # mask per entity, day, window and metric cost most of the time.
            day_numbers = series["day_number"].to_numpy(dtype="float64")
            values = {metric: series[metric].to_numpy(dtype="float64") for metric in self.metrics}
            for day in as_of:
                end = day.toordinal()
                for window in self.windows:
                    lo, hi = np.searchsorted(day_numbers, [end - window, end], side="right")
                    if lo == hi:
                        continue
                    for metric in self.metrics:
                        known = ~np.isnan(values[metric][lo:hi])
                        fitted = fit(day_numbers[lo:hi][known], values[metric][lo:hi][known], POLARITY[metric],
                                     self.min_points, self.min_relative_change)
                        rows.append({"entity_type": entity_type, "entity_id": entity_id, "as_of_date": day,
                                     "window_days": window, "metric": metric, **fitted})
        return pd.DataFrame(rows, columns=TREND_COLUMNS)
