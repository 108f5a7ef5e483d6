"""Baselines and anomalies: a planted anomaly is flagged, its neighbours are not, a thin baseline flags nothing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.aggregates.baselines import BASELINE_COLUMNS, baselines, robust_z
from perf_pipeline.aggregates.trends import POLARITY

START = dt.date(2026, 3, 1)


def daily(values: list[float | None], metric: str = "success_rate") -> pd.DataFrame:
    return pd.DataFrame({"entity_type": "provider_task_type", "entity_id": "openai/bug_fix",
                         "date": [START + dt.timedelta(days=i) for i in range(len(values))], metric: values})


def test_robust_z_by_hand() -> None:
    median, mad, z = robust_z(0.5, np.array([0.8, 0.82, 0.78, 0.81, 0.79, 0.8, 0.83]))
    assert (median, mad) == (0.8, pytest.approx(0.01))  # deviations 0, .02, .02, .01, .01, 0, .03
    assert z == pytest.approx(0.6745 * (0.5 - 0.8) / 0.01)


def test_a_planted_anomaly_is_flagged_and_its_neighbours_are_not() -> None:
    values = [0.80, 0.82, 0.78, 0.81, 0.79, 0.80, 0.83, 0.79, 0.81, 0.80, 0.50, 0.80, 0.81]
    days = [START + dt.timedelta(days=i) for i in range(len(values))]
    result = baselines(daily(values), days, ["success_rate"]).set_index("date")
    assert result.loc[days[10], "is_anomaly"] and result.loc[days[10], "direction"] == "worse"
    assert result.loc[days[10], "robust_z"] < -3.5
    assert not result.loc[[days[9], days[11], days[12]], "is_anomaly"].any()
    assert result.loc[days[11], "baseline_days"] == 11  # the anomaly is in later baselines (median resists it)


def test_a_thin_baseline_flags_nothing() -> None:
    values = [0.8, 0.8, 0.81, 0.79, 0.8, 0.8, 0.1]  # 6 days of baseline before the drop
    result = baselines(daily(values), [START + dt.timedelta(days=6)], ["success_rate"])
    assert not result["is_anomaly"].any() and result["robust_z"].isna().all()
    assert result["baseline_days"].tolist() == [6]


def test_the_baseline_is_the_previous_30_days_only() -> None:
    values = [0.1] * 5 + [0.8] * 30 + [0.8]  # the 0.1 days are more than 30 days back on the last day
    last = START + dt.timedelta(days=35)
    result = baselines(daily(values), [last], ["success_rate"]).iloc[0]
    assert result["baseline_days"] == 30 and result["baseline_median"] == 0.8 and not result["is_anomaly"]


def test_lower_cost_is_a_better_anomaly() -> None:
    values = [0.10, 0.11, 0.09, 0.10, 0.10, 0.11, 0.09, 0.01]
    result = baselines(daily(values, "avg_cost_per_task"), [START + dt.timedelta(days=7)], ["avg_cost_per_task"])
    assert result.iloc[0]["is_anomaly"] and result.iloc[0]["direction"] == "better"


def test_mad_of_zero_falls_back_to_the_mean_absolute_deviation() -> None:
    history = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.9])  # median 1, MAD 0, mean deviation 0.3 / 7
    median, mad, z = robust_z(0.9, history)
    assert (median, mad) == (1.0, 0.0)
    assert z == pytest.approx((0.9 - 1.0) / (1.253314 * 0.3 / 7))
    assert robust_z(0.5, np.full(7, 1.0))[2] is None  # no spread at all: no z, no anomaly
    result = baselines(daily([1.0] * 7 + [0.5]), [START + dt.timedelta(days=7)], ["success_rate"])
    assert not result.iloc[0]["is_anomaly"]


def _baselines_by_frame_lookup(daily: pd.DataFrame, as_of: list[dt.date], metrics: list[str], baseline_days: int,
                               min_baseline_days: int, threshold: float) -> pd.DataFrame:
    """baselines() as it was written with frame lookups per day and metric: the reference."""
    rows = []
    for entity_id, series in daily.groupby("entity_id", sort=True):
        by_day = series.set_index("date")
        for day in as_of:
            if day not in by_day.index:
                continue
            window = by_day[(by_day.index >= day - dt.timedelta(days=baseline_days)) & (by_day.index < day)]
            for metric in metrics:
                observed = by_day.at[day, metric]
                if pd.isna(observed):
                    continue
                history = window[metric].dropna().to_numpy(dtype="float64")
                row = {"entity_type": "provider_task_type", "entity_id": entity_id, "date": day, "metric": metric,
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


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), entities=st.integers(1, 4), days=st.integers(1, 60),
       baseline_days=st.integers(3, 30), min_baseline_days=st.integers(1, 10))
def test_baselines_equal_the_frame_lookup_computation(seed: int, entities: int, days: int, baseline_days: int,
                                                      min_baseline_days: int) -> None:
    """Computed on arrays per entity, the baselines are exactly those of frame lookups per day: days
    missing (gaps), missing values, constant runs (MAD 0) and anomalies included."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(entities):
        present = sorted(rng.choice(days, size=int(rng.integers(1, days + 1)), replace=False).tolist())
        values = {}
        for metric in ("success_rate", "avg_cost_per_task"):
            column = np.where(rng.random(len(present)) < 0.3, 0.8, rng.normal(0.8, 0.05, len(present)))
            column[rng.random(len(present)) < 0.1] = 0.1  # departures
            values[metric] = np.where(rng.random(len(present)) < 0.15, np.nan, column)
        frames.append(pd.DataFrame({"entity_type": "provider_task_type", "entity_id": f"p{k}/t",
                                    "date": [START + dt.timedelta(days=d) for d in present], **values}))
    daily_values = pd.concat(frames, ignore_index=True)
    as_of = [START + dt.timedelta(days=d) for d in range(days)]
    metrics = ["success_rate", "avg_cost_per_task"]
    expected = _baselines_by_frame_lookup(daily_values, as_of, metrics, baseline_days, min_baseline_days, 3.5)
    actual = baselines(daily_values, as_of, metrics, baseline_days=baseline_days,
                       min_baseline_days=min_baseline_days, threshold=3.5)
    pd.testing.assert_frame_equal(actual, expected)
