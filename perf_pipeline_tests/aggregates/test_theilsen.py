"""The batched Theil-Sen fits and Mann-Kendall p-values against SciPy, one series at a time.

Property tests: random series (ties, constant series, gaps between days, a single pair), every
figure within 1e-9 of ``scipy.stats.theilslopes`` and ``scipy.stats.kendalltau``; and the trends
of a whole random daily table against the per-series SciPy loop the batched strategy replaced.
"""

from __future__ import annotations

import datetime as dt
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from perf_pipeline.aggregates.theilsen import (
    SAMPLE_STRIDE,
    SELECT_MIN_PAIRS,
    bracket_ranks,
    kendall_p_exact,
    order_statistics,
    selecting_pays,
    theil_sen,
)
from perf_pipeline.aggregates.trends import (
    DECLINING,
    IMPROVING,
    INSUFFICIENT,
    POLARITY,
    STABLE,
    TREND_COLUMNS,
    TheilSenTrendStrategy,
)

TOLERANCE = {"rtol": 1e-9, "atol": 1e-12, "equal_nan": True}


def scipy_fit(days: np.ndarray, values: np.ndarray) -> tuple[float, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # kendalltau of a constant series: NaN
        slope, intercept, low, high = stats.theilslopes(values, days, alpha=0.95)
        p = stats.kendalltau(days, values).pvalue
    return slope, intercept, low, high, p


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Several series of one length: distinct increasing days with gaps, values with ties, constant rows."""
    n = draw(st.integers(min_value=2, max_value=95))
    rows = draw(st.integers(min_value=1, max_value=6))
    days = np.array([np.sort(draw(hnp.arrays(np.int64, n, elements=st.integers(739_000, 739_400), unique=True)))
                     for _ in range(rows)], dtype="float64")
    kind = draw(st.sampled_from(["continuous", "few_levels", "constant", "mixed"]))
    if kind == "continuous":
        values = draw(hnp.arrays(np.float64, (rows, n), elements=st.floats(-1e3, 1e3, allow_nan=False)))
    elif kind == "few_levels":  # a daily success rate: many ties
        values = draw(hnp.arrays(np.int64, (rows, n), elements=st.integers(0, 4))) / 4
    elif kind == "constant":
        values = np.full((rows, n), draw(st.floats(-10, 10, allow_nan=False)))
    else:
        values = draw(hnp.arrays(np.float64, (rows, n), elements=st.sampled_from([0.0, 0.5, 1.0, 0.123, 7.25])))
    return days, values


@settings(max_examples=300, deadline=None)
@given(batches())
def test_every_figure_is_scipys(batch: tuple[np.ndarray, np.ndarray]) -> None:
    days, values = batch
    fitted = theil_sen(days, values)
    got = np.column_stack([fitted.slope, fitted.intercept, fitted.low, fitted.high, fitted.mann_kendall_p])
    expected = np.array([scipy_fit(days[i], values[i]) for i in range(len(values))])
    np.testing.assert_allclose(got, expected, **TOLERANCE)


def test_differences_too_small_for_a_slope_still_order_the_pairs() -> None:
    """A difference of the smallest subnormal over a gap of days rounds to a slope of 0, yet SciPy's
    Kendall test counts the pair as ordered: so must the p-value (a case Hypothesis found)."""
    days = np.array([[0.0, 2.0, 5.0, 7.0, 11.0, 12.0, 20.0]]) + 739_000
    values = np.full((1, 7), -5e-324)
    values[0, 3] = 0.0
    fitted = theil_sen(days, values)
    got = np.column_stack([fitted.slope, fitted.intercept, fitted.low, fitted.high, fitted.mann_kendall_p])
    np.testing.assert_allclose(got, [scipy_fit(days[0], values[0])], **TOLERANCE)


def test_long_series_use_the_normal_approximation_and_short_ones_the_exact_distribution() -> None:
    rng = np.random.default_rng(3)
    for n in (5, 33, 34, 90):
        days = np.tile(np.arange(739_000, 739_000 + n, dtype="float64"), (40, 1))
        values = rng.normal(size=(40, n))
        values[0] = np.arange(n)  # perfectly increasing: the exact tail, or min(dis, tot - dis) <= 1
        got = theil_sen(days, values).mann_kendall_p
        np.testing.assert_allclose(got, [scipy_fit(days[i], values[i])[4] for i in range(40)], **TOLERANCE)
    assert kendall_p_exact(4, 3) == 1.0  # 4c == n(n-1): the middle of the distribution


def test_batches_larger_than_one_chunk_give_the_same_figures(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    days = np.tile(np.arange(30, dtype="float64"), (50, 1))
    values = rng.integers(0, 5, size=(50, 30)) / 4
    whole = theil_sen(days, values)
    monkeypatch.setattr("perf_pipeline.aggregates.theilsen.MAX_PAIR_ELEMENTS", 1000)  # 2 series per chunk
    chunked = theil_sen(days, values)
    for name in ("slope", "intercept", "low", "high", "mann_kendall_p"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))


@pytest.mark.parametrize("n", [48, 90])
def test_fits_are_the_same_whether_slopes_are_selected_or_sorted(monkeypatch, n: int) -> None:
    """``selecting_pays`` only chooses how the order statistics are found (it times both ways on the
    machine): the fits, to the last bit, and the sign of a zero slope, are the same either way."""
    assert isinstance(selecting_pays(), bool)
    rng = np.random.default_rng(n)
    days = np.sort(rng.choice(np.arange(739_000, 739_200), size=(60, n)), axis=1).astype("float64")
    days = np.maximum.accumulate(days + np.arange(n), axis=1)  # strictly increasing, with gaps
    values = np.concatenate([rng.normal(size=(20, n)), rng.integers(0, 4, (20, n)) / 4,
                             np.cumsum(rng.normal(size=(19, n)), axis=1), np.zeros((1, n))])
    fits = {}
    for choice in (True, False):
        monkeypatch.setattr("perf_pipeline.aggregates.theilsen.selecting_pays", lambda choice=choice: choice)
        fits[choice] = theil_sen(days, values)
    for name in FIGURES:
        selected, sorted_ = getattr(fits[True], name), getattr(fits[False], name)
        np.testing.assert_array_equal(selected, sorted_)
        np.testing.assert_array_equal(np.signbit(selected), np.signbit(sorted_))


@pytest.mark.parametrize("pairs", [300, SELECT_MIN_PAIRS, 4005])
def test_order_statistics_are_those_of_the_sorted_rows(pairs: int) -> None:
    """The values of the ranks asked are the sorted rows', to the sign of a zero, whatever the rows:
    continuous values, a few levels (ties), a constant row, tiny values, NaN and infinities, zeros of
    both signs; ranks in the middle, as a fit's (a sample's bracket holds them), near either end (it
    cannot) and differing by row; rows short enough to be sorted whole, and long ones."""
    rng = np.random.default_rng(pairs)
    with_gaps = rng.normal(size=pairs)
    with_gaps[rng.choice(pairs, pairs // 20, replace=False)] = np.nan
    with_gaps[:3] = [np.inf, -np.inf, np.inf]
    signed_zeros = rng.normal(size=pairs)
    signed_zeros[rng.choice(pairs, pairs // 6, replace=False)] = rng.choice([0.0, -0.0], pairs // 6)
    rows = np.array([rng.normal(size=pairs), rng.integers(0, 5, pairs) / 4, np.full(pairs, 0.25),
                     rng.normal(size=pairs) * 1e-310, with_gaps, np.cumsum(rng.normal(size=pairs)), signed_zeros])
    central = [int(pairs * 0.43), (pairs - 1) // 2, pairs // 2, int(pairs * 0.57)]
    ends = [0, 1, pairs - 2, pairs - 1]
    for ranks in (np.tile(central, (len(rows), 1)), np.tile(ends, (len(rows), 1)),
                  np.array([central, ends] * (len(rows) // 2) + [central])):
        expected = np.sort(rows, axis=1)[np.arange(len(rows))[:, None], ranks]
        selected = order_statistics(rows.copy(), ranks)
        np.testing.assert_array_equal(selected, expected)
        np.testing.assert_array_equal(np.signbit(selected), np.signbit(expected))


@pytest.mark.parametrize("miss", ["first", "last", "neither"])
def test_a_bracket_missing_a_rank_by_one_is_not_used(miss: str) -> None:
    """Rows whose sample puts a bound of the bracket one rank inside the ranks asked (the value of
    rank first + 1 as the lower bound, or of rank last - 1 as the upper), or exactly on them: the
    values are still the sorted rows'."""
    pairs, first, last = 4005, 1720, 2284
    positions = np.arange(0, pairs, SAMPLE_STRIDE)
    lo_at, hi_at = (int(k[0]) for k in bracket_ranks(np.array([first]), np.array([last]), len(positions), pairs))
    low, high = {"first": (first + 1, last + 40), "last": (first - 40, last - 1), "neither": (first, last)}[miss]
    rng = np.random.default_rng(5)
    # Values are their ranks; the sample's sorted values have ``low`` at lo_at and ``high`` at hi_at.
    sample = np.concatenate([rng.choice(low, lo_at, replace=False), [low],
                             low + 1 + rng.choice(high - low - 1, hi_at - lo_at - 1, replace=False), [high],
                             high + 1 + rng.choice(pairs - high - 1, len(positions) - hi_at - 1, replace=False)])
    row = np.empty(pairs)
    row[positions] = rng.permutation(sample)
    row[np.setdiff1d(np.arange(pairs), positions)] = rng.permutation(np.setdiff1d(np.arange(pairs), sample))
    ranks = np.array([[first, (pairs - 1) // 2, pairs // 2, last]])
    np.testing.assert_array_equal(order_statistics(row[None, :].copy(), ranks), ranks.astype(float))


FIGURES = ("slope", "intercept", "low", "high", "mann_kendall_p")


@pytest.fixture
def splitting(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """theilsen with every batch split, as on 3 CPUs (parts of unequal sizes), recording the thread
    that fits each part; its threads stopped after."""
    from perf_pipeline.aggregates import theilsen

    monkeypatch.setattr(theilsen, "PARALLEL_MIN_PAIRS", 1)
    monkeypatch.setattr(theilsen.settings, "usable_cpus", lambda: 3)
    monkeypatch.setattr(theilsen, "_threads", None)
    fitted_by: list[tuple[str, int]] = []
    fit = theilsen._theil_sen

    def recorded(x: np.ndarray, y: np.ndarray, alpha: float) -> theilsen.TheilSenBatch:
        fitted_by.append((threading.current_thread().name, len(y)))
        return fit(x, y, alpha)

    monkeypatch.setattr(theilsen, "_theil_sen", recorded)
    theilsen.fitted_by = fitted_by
    yield theilsen
    if theilsen._threads is not None:
        theilsen._threads.shutdown()
    del theilsen.fitted_by


def test_a_batch_split_between_threads_gives_the_same_figures(splitting: ModuleType) -> None:
    rng = np.random.default_rng(6)
    days = np.sort(rng.choice(90, size=(41, 25), replace=True), axis=1).astype("float64")
    days += np.arange(25)  # strictly increasing, with gaps
    values = np.where(rng.random((41, 25)) < 0.3, 0.5, rng.random((41, 25)))  # ties
    values[3] = 0.25  # a constant series
    split = theil_sen(days, values)
    parts = list(splitting.fitted_by)
    alone = splitting._theil_sen(days, values, 0.95)
    # Three parts of 13 or 14 series, two of them fitted by the pool's threads.
    assert sorted(size for _, size in parts) == [13, 14, 14]
    assert sum(name.startswith("theil-sen") for name, _ in parts) == 2
    for name in FIGURES:
        np.testing.assert_array_equal(getattr(split, name), getattr(alone, name))


def test_a_part_that_fails_in_a_thread_fails_the_batch(splitting: ModuleType,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fit = splitting._theil_sen

    def failing(x: np.ndarray, y: np.ndarray, alpha: float) -> object:
        if threading.current_thread().name.startswith("theil-sen"):
            raise MemoryError("a part's slopes")
        return fit(x, y, alpha)

    monkeypatch.setattr(splitting, "_theil_sen", failing)
    days = np.tile(np.arange(12, dtype="float64"), (9, 1))
    with pytest.raises(MemoryError, match="a part's slopes"):
        theil_sen(days, np.random.default_rng(9).random((9, 12)))


def test_a_batch_below_the_threshold_is_fitted_in_one_part(splitting: ModuleType,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splitting, "PARALLEL_MIN_PAIRS", 9 * 66 + 1)  # 9 series of 12 points: 594 slopes
    days = np.tile(np.arange(12, dtype="float64"), (9, 1))
    theil_sen(days, np.random.default_rng(8).random((9, 12)))
    assert splitting.fitted_by == [(threading.current_thread().name, 9)]


def reference_trends(daily: pd.DataFrame, as_of: list[dt.date], windows: list[int], metrics: list[str],
                     min_points: int, min_relative_change: float) -> pd.DataFrame:
    """The per-series loop through SciPy that TheilSenTrendStrategy replaced, as it was."""
    rows = []
    daily = daily.assign(day_number=[d.toordinal() for d in daily["date"]]).sort_values("day_number")
    for (entity_type, entity_id), series in daily.groupby(["entity_type", "entity_id"], sort=True):
        day_numbers = series["day_number"].to_numpy(dtype="float64")
        for day in as_of:
            for window in windows:
                lo, hi = np.searchsorted(day_numbers, [day.toordinal() - window, day.toordinal()], side="right")
                if lo == hi:
                    continue
                for metric in metrics:
                    values = series[metric].to_numpy(dtype="float64")[lo:hi]
                    known = ~np.isnan(values)
                    x, y = day_numbers[lo:hi][known], values[known]
                    row = {"entity_type": entity_type, "entity_id": entity_id, "as_of_date": day,
                           "window_days": window, "metric": metric, "n_points": len(y), "slope_per_day": None,
                           "slope_low": None, "slope_high": None, "intercept": None, "relative_change": None,
                           "mann_kendall_p": None, "direction": INSUFFICIENT}
                    if len(y) >= min_points:
                        slope, intercept, low, high, p = scipy_fit(x, y)
                        level = float(np.median(np.abs(y)))
                        relative = slope * float(x.max() - x.min()) / level if level > 0 else None
                        large = relative is not None and abs(relative) >= min_relative_change
                        direction = STABLE
                        if (low > 0 or high < 0) and large:
                            direction = IMPROVING if np.sign(slope) == POLARITY[metric] else DECLINING
                        row.update(slope_per_day=slope, slope_low=low, slope_high=high, intercept=intercept,
                                   relative_change=relative, mann_kendall_p=None if np.isnan(p) else p,
                                   direction=direction)
                    rows.append(row)
    return pd.DataFrame(rows, columns=TREND_COLUMNS)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_trends_of_a_daily_table_are_the_per_series_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    first = dt.date(2026, 1, 1)
    rows = []
    for entity_type, entity_id in [("agent", "a-1"), ("agent", "a-2"), ("provider", "openai"), ("model", "m/x")]:
        present = rng.random(120) < rng.uniform(0.2, 1.0)  # gaps between days
        for k in np.flatnonzero(present):
            rows.append({"entity_type": entity_type, "entity_id": entity_id, "date": first + dt.timedelta(days=int(k)),
                         "success_rate": rng.integers(0, 5) / 4,
                         "avg_cost_per_task": np.nan if rng.random() < 0.2 else rng.gamma(2.0, 0.01),
                         "avg_quality_score": 0.8})
    daily = pd.DataFrame(rows).sample(frac=1.0, random_state=seed % 1000)  # any order in
    as_of = [first + dt.timedelta(days=int(k)) for k in sorted(rng.choice(130, size=6, replace=False))]
    metrics = ["success_rate", "avg_cost_per_task", "avg_quality_score"]
    got = TheilSenTrendStrategy((7, 30, 90), metrics, 5, 0.05).compute(daily, as_of)
    expected = reference_trends(daily, as_of, [7, 30, 90], metrics, 5, 0.05)
    assert len(got) == len(expected)
    text = ["entity_type", "entity_id", "as_of_date", "metric", "direction"]
    assert got[text].equals(expected[text])
    counts = ["window_days", "n_points"]
    assert got[counts].to_numpy().tolist() == expected[counts].to_numpy().tolist()
    numbers = [c for c in TREND_COLUMNS if c not in text and c not in ("window_days", "n_points")]
    np.testing.assert_allclose(got[numbers].to_numpy(dtype="float64"),
                               expected[numbers].to_numpy(dtype="float64"), **TOLERANCE)
