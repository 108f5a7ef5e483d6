"""Which rules hold, per entity, as of each day: a pure function of that day's ``window_stats``,
``anomalies`` and ``trends``.

Missing data never fires: a window with ``insufficient_data``, a null metric, a trend without a
significant direction are skipped, never read as zero.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from perf_pipeline.aggregates.windows import OK
from perf_pipeline.alerts.config import Anomaly, Rule, Threshold, Trend

CONDITION_COLUMNS = ["as_of_date", "rule", "entity_type", "entity_id", "severity", "kind", "metric", "window_days",
                     "observed", "threshold", "baseline", "n_tasks", "evidence"]


def held_conditions(rules: list[Rule], window_stats: pd.DataFrame, anomalies: pd.DataFrame,
                    trends: pd.DataFrame) -> pd.DataFrame:
    """One row per (day, rule, entity) whose condition holds, with its evidence (``CONDITION_COLUMNS``).

    ``window_stats`` and ``trends`` are keyed by ``as_of_date``, ``anomalies`` by ``date``."""
    rows: list[dict[str, Any]] = []
    for rule in rules:
        condition = rule.condition
        if isinstance(condition, Threshold):
            rows.extend(_thresholds(rule, condition, window_stats))
        elif isinstance(condition, Anomaly):
            rows.extend(_anomalies(rule, condition, anomalies))
        elif isinstance(condition, Trend):
            rows.extend(_trends(rule, condition, trends))
    frame = pd.DataFrame(rows, columns=CONDITION_COLUMNS)
    return frame.sort_values(["as_of_date", "rule", "entity_type", "entity_id"], ignore_index=True)


def _base(rule: Rule, row: Any, day: Any) -> dict[str, Any]:
    return {"as_of_date": day, "rule": rule.name, "entity_type": row.entity_type, "entity_id": row.entity_id,
            "severity": rule.severity, "kind": rule.condition.kind}


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _of(frame: pd.DataFrame, rule: Rule, **equal: Any) -> pd.DataFrame:
    if frame.empty:
        return frame
    selected = frame["entity_type"].isin(rule.entity_types)
    for column, value in equal.items():
        selected &= frame[column] == value
    return frame[selected]


def _thresholds(rule: Rule, condition: Threshold, stats: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for row in _of(stats, rule, window_days=rule.window_days, status=OK).itertuples(index=False):
        value = getattr(row, condition.metric)
        if _known(value) and condition.breached(float(value), row.entity_id):
            rows.append({**_base(rule, row, row.as_of_date), "metric": condition.metric,
                         "window_days": rule.window_days, "observed": float(value),
                         "threshold": condition.limit(row.entity_id), "baseline": None, "n_tasks": int(row.n_tasks),
                         "evidence": {"direction": "below" if condition.below is not None else "above"}})
    return rows


def _anomalies(rule: Rule, condition: Anomaly, anomalies: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per entity and day (an alert is keyed by rule + entity): the metric furthest from its
    baseline speaks, the others are listed in the evidence."""
    by_alert: dict[tuple, list[Any]] = {}
    for row in _of(anomalies, rule).itertuples(index=False):
        if not row.is_anomaly or (condition.metrics is not None and row.metric not in condition.metrics):
            continue
        if condition.direction != "any" and row.direction != condition.direction:
            continue
        by_alert.setdefault((row.date, row.entity_type, row.entity_id), []).append(row)
    rows = []
    for (day, _, _), found in sorted(by_alert.items()):
        found.sort(key=lambda r: (-abs(r.robust_z) if _known(r.robust_z) else 0.0, r.metric))
        row = found[0]
        rows.append({**_base(rule, row, day), "metric": row.metric, "window_days": int(row.baseline_days),
                     "observed": float(row.observed), "threshold": None,
                     "baseline": float(row.baseline_median) if _known(row.baseline_median) else None,
                     "n_tasks": None,
                     "evidence": {"robust_z": float(row.robust_z) if _known(row.robust_z) else None,
                                  "baseline_mad": float(row.baseline_mad) if _known(row.baseline_mad) else None,
                                  "direction": row.direction,
                                  "metrics": {r.metric: float(r.robust_z) if _known(r.robust_z) else None
                                              for r in found}}})
    return rows


def _trends(rule: Rule, condition: Trend, trends: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for row in _of(trends, rule, window_days=rule.window_days, metric=condition.metric,
                   direction=condition.direction).itertuples(index=False):
        rows.append({**_base(rule, row, row.as_of_date), "metric": condition.metric, "window_days": rule.window_days,
                     "observed": float(row.slope_per_day), "threshold": None, "baseline": None,
                     "n_tasks": int(row.n_points),
                     "evidence": {"slope_low": float(row.slope_low), "slope_high": float(row.slope_high),
                                  "mann_kendall_p": float(row.mann_kendall_p) if _known(row.mann_kendall_p) else None,
                                  "relative_change": (float(row.relative_change) if _known(row.relative_change)
                                                      else None),
                                  "direction": condition.direction}})
    return rows
