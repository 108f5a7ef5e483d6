"""Rolling windows over daily rollups: for each entity, as-of day D and window W, the metrics of the
tasks completed in (D - W, D]. Below ``min_points`` tasks a window says ``insufficient_data`` and
its metric columns are null: no rank or rate is invented from a handful of tasks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from perf_pipeline.aggregates import latency, rolling
from perf_pipeline.aggregates.rolling import Groups, range_sums
from perf_pipeline.aggregates.rollups import AVERAGED, COUNTS

OK, INSUFFICIENT = "ok", "insufficient_data"
KEYS = ["entity_type", "entity_id"]
# window_stats column -> (numerator, denominator) of rollup sums.
RATIOS = {
    "success_rate": ("tasks_completed", "n_tasks"),
    "avg_quality_score": ("sum_quality_score", "n_quality_score"),
    "avg_overall_score": ("sum_overall_score", "n_overall_score"),
    "avg_efficiency_score": ("sum_efficiency_score", "n_efficiency_score"),
    "avg_cost_per_task": ("sum_cost_usd", "n_cost_usd"),
    "avg_completion_time_s": ("sum_completion_time_s", "n_completion_time_s"),
    "avg_tokens": ("sum_total_tokens", "n_total_tokens"),
    "avg_tool_invocations": ("sum_tool_invocations", "n_tool_invocations"),
    "avg_revision_count": ("sum_revision_count", "n_revision_count"),
    "avg_user_rating": ("sum_user_rating", "n_user_rating"),
    "sla_compliance_rate": ("sla_met", "sla_known"),
    "collaboration_score": ("sum_collaboration_score", "n_collaboration_score"),
    "correction_rate": ("corrections", "feedback_typed"),
    "enhancement_rate": ("enhancements", "feedback_typed"),
    "approval_rate": ("approvals", "feedback_typed"),
}
# How many values each average used (they differ from n_tasks where values are unknown).
VALUE_COUNTS = {"n_quality": "n_quality_score", "n_overall": "n_overall_score",
                "n_efficiency": "n_efficiency_score", "n_cost": "n_cost_usd",
                "n_completion_time": "n_completion_time_s", "n_tokens": "n_total_tokens",
                "n_user_ratings": "n_user_rating", "n_sla": "sla_known", "n_feedback_typed": "feedback_typed",
                "n_collaboration_days": "n_collaboration_score"}
METRICS = ["tasks_completed", "tasks_failed", *RATIOS, "total_cost_usd", "p50_response_time_ms",
           "p95_response_time_ms", "innovation_count"]
WINDOW_COLUMNS = [*KEYS, "as_of_date", "window_days", "n_tasks", *METRICS, *VALUE_COUNTS, "n_response_times",
                  "status"]


class MetricsWindowStrategy(Protocol):
    def compute(self, rollups: pd.DataFrame, as_of: Sequence[dt.date]) -> pd.DataFrame:
        """window_stats rows for every entity present in the longest window of each as-of day."""


def metrics_from_sums(sums: pd.DataFrame, response_times: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Window (or single-day) metrics from summed rollup columns and, per row of ``sums``, the
    (count, p50, p95) of its merged latency histogram (``latency_figures``).

    Built column by column as arrays and made a frame once: a report's or a day's few rows would
    otherwise spend most of their time in pandas' per-column assignment and alignment."""

    def counts(column: str) -> np.ndarray:
        return sums[column].astype(np.int64).to_numpy()

    def values(column: str) -> np.ndarray:
        return sums[column].to_numpy(dtype="float64", na_value=np.nan)

    out = {name: counts(name) for name in ("n_tasks", "tasks_completed", "tasks_failed")}
    for name, (numerator, denominator) in RATIOS.items():
        divisor = values(denominator)
        out[name] = values(numerator) / np.where(divisor > 0, divisor, np.nan)
    out["total_cost_usd"] = np.where(values("n_cost_usd") > 0, values("sum_cost_usd"), np.nan)
    out["innovation_count"] = counts("innovations")
    for name, source in VALUE_COUNTS.items():
        out[name] = counts(source)
    count, p50, p95 = response_times
    out["n_response_times"] = np.asarray(count, dtype=np.int64)
    out["p50_response_time_ms"] = np.asarray(p50, dtype="float64")
    out["p95_response_time_ms"] = np.asarray(p95, dtype="float64")
    return pd.DataFrame(out, index=sums.index)


