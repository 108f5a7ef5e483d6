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

from perf_pipeline.aggregates.rolling import Groups
from perf_pipeline.aggregates.theilsen import theil_sen
from perf_pipeline.aggregates.windows import latency_figures, metrics_from_sums

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


FITTED = ["slope_per_day", "slope_low", "slope_high", "intercept", "relative_change", "mann_kendall_p"]
# Day ordinals stay below this (year 2738): entity * KEY_STRIDE + day orders the rows by entity, then day.
KEY_STRIDE = 1_000_000


DAILY_METRICS = list(POLARITY)  # the metrics a trend or a baseline can follow: the daily_metrics table
DAILY_COLUMNS = ["entity_type", "entity_id", "date", "n_tasks", *DAILY_METRICS]


def daily_metric_values(rollups: pd.DataFrame) -> pd.DataFrame:
    """Each rollup row's own metrics (that day's tasks only): the points trends and baselines are
    fitted to, computed once per day (the daily_metrics table), not once per window reading them."""
    if rollups.empty:
        return pd.DataFrame(columns=DAILY_COLUMNS)
    rollups = rollups.reset_index(drop=True)
    each = np.arange(len(rollups))
    metrics = metrics_from_sums(rollups, latency_figures(rollups, each, each + 1))
    frame = pd.concat([rollups[["entity_type", "entity_id", "date"]], metrics], axis=1)
    return frame[DAILY_COLUMNS]


def fit_batch(days: np.ndarray, values: np.ndarray, polarity: int,
              min_relative_change: float) -> dict[str, np.ndarray]:
    """Theil-Sen fits of the rows of ``values`` (series of the same length, at least 2 points) over
    the rows of ``days`` (increasing day numbers), with the direction each supports; one array per
    trends column (NaN where a figure is unknown)."""
    fitted = theil_sen(days, values, alpha=0.95)
    level = np.median(np.abs(values), axis=1)
    change = fitted.slope * (days[:, -1] - days[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(level > 0, change / np.where(level > 0, level, 1.0), np.nan)
    excludes_zero = (fitted.low > 0) | (fitted.high < 0)
    large = ~np.isnan(relative) & (np.abs(relative) >= min_relative_change)
    direction = np.where(excludes_zero & large, np.where(np.sign(fitted.slope) == polarity, IMPROVING, DECLINING),
                         STABLE)
    return {"slope_per_day": fitted.slope, "slope_low": fitted.low, "slope_high": fitted.high,
            "intercept": fitted.intercept, "relative_change": relative, "mann_kendall_p": fitted.mann_kendall_p,
            "direction": direction.astype(object)}


def fit(days: np.ndarray, values: np.ndarray, polarity: int, min_points: int,
        min_relative_change: float) -> dict[str, float | int | str | None]:
    """Theil-Sen fit of one series of values over day numbers, with the direction it supports."""
    n = len(values)
    result: dict[str, float | int | str | None] = {
        "n_points": n, "slope_per_day": None, "slope_low": None, "slope_high": None, "intercept": None,
        "relative_change": None, "mann_kendall_p": None, "direction": INSUFFICIENT}
    if n < max(min_points, 2):
        return result
    fitted = fit_batch(np.asarray(days, dtype="float64")[None, :], np.asarray(values, dtype="float64")[None, :],
                       polarity, min_relative_change)
    for name, column in fitted.items():
        value = column[0]
        result[name] = value if isinstance(value, str) else None if np.isnan(value) else float(value)
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
        """All fits of all entities, days, windows and metrics, batched by series length (see
        ``theilsen.py``): a row per entity with a day in the window, per metric."""
        if daily.empty or not as_of:
            return pd.DataFrame(columns=TREND_COLUMNS)
        groups = Groups.of(daily, ["entity_type", "entity_id"])
        daily, day = groups.rows, groups.day
        # One sorted key per daily row: a window of an entity is a range of rows, found by binary search.
        key = groups.group * KEY_STRIDE + day
        entities = groups.keys.to_numpy()
        ends = np.array([d.toordinal() for d in as_of], dtype=np.int64)
        windows = np.array(self.windows, dtype=np.int64)
        # Every (entity, as-of day, window), in the order of the rows written.
        e, a, w = (grid.ravel() for grid in np.meshgrid(np.arange(len(entities)), np.arange(len(ends)),
                                                        np.arange(len(windows)), indexing="ij"))
        lo = np.searchsorted(key, e * KEY_STRIDE + ends[a] - windows[w], side="right")
        hi = np.searchsorted(key, e * KEY_STRIDE + ends[a], side="right")
        present = hi > lo  # an entity without a day in the window gets no row
        e, a, w, lo, hi = e[present], a[present], w[present], lo[present], hi[present]
        frames = []
        for metric in self.metrics:
            values = daily[metric].to_numpy(dtype="float64")
            known = ~np.isnan(values)
            # The window's known points are the range [before[lo], before[hi]) of the known rows.
            before = np.concatenate([[0], np.cumsum(known)])
            start, n_points = before[lo], before[hi] - before[lo]
            columns = {name: np.full(len(e), np.nan) for name in FITTED}
            columns["direction"] = np.full(len(e), INSUFFICIENT, dtype=object)
            known_days, known_values = day[known].astype("float64"), values[known]
            for n in np.unique(n_points[n_points >= max(self.min_points, 2)]):
                rows = np.flatnonzero(n_points == n)
                points = start[rows, None] + np.arange(n)
                fitted = fit_batch(known_days[points], known_values[points], POLARITY[metric],
                                   self.min_relative_change)
                for name, column in fitted.items():
                    columns[name][rows] = column
            frames.append(pd.DataFrame({"order": np.arange(len(e)), "metric": metric, "n_points": n_points,
                                        **columns}))
        fits = pd.concat(frames, ignore_index=True).sort_values("order", kind="stable")
        order = fits["order"].to_numpy()
        result = pd.DataFrame({"entity_type": entities[e[order], 0], "entity_id": entities[e[order], 1],
                               "as_of_date": np.asarray(as_of, dtype=object)[a[order]],
                               "window_days": windows[w[order]]})
        for column in TREND_COLUMNS[4:]:
            result[column] = fits[column].to_numpy()
        return result[TREND_COLUMNS]
