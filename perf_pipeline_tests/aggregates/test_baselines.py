"""Baselines and anomalies: a planted anomaly is flagged, its neighbours are not, a thin baseline flags nothing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from perf_pipeline.aggregates.baselines import baselines, robust_z

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
