"""Baselines and anomalies: per entity (``provider_task_type`` by default) and metric, the median and
MAD of the previous ``baseline_days`` days' values (the day itself excluded), and the day's robust
z-score against them. A day is an anomaly when |z| exceeds the threshold, and only once the
baseline has ``min_baseline_days`` days: a thin baseline flags nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from perf_pipeline.aggregates.trends import POLARITY

# 0.6745 is the 75th percentile of the standard normal: it makes MAD comparable to a standard deviation.
MAD_TO_SIGMA = 0.6745
MEAN_AD_TO_SIGMA = 1.253314  # sqrt(pi / 2): mean absolute deviation -> standard deviation, for normal data
BASELINE_COLUMNS = ["entity_type", "entity_id", "date", "metric", "observed", "baseline_median", "baseline_mad",
                    "baseline_days", "robust_z", "is_anomaly", "direction"]


def robust_z(observed: float, history: np.ndarray) -> tuple[float, float, float | None]:
    """(median, MAD, z) of ``observed`` against ``history``.

    z = 0.6745 (x - median) / MAD. When more than half the baseline is the same value (MAD 0,
    common for rates on small days), the mean absolute deviation stands in, scaled by 1.2533 to be
    comparable to a standard deviation; with no spread at all z is None and nothing is flagged:
    a constant baseline says nothing about how unusual a departure is.
    """
    median = float(np.median(history))
    deviations = np.abs(history - median)
    mad = float(np.median(deviations))
    if mad > 0:
        return median, mad, MAD_TO_SIGMA * (observed - median) / mad
    mean_deviation = float(deviations.mean())
    if mean_deviation > 0:
        return median, mad, (observed - median) / (MEAN_AD_TO_SIGMA * mean_deviation)
    return median, mad, None


def baselines(daily: pd.DataFrame, as_of: Sequence[dt.date], metrics: Sequence[str], *,
              entity_type: str = "provider_task_type", baseline_days: int = 30, min_baseline_days: int = 7,
              threshold: float = 3.5) -> pd.DataFrame:
    """Baseline rows of each entity, day of ``as_of`` with a value, and metric (daily: per-day metric
    values, as ``trends.daily_metric_values`` gives)."""
    unknown = set(metrics) - set(POLARITY)
    if unknown:
        raise ValueError(f"no daily values of anomaly metric(s) {sorted(unknown)}; known: {sorted(POLARITY)}")
    rows = []
    if daily.empty:
        return pd.DataFrame(columns=BASELINE_COLUMNS)
    scoped = daily[daily["entity_type"] == entity_type]
    for entity_id, series in scoped.groupby("entity_id", sort=True):
        # Arrays, not frame lookups: an entity's days in their order (the history's order is that of
        # the rows, so that its mean deviation adds up in the same order), each metric's values.
        dates = series["date"].to_numpy()
        row_of = {day: row for row, day in enumerate(dates)}
        values = {metric: series[metric].to_numpy(dtype="float64", na_value=np.nan) for metric in metrics}
        for day in as_of:
            if day not in row_of:
                continue
            in_window = (dates >= day - dt.timedelta(days=baseline_days)) & (dates < day)
            for metric in metrics:
                observed = values[metric][row_of[day]]
                if np.isnan(observed):
                    continue
                history = values[metric][in_window]
                history = history[~np.isnan(history)]
                row = {"entity_type": entity_type, "entity_id": entity_id, "date": day, "metric": metric,
                       "observed": float(observed), "baseline_days": len(history), "baseline_median": None,
                       "baseline_mad": None, "robust_z": None, "is_anomaly": False, "direction": None}
                if len(history) >= min_baseline_days:
                    median, mad, z = robust_z(float(observed), history)
                    flagged = z is not None and abs(z) > threshold
                    row.update(baseline_median=median, baseline_mad=mad, robust_z=z, is_anomaly=bool(flagged))
                    if flagged:
                        better = np.sign(observed - median) == POLARITY[metric]
                        row["direction"] = "better" if better else "worse"
                rows.append(row)
    return pd.DataFrame(rows, columns=BASELINE_COLUMNS)