def latency_figures(rows: pd.DataFrame, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row range [lo, hi) of rollup ``rows``: the count, p50 and p95 of its merged latency histogram."""
    count, (p50, p95) = latency.range_percentiles(rows["response_time_histogram"], lo, hi, (50, 95))
    return count, p50, p95


SUMMED = [*COUNTS, *[f"{p}_{m}" for m in AVERAGED for p in ("sum", "n")]]


def in_window(dates: pd.Series, day: dt.date, window: int) -> np.ndarray:
    """Rows of (day - window, day]."""
    return ((dates > day - dt.timedelta(days=window)) & (dates <= day)).to_numpy()


def window_metrics(rollups: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Metrics per ``keys`` of the rollup rows given (one window's days), indexed by ``keys``."""
    groups = Groups.of(rollups.dropna(subset=list(keys)), keys)
    lo, hi = groups.whole()
    metrics = metrics_from_sums(range_sums(groups.rows, SUMMED, lo, hi), latency_figures(groups.rows, lo, hi))
    metrics.index = (pd.MultiIndex.from_frame(groups.keys) if len(keys) > 1
                     else pd.Index(groups.keys[keys[0]], name=keys[0]))
    return metrics


def windowed_metrics(rollups: pd.DataFrame, keys: Sequence[str], as_of: Sequence[dt.date],
                     window_days: Sequence[int], present_in: int | None = None) -> pd.DataFrame:
    """Metrics per as-of day, window and ``keys`` with rollup rows in the window (or, with
    ``present_in``, in the window of that many days), in that order (the columns as_of_date,
    window_days, the keys, then the metrics): ``window_metrics`` of every window in one pass."""
    if rollups.empty or not as_of:
        return pd.DataFrame(columns=["as_of_date", "window_days", *keys])
    groups = Groups.of(rollups, keys)
    found = rolling.windows(groups, as_of, sorted(window_days), present_in=present_in)
    metrics = metrics_from_sums(range_sums(groups.rows, SUMMED, found.lo, found.hi),
                                latency_figures(groups.rows, found.lo, found.hi))
    return pd.concat([pd.DataFrame({"as_of_date": np.asarray(as_of, dtype=object)[found.as_of],
                                    "window_days": found.window_days}),
                      groups.keys.iloc[found.group].reset_index(drop=True), metrics], axis=1)


class RollingWindowStrategy:
    """Windows of ``windows`` days (several at once), ``min_points`` tasks at least."""

    def __init__(self, windows: Sequence[int] = (7, 30, 90), min_points: int = 5):
        self.windows = sorted(windows)
        self.min_points = min_points

    def compute(self, rollups: pd.DataFrame, as_of: Sequence[dt.date]) -> pd.DataFrame:
        """Every as-of day and window in one pass over the rollups (``rolling.py``); every entity of
        the longest window gets a row in each window (absent means 0 tasks)."""
        if rollups.empty or not as_of:
            return pd.DataFrame(columns=WINDOW_COLUMNS)
        stats = windowed_metrics(rollups, KEYS, as_of, self.windows, present_in=self.windows[-1])
        return with_status(stats, self.min_points)[WINDOW_COLUMNS]


def with_status(stats: pd.DataFrame, min_points: int) -> pd.DataFrame:
    """``status`` ok, or insufficient_data with the metric columns nulled, below ``min_points`` tasks."""
    stats = stats.copy()
    enough = stats["n_tasks"] >= min_points
    stats["status"] = np.where(enough, OK, INSUFFICIENT)
    stats.loc[~enough, METRICS] = None
    return stats
