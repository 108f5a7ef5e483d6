"""Windows computed in one pass over the rollups (rolling.py) against the per-day group-bys they
replaced, kept here as they were: on random tasks with gaps, unknown values, empty histograms and
entities that come and go, every figure must be identical (floats included: both are exact sums)."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.aggregates import latency
from perf_pipeline.aggregates.rankings import (
    RANKED,
    RANKING_COLUMNS,
    competition_ranks,
    main_departments,
    most_improved,
    provider_rankings,
    utility,
)
from perf_pipeline.aggregates.rolling import Groups, exact_range_sums, fsum_ranges, range_sums, windows
from perf_pipeline.aggregates.rollups import (
    AVERAGED,
    COUNTS,
    DIMENSIONS,
    ENTITY_TYPES,
    ROLLUP_COLUMNS,
    WINDOWED_ENTITY_TYPES,
    daily_rollups,
    exact_sums,
    task_facts,
)
from perf_pipeline.aggregates.summaries import (
    NODE_COLUMNS,
    NODE_ROLLUP_COLUMNS,
    PROJECT_AGENT_COLUMNS,
    PROJECT_COLUMNS,
    PROJECT_SUMS,
    _feedback,
    node_performance,
    node_rollups,
    project_summaries,
)
from perf_pipeline.aggregates.trends import TheilSenTrendStrategy, daily_metric_values
from perf_pipeline.aggregates.windows import (
    INSUFFICIENT,
    KEYS,
    OK,
    RATIOS,
    SUMMED,
    VALUE_COUNTS,
    WINDOW_COLUMNS,
    RollingWindowStrategy,
    in_window,
    latency_figures,
    metrics_from_sums,
    window_metrics,
    with_status,
)
from perf_pipeline_tests.aggregates.test_windows import scored_task

FIRST = dt.date(2026, 1, 1)


def old_exact_sums(grouped, columns: list[str]) -> pd.DataFrame:
    """Group sums through pandas, float columns with math.fsum (what exact_sums was)."""
    frame = grouped.obj
    return grouped.agg({c: (math.fsum if pd.api.types.is_float_dtype(frame[c]) else "sum") for c in columns})


def old_metrics_from_sums(sums: pd.DataFrame, histograms: list) -> pd.DataFrame:
    out = pd.DataFrame(index=sums.index)
    for column in ("n_tasks", "tasks_completed", "tasks_failed"):
        out[column] = sums[column].astype(np.int64)
    for name, (numerator, denominator) in RATIOS.items():
        out[name] = (sums[numerator] / sums[denominator].where(sums[denominator] > 0)).astype("float64")
    out["total_cost_usd"] = sums["sum_cost_usd"].where(sums["n_cost_usd"] > 0).astype("float64")
    out["innovation_count"] = sums["innovations"].astype(np.int64)
    for name, source in VALUE_COUNTS.items():
        out[name] = sums[source].astype(np.int64)
    out["n_response_times"] = np.array([sum(int(v) for v in (h or {}).values()) for h in histograms], dtype=np.int64)
    p50_p95 = [latency.percentiles(h, (50, 95)) for h in histograms]
    out["p50_response_time_ms"] = pd.array([p50 for p50, _ in p50_p95], dtype="Float64").astype("float64")
    out["p95_response_time_ms"] = pd.array([p95 for _, p95 in p50_p95], dtype="Float64").astype("float64")
    return out


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_metrics_from_sums_equal_the_former_series_computation(rows: int, seed: int) -> None:
    """metrics_from_sums builds arrays and makes one frame; it equals, value for value and dtype for
    dtype, the former column-by-column Series computation (zero and missing denominators give no value)."""
    rng = np.random.default_rng(seed)
    sums = pd.DataFrame(index=pd.RangeIndex(3, 3 + rows))
    for column in SUMMED:
        if column.startswith("sum_"):
            sums[column] = np.where(rng.random(rows) < 0.2, np.nan, rng.normal(10, 5, rows))
        else:
            sums[column] = rng.integers(0, 3, rows)  # zeros are frequent: no value for that ratio
    histograms = latency.histograms(np.repeat(np.arange(rows), 4), rng.integers(-1, 40, 4 * rows), rows)
    each = np.arange(rows)
    response_times = latency_figures(pd.DataFrame({"response_time_histogram": histograms}), each, each + 1)
    pd.testing.assert_frame_equal(metrics_from_sums(sums, response_times), old_metrics_from_sums(sums, histograms))


def old_window_metrics(rollups: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = rollups.groupby(list(keys), sort=True)
    return old_metrics_from_sums(old_exact_sums(grouped, SUMMED),
                                 grouped["response_time_histogram"].agg(latency.merge).tolist())


def old_windows(rollups: pd.DataFrame, as_of: list[dt.date], windows_: list[int], min_points: int) -> pd.DataFrame:
    frames = []
    for day in as_of:
        entities = rollups.loc[in_window(rollups["date"], day, windows_[-1]), KEYS].drop_duplicates()
        entities = pd.MultiIndex.from_frame(entities.sort_values(KEYS))
        for window in windows_:
            metrics = old_window_metrics(rollups[in_window(rollups["date"], day, window)], KEYS).reindex(entities)
            metrics = metrics.fillna({c: 0 for c in ["n_tasks", "tasks_completed", "tasks_failed",
                                                     "innovation_count", *VALUE_COUNTS, "n_response_times"]})
            metrics.insert(0, "window_days", window)
            metrics.insert(0, "as_of_date", day)
            frames.append(metrics.reset_index())
    return with_status(pd.concat(frames, ignore_index=True), min_points)[WINDOW_COLUMNS]


def old_node_performance(rollups: pd.DataFrame, as_of: list[dt.date], windows_: list[int],
                         min_points: int) -> pd.DataFrame:
    frames = []
    for day in as_of:
        for window in windows_:
            part = rollups[in_window(rollups["date"], day, window)]
            if part.empty:
                continue
            sums = old_exact_sums(part.groupby(["agent_id", "node"], sort=True), NODE_ROLLUP_COLUMNS[3:])
            out = sums[["n_steps", "n_status_known", "n_duration", "n_tokens"]].astype(np.int64)
            enough = out["n_steps"] >= min_points
            out["failure_rate"] = sums["n_failed"] / sums["n_status_known"].where(sums["n_status_known"] > 0)
            out["avg_duration_s"] = sums["sum_duration_s"] / sums["n_duration"].where(sums["n_duration"] > 0)
            out["avg_tokens"] = sums["sum_tokens"] / sums["n_tokens"].where(sums["n_tokens"] > 0)
            out[["failure_rate", "avg_duration_s", "avg_tokens"]] = out[
                ["failure_rate", "avg_duration_s", "avg_tokens"]].where(enough, axis=0)
            out["status"] = np.where(enough, OK, INSUFFICIENT)
            frames.append(out.reset_index().assign(as_of_date=day, window_days=window))
    return pd.concat(frames, ignore_index=True)[NODE_COLUMNS] if frames else pd.DataFrame(columns=NODE_COLUMNS)


def random_tasks(rng: np.random.Generator, days: int = 70) -> pd.DataFrame:
    rows = []
    for k in range(days):
        day = FIRST + dt.timedelta(days=k)
        for _ in range(int(rng.integers(0, 12))):
            unknown = rng.random(6) < 0.15
            rows.append(scored_task(
                day, agent=f"a{rng.integers(0, 6)}", provider=str(rng.choice(["openai", "anthropic"])),
                model=str(rng.choice(["m1", "m/2"])), task_type=str(rng.choice(["bug_fix", "research"])),
                prompt_version=None if unknown[0] else str(rng.choice(["v1", "v2"])),
                status=str(rng.choice(["success", "failed", "timeout"])),
                quality_score=None if unknown[1] else float(rng.random()),
                overall_score=float(rng.random()), cost_usd=None if unknown[2] else float(rng.gamma(2, 0.013)),
                completion_time_s=float(rng.gamma(3, 40)),
                total_tokens=None if unknown[3] else int(rng.integers(0, 9000)),
                response_time_ms=None if unknown[4] else float(rng.lognormal(7, 1.2)),
                feedback_type=None if unknown[5] else str(rng.choice(["correction", "approval", "innovation"]))))
    return pd.DataFrame(rows)


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for column in got.columns:
        left, right = got[column].to_numpy(), expected[column].to_numpy()
        if left.dtype.kind == "f" or right.dtype.kind == "f":
            np.testing.assert_array_equal(left.astype("float64"), right.astype("float64"), err_msg=column)
        else:
            assert [None if pd.isna(v) else v for v in left] == [None if pd.isna(v) else v for v in right], column


def old_entity_ids(tasks: pd.DataFrame, entity_type: str) -> pd.Series:
    parts = [tasks[c].astype(object).where(tasks[c].notna()) for c in ENTITY_TYPES[entity_type]]
    ids = parts[0].astype(str).where(parts[0].notna())
    for part in parts[1:]:
        ids = (ids + "/" + part.astype(str)).where(ids.notna() & part.notna())
    return ids


def old_daily_rollups(tasks: pd.DataFrame, collaboration: pd.DataFrame,
                      entity_types: Sequence[str] = tuple(ENTITY_TYPES)) -> pd.DataFrame:
    """The rollups as they were computed: each entity type grouped on its own, named aggregations,
    a histogram counted per group."""
    tasks = tasks.assign(department=tasks["department"].fillna("unassigned"),
                         project_id=tasks["project_id"].fillna("unassigned"))
    facts = task_facts(tasks)
    numeric = [c for c in facts.columns if c != "latency_bin"]
    frames = []
    for entity_type in entity_types:
        columns = ENTITY_TYPES[entity_type]
        ids = old_entity_ids(tasks, entity_type)
        keep = ids.notna()
        keys = [ids[keep].rename("entity_id"), tasks.loc[keep, "partition_date"].rename("date")]
        grouped = facts[keep].groupby(keys, sort=True)
        described = tasks.loc[keep].groupby(keys, sort=True).agg(
            **{column: (column, "first") for column in columns},
            first_task_at=("assigned_at", "min"), last_task_at=("completed_at", "max"))
        bins = grouped["latency_bin"].agg(lambda b: {str(k): int(n) for k, n in sorted(Counter(b[b >= 0]).items())})
        frame = pd.concat([old_exact_sums(grouped, numeric), described], axis=1).assign(
            response_time_histogram=bins.tolist()).reset_index()
        frame.insert(0, "entity_type", entity_type)
        frames.append(frame)
    rollups = pd.concat(frames, ignore_index=True)
    for column in DIMENSIONS:
        if column not in rollups:
            rollups[column] = None
        rollups[column] = rollups[column].astype(object).where(rollups[column].notna(), None)
    scores = {} if collaboration.empty else collaboration.set_index(["agent_id", "date"])["collaboration_score"]
    agents = rollups["entity_type"] == "agent"
    values = pd.Series([scores.get(key) for key in zip(rollups["entity_id"], rollups["date"], strict=True)],
                       index=rollups.index, dtype="float64")
    rollups["sum_collaboration_score"] = values.where(agents).fillna(0.0)
    rollups["n_collaboration_score"] = (values.notna() & agents).astype(int)
    int_columns = [*COUNTS, *[f"n_{m}" for m in AVERAGED]]
    rollups[int_columns] = rollups[int_columns].astype(np.int64)
    return rollups[ROLLUP_COLUMNS]


@pytest.mark.parametrize("seed", range(8))
def test_rollups_are_the_per_entity_type_group_bys(seed: int) -> None:
    """``daily_rollups`` (every entity type grouped at once) equals the rollups of each entity type
    grouped on its own, value for value and dtype for dtype: missing dimensions, departments and
    projects, timestamps, responses, an entity type without a row, ids holding "/", days apart."""
    rng = np.random.default_rng(seed)
    tasks = random_tasks(rng, days=6)
    tasks["assigned_at"] = tasks["assigned_at"].where(rng.random(len(tasks)) > 0.2)
    tasks["completed_at"] = tasks["completed_at"].where(rng.random(len(tasks)) > 0.2) + pd.to_timedelta(
        rng.integers(0, 3600, len(tasks)), unit="s")
    tasks["model"] = tasks["model"].where(rng.random(len(tasks)) > 0.1)
    tasks["department"] = tasks["department"].where(rng.random(len(tasks)) > 0.1)
    tasks["project_id"] = np.where(rng.random(len(tasks)) > 0.2, tasks["project_id"], None)
    if seed % 2:
        tasks["prompt_version"] = None  # an entity type without a row
    if seed % 4 == 2:  # text columns of another kind than pandas' default strings
        tasks["agent_id"] = tasks["agent_id"].astype("string[python]")
        tasks["task_type"] = tasks["task_type"].astype(object)
    tasks = tasks.sample(frac=1.0, random_state=seed).set_index(rng.permutation(len(tasks)) * 3)
    agents = tasks[["agent_id", "partition_date"]].drop_duplicates()
    collaboration = pd.DataFrame({"agent_id": agents["agent_id"].to_numpy(),
                                  "date": agents["partition_date"].to_numpy(),
                                  "collaboration_score": np.where(rng.random(len(agents)) < 0.3, np.nan,
                                                                  rng.random(len(agents)))})
    for scores in (collaboration, collaboration.iloc[:0]):
        pd.testing.assert_frame_equal(daily_rollups(tasks, scores), old_daily_rollups(tasks, scores),
                                      check_exact=True)
    some = ["prompt_version", "model_task_type", "agent"]  # a subset, in another order
    pd.testing.assert_frame_equal(daily_rollups(tasks, collaboration, some),
                                  old_daily_rollups(tasks, collaboration, some), check_exact=True)


def test_rollups_of_tasks_without_timestamps_or_entities_keep_their_types() -> None:
    """Timestamps all missing keep their time zone; no entity of the types asked for gives no row,
    with the columns' types of the per-entity-type group-bys."""
    tasks = random_tasks(np.random.default_rng(3), days=3)
    for column in ("assigned_at", "completed_at"):
        tasks[column] = pd.to_datetime(pd.Series([None] * len(tasks), dtype=object), utc=True, format="mixed")
    pd.testing.assert_frame_equal(daily_rollups(tasks, pd.DataFrame()), old_daily_rollups(tasks, pd.DataFrame()),
                                  check_exact=True)
    tasks["prompt_version"] = None
    got = daily_rollups(tasks, pd.DataFrame(), ["prompt_version"])
    assert got.empty
    pd.testing.assert_frame_equal(got, old_daily_rollups(tasks, pd.DataFrame(), ["prompt_version"]), check_exact=True)


@pytest.mark.parametrize("seed", range(12))
def test_windows_are_the_per_day_group_bys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rollups = daily_rollups(random_tasks(rng), pd.DataFrame())
    rollups = rollups[rollups["entity_type"].isin(WINDOWED_ENTITY_TYPES)]
    as_of = [FIRST + dt.timedelta(days=int(k)) for k in sorted(rng.choice(110, size=8, replace=False))]
    min_points = int(rng.integers(1, 8))
    got = RollingWindowStrategy((7, 30, 90), min_points).compute(rollups.sample(frac=1.0, random_state=1), as_of)
    assert_same(got, old_windows(rollups, as_of, [7, 30, 90], min_points))
    daily = daily_metric_values(rollups)
    expected_daily = old_metrics_from_sums(rollups.reset_index(drop=True),
                                           rollups["response_time_histogram"].tolist())
    shared = [c for c in daily.columns if c in expected_daily.columns]
    assert_same(daily[shared].reset_index(drop=True), expected_daily[shared])
    for keys in (["entity_id"], ["entity_type", "entity_id"]):
        assert_same(window_metrics(rollups, keys).reset_index(), old_window_metrics(rollups, keys).reset_index())


@pytest.mark.parametrize("seed", range(12))
def test_node_performance_is_the_per_day_group_bys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    steps = pd.DataFrame([{"agent_id": f"a{rng.integers(0, 4)}", "node": str(rng.choice(["plan", "act", "verify"])),
                           "partition_date": FIRST + dt.timedelta(days=int(rng.integers(0, 60))),
                           "status": None if rng.random() < 0.1 else str(rng.choice(["success", "failed"])),
                           "duration_s": None if rng.random() < 0.1 else float(rng.gamma(2, 1.7)),
                           "tokens": None if rng.random() < 0.1 else int(rng.integers(0, 3000))}
                          for _ in range(400)])
    rollups = node_rollups(steps)
    as_of = [FIRST + dt.timedelta(days=int(k)) for k in sorted(rng.choice(100, size=6, replace=False))]
    assert_same(node_performance(rollups, as_of, [7, 30, 90], 5), old_node_performance(rollups, as_of, [7, 30, 90], 5))


def test_range_sums_are_fsums_and_whole_numbers_stay_exact() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"group": np.repeat(["a", "b"], 50), "date": [FIRST + dt.timedelta(days=k % 50)
                                                                      for k in range(100)],
                          "small": rng.random(100) * 1e-3, "mixed": rng.choice([1e16, 1.0, -1e16, 1e-8], 100),
                          "whole": rng.integers(0, 10**6, 100).astype("float64"), "count": rng.integers(0, 9, 100)})
    groups = Groups.of(frame, ["group"])
    found = windows(groups, [FIRST + dt.timedelta(days=k) for k in (10, 49, 70)], [7, 30])
    sums = range_sums(groups.rows, ["small", "mixed", "whole", "count"], found.lo, found.hi)
    for i, (lo, hi) in enumerate(zip(found.lo, found.hi, strict=True)):
        part = groups.rows.iloc[lo:hi]
        assert sums["small"][i] == math.fsum(part["small"]) and sums["mixed"][i] == math.fsum(part["mixed"])
        assert sums["whole"][i] == math.fsum(part["whole"]) and sums["count"][i] == part["count"].sum()
    assert sums["count"].dtype == np.int64


def assert_fsums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """exact_range_sums of the ranges, checked to be math.fsum's, bit for bit (sign of zero included)."""
    got = exact_range_sums(values, lo, hi)
    if got is not None:
        expected = [math.fsum(values[i:j].tolist()) for i, j in zip(lo, hi, strict=True)]
        assert [x.hex() for x in got.tolist()] == [x.hex() for x in expected]
    return got


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False, min_value=-1e30,
                                 max_value=1e30), min_size=1, max_size=60),
       bounds=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=20))
def test_exact_range_sums_are_fsums(values: list[float], bounds: list[tuple[int, int]]) -> None:
    array = np.array(values)
    lo = np.array([min(a, b, len(values)) for a, b in bounds])
    hi = np.array([min(max(a, b), len(values)) for a, b in bounds])
    if assert_fsums(array, lo, hi) is None:  # left to math.fsum only for what the fast path does not take
        present = array[array != 0]
        exponents = np.frexp(present)[1]
        assert (np.signbit(array[array == 0]).any() or np.abs(present).min() < 2.0 ** -900
                or 53 + int(exponents.max()) - int(exponents.min()) > 360)


@settings(max_examples=200, deadline=None)
@given(mantissas=st.lists(st.integers(-2**53 + 1, 2**53 - 1), min_size=1, max_size=40),
       exponents=st.lists(st.integers(-120, 60), min_size=40, max_size=40), seed=st.integers(0, 2**32 - 1))
def test_exact_range_sums_round_ties_and_cancellations_as_fsum(mantissas: list[int], exponents: list[int],
                                                              seed: int) -> None:
    """Values of full 53-bit mantissas over a spread of exponents: sums that land on ties between two
    doubles, cancel to zero or to a few bits, all taking the fast path (within MAX_LIMBS)."""
    values = np.ldexp(np.array(mantissas, dtype=np.float64), np.array(exponents[:len(mantissas)]))
    rng = np.random.default_rng(seed)
    values = np.concatenate([values, (0.0 - values[rng.permutation(len(values))])[: len(values) // 2]])  # no -0.0
    lo = rng.integers(0, len(values), 30)
    hi = np.minimum(len(values), lo + rng.integers(0, len(values) + 1, 30))
    assert assert_fsums(values, np.r_[lo, 0], np.r_[hi, len(values)]) is not None


def test_exact_range_sums_round_to_nearest_ties_to_even() -> None:
    big = 2.0 ** 53
    cases = [[big, 1.0], [big + 2, 1.0], [big, 1.0, 2.0 ** -40], [big, -1.0, -2.0 ** -40], [1e16, 1.0, -1e16, -1.0],
             [0.1] * 10, [-0.1, -0.2, -0.3], [2.0 ** 60, -(2.0 ** 60), 2.0 ** -60], [0.0, 0.0], [3.0, -3.0]]
    for values in cases:
        array = np.array(values)
        assert assert_fsums(array, np.array([0, 0, 1]), np.array([len(values), 0, len(values)])) is not None
    assert exact_range_sums(np.array([big, 1.0]), np.array([0]), np.array([2]))[0] == big  # tie: to even
    assert exact_range_sums(np.array([big + 2, 1.0]), np.array([0]), np.array([2]))[0] == big + 4
    assert exact_range_sums(np.array([big, 1.0, 2.0 ** -40]), np.array([0]), np.array([3]))[0] == big + 2


def test_exact_range_sums_leave_to_fsum_what_they_do_not_take() -> None:
    """Non-finite values, negative zeros, subnormal or huge magnitudes and exponents spread over more
    than MAX_LIMBS limbs go to math.fsum, whose results range_sums then gives."""
    everything = np.array([0, 0]), np.array([2, 1])
    for values in ([1.0, np.nan], [1.0, np.inf], [1.0, -0.0], [5e-324, 1.0], [1e300, 1.0], [1e-100, 1e100]):
        assert exact_range_sums(np.array(values), *everything) is None
    frame = pd.DataFrame({"v": [1.0, -0.0, 2.5]})
    assert range_sums(frame, ["v"], np.array([0, 1]), np.array([3, 2]))["v"].tolist() == [3.5, math.fsum([-0.0])]
    assert exact_range_sums(np.zeros(3), np.array([0, 1]), np.array([3, 1])).tolist() == [0.0, 0.0]
    # The bounds: magnitudes of 2 ** +-900 are taken, beyond them not; 12 limbs are taken, 13 not.
    assert assert_fsums(np.array([2.0 ** 900, -(2.0 ** 899), 3.0 * 2.0 ** 898]), *everything) is not None
    assert assert_fsums(np.array([2.0 ** -900, 2.0 ** -899, -(2.0 ** -898)]), *everything) is not None
    assert exact_range_sums(np.array([2.0 ** 901, 1.0]), *everything) is None
    assert exact_range_sums(np.array([2.0 ** -901, 1.0]), *everything) is None
    twelve = np.array([1.0 + 2.0 ** -52, 2.0 ** 307])  # 53 + 307 = 360 bits
    assert assert_fsums(twelve, *everything) is not None
    assert exact_range_sums(np.array([1.0 + 2.0 ** -52, 2.0 ** 308]), *everything) is None
    assert exact_range_sums(np.ones(3), np.array([], dtype=np.int64), np.array([], dtype=np.int64)).size == 0


def test_exact_range_sums_take_a_fleet_s_rollup_sums() -> None:
    """Sums of the kind rollups hold (scores, costs, seconds) take the fast path and equal fsum's."""
    rng = np.random.default_rng(11)
    n = 5_000
    lo = rng.integers(0, n, 2_000)
    hi = np.minimum(n, lo + rng.integers(0, 90, 2_000))
    for values in (rng.random(n) * 40, rng.lognormal(5, 1, n) * 30, rng.integers(0, 20_000, n) * 2e-6,
                   np.where(rng.random(n) < 0.3, 0.0, rng.random(n))):
        assert assert_fsums(values, lo, hi) is not None
        assert fsum_ranges(values, lo, hi).tolist() == exact_range_sums(values, lo, hi).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_exact_sums_are_pandas_fsum_group_sums(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.choice(["x", "y", None], 300), "b": rng.integers(0, 4, 300),
                          "f": rng.lognormal(0, 3, 300) * rng.choice([1, -1], 300), "i": rng.integers(-5, 5, 300),
                          "w": rng.integers(0, 100, 300).astype("float64")})
    for keys in (["a"], ["a", "b"], ["b"]):
        grouped = frame.groupby(keys, sort=True)
        got, expected = exact_sums(grouped, ["f", "i", "w"]), old_exact_sums(grouped, ["f", "i", "w"])
        assert got.index.equals(expected.index)
        assert_same(got.reset_index(drop=True), expected.reset_index(drop=True))


def old_project_summaries(rollups: pd.DataFrame, spans: pd.DataFrame, agent_trends: pd.DataFrame,
                          as_of: list[dt.date], windows_: list[int], min_points: int) -> tuple[pd.DataFrame, ...]:
    summaries, agent_rows = [], []
    projects = rollups[rollups["entity_type"] == "project"]
    pairs = rollups[rollups["entity_type"] == "project_agent"]
    for day in as_of:
        span = spans[spans["date"] <= day].groupby("project_id").agg(
            first_task_at=("first_task_at", "min"), last_task_at=("last_task_at", "max"))
        for window in windows_:
            inside = projects[in_window(projects["date"], day, window)]
            if inside.empty:
                continue
            totals = _feedback(old_exact_sums(inside.groupby("project_id", sort=True), PROJECT_SUMS), min_points)
            pair_part = pairs[in_window(pairs["date"], day, window)]
            pair_sums = old_exact_sums(pair_part.groupby(["project_id", "agent_id"], sort=True), PROJECT_SUMS)
            per_agent = _feedback(pair_sums, min_points)
            per_agent["avg_overall_score"] = (pair_sums["sum_overall_score"] / pair_sums["n_overall_score"].where(
                pair_sums["n_overall_score"] > 0)).where(per_agent["status"] == OK)
            per_agent["innovation_count"] = per_agent["innovation_count"].where(per_agent["status"] == OK)
            agent_rows.append(per_agent.reset_index().assign(as_of_date=day, window_days=window))
            totals["n_agents"] = per_agent.reset_index().groupby("project_id")["agent_id"].nunique()
            best = {}
            for project_id, agents in per_agent.reset_index().groupby("project_id", sort=True):
                trends = agent_trends[agent_trends["entity_id"].isin(set(agents["agent_id"]))]
                row = most_improved(trends, [day], [window]).iloc[0]
                best[project_id] = {"most_improved_agent": row["agent_id"], "most_improved_slope": row["slope_per_day"]}
            best = pd.DataFrame.from_dict(best, orient="index", columns=["most_improved_agent", "most_improved_slope"])
            summaries.append(totals.join(span).join(best).reset_index().assign(as_of_date=day, window_days=window))
    return (pd.concat(summaries, ignore_index=True)[PROJECT_COLUMNS],
            pd.concat(agent_rows, ignore_index=True)[PROJECT_AGENT_COLUMNS])


@pytest.mark.parametrize("seed", range(8))
def test_project_summaries_are_the_per_day_group_bys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tasks = random_tasks(rng).assign(project_id=lambda t: rng.choice(["p1", "p2", "p/3"], len(t)))
    rollups = daily_rollups(tasks, pd.DataFrame())
    as_of = [FIRST + dt.timedelta(days=int(k)) for k in sorted(rng.choice(range(5, 80), size=6, replace=False))]
    agents = rollups[rollups["entity_type"] == "agent"]
    trends = TheilSenTrendStrategy((7, 30), ["avg_overall_score"], 3, 0.0).compute(daily_metric_values(agents), as_of)
    spans = rollups[rollups["entity_type"] == "project"][["project_id", "date", "first_task_at", "last_task_at"]]
    kept = rollups[rollups["entity_type"].isin(["project", "project_agent"])]
    got = project_summaries(kept, spans, trends, as_of, [7, 30], 3)
    expected = old_project_summaries(kept, spans, trends, as_of, [7, 30], 3)
    assert got[0]["most_improved_agent"].notna().any()  # every seed here has improving agents
    for left, right in zip(got, expected, strict=True):
        assert_same(left.reset_index(drop=True), right.reset_index(drop=True))


def old_main_departments(department_agents: pd.DataFrame, day: dt.date, window: int) -> dict[str, str]:
    part = department_agents[in_window(department_agents["date"], day, window)]
    if part.empty:
        return {}
    tasks = part.groupby(["agent_id", "department"], sort=True)["n_tasks"].sum().reset_index()
    tasks = tasks.sort_values(["agent_id", "n_tasks", "department"], ascending=[True, False, True], kind="stable")
    return tasks.drop_duplicates("agent_id").set_index("agent_id")["department"].to_dict()


@pytest.mark.parametrize("seed", range(6))
def test_main_departments_are_the_per_day_group_bys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tasks = random_tasks(rng).assign(department=lambda t: rng.choice(["eng", "ops", "r&d"], len(t)))
    rollups = daily_rollups(tasks, pd.DataFrame())
    department_agents = rollups[rollups["entity_type"] == "department_agent"]
    as_of = [FIRST + dt.timedelta(days=int(k)) for k in sorted(rng.choice(100, size=6, replace=False))]
    got = main_departments(department_agents, as_of, [7, 30])
    for day in as_of:
        for window in (7, 30):
            part = got[(got["as_of_date"] == day) & (got["window_days"] == window)]
            assert dict(zip(part["agent_id"], part["department"], strict=True)) == old_main_departments(
                department_agents, day, window)


def old_provider_rankings(model_rollups: pd.DataFrame, as_of: Sequence[dt.date], *, window_days: int = 30,
                      min_tasks: int = 5, quality_per_cost_doubling: float = 0.05,
                      quality_per_latency_doubling: float = 0.02, cost_floor_usd: float = 0.0001,
                      latency_floor_ms: float = 1.0) -> pd.DataFrame:
    """Ranking rows from ``model_task_type`` rollups: per as-of day and task type, every provider/model
    of the window, ranked by ``utility`` when it has ``min_tasks`` tasks and a known quality, cost and
    median response time; ties by quality, then tasks."""
    keys = ["task_type", "provider", "model"]
    frames = []
    for day in as_of:
        part = model_rollups[in_window(model_rollups["date"], day, window_days)] if not model_rollups.empty \
            else model_rollups
        if part.empty:
            continue
        metrics = old_window_metrics(part, keys).reset_index()
        metrics["status"] = np.select(
            [metrics["n_tasks"] < min_tasks, metrics["avg_quality_score"].isna(), metrics["avg_cost_per_task"].isna(),
             metrics["p50_response_time_ms"].isna()],
            ["insufficient_data", "unknown_quality", "unknown_cost", "unknown_latency"], RANKED)
        metrics["utility"], metrics["rank"] = np.nan, pd.array([None] * len(metrics), dtype="Int64")
        for _, group in metrics[metrics["status"] == RANKED].groupby("task_type", sort=True):
            reference_cost = float(group["avg_cost_per_task"].median())
            reference_latency = float(group["p50_response_time_ms"].median())
            values = [utility(q, c, lat, reference_cost, reference_latency,
                              quality_per_cost_doubling=quality_per_cost_doubling,
                              quality_per_latency_doubling=quality_per_latency_doubling,
                              cost_floor_usd=cost_floor_usd, latency_floor_ms=latency_floor_ms)
                      for q, c, lat in zip(group["avg_quality_score"], group["avg_cost_per_task"],
                                           group["p50_response_time_ms"], strict=True)]
            order = group.assign(utility=values).sort_values(
                ["utility", "avg_quality_score", "n_tasks", "provider", "model"],
                ascending=[False, False, False, True, True], kind="stable")
            metrics.loc[order.index, "utility"] = order["utility"]
            metrics.loc[order.index, "rank"] = competition_ranks(list(zip(
                order["utility"], order["avg_quality_score"], order["n_tasks"], strict=True)))
        metrics.insert(0, "as_of_date", day)
        metrics["window_days"] = window_days
        frames.append(metrics.sort_values(["task_type", "rank", "provider", "model"], na_position="last"))
    if not frames:
        return pd.DataFrame(columns=RANKING_COLUMNS)
    return pd.concat(frames, ignore_index=True)[RANKING_COLUMNS]


@pytest.mark.parametrize("seed", range(6))
def test_provider_rankings_are_the_per_day_group_bys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rollups = daily_rollups(random_tasks(rng), pd.DataFrame())
    models = rollups[rollups["entity_type"] == "model_task_type"]
    as_of = [FIRST + dt.timedelta(days=int(k)) for k in sorted(rng.choice(100, size=6, replace=False))]
    got = provider_rankings(models, as_of, window_days=30, min_tasks=3)
    assert (got["status"] == "ranked").any()
    assert_same(got.reset_index(drop=True), old_provider_rankings(models, as_of, window_days=30, min_tasks=3))


def test_histograms_count_each_groups_known_bins() -> None:
    rng = np.random.default_rng(9)
    groups, bins = rng.integers(0, 50, 5000), rng.integers(-1, latency.BINS, 5000)
    expected = [{} for _ in range(52)]
    for group, bin_ in zip(groups.tolist(), bins.tolist(), strict=True):
        if bin_ >= 0:  # unknown response times (-1) are counted nowhere
            expected[group][str(bin_)] = expected[group].get(str(bin_), 0) + 1
    assert latency.histograms(groups, bins, 52) == expected  # groups 50 and 51 have no rows: empty


@pytest.mark.parametrize("max_cells", [8_000_000, 40_000, 800])  # one block, several, a row per block
def test_range_percentiles_are_those_of_the_merged_histograms(max_cells: int) -> None:
    rng = np.random.default_rng(11)
    histograms = [None if rng.random() < 0.05 else {} if rng.random() < 0.05 else
                  {str(b): int(rng.integers(1, 5)) for b in rng.integers(0, latency.BINS, rng.integers(1, 6))}
                  for _ in range(2000)]
    lo = rng.integers(0, 2000, 3000)
    hi = np.minimum(lo + rng.integers(0, 100, 3000), 2000)  # overlapping ranges, empty ones too
    totals, (p50, p95) = latency.range_percentiles(histograms, lo, hi, (50, 95), max_cells=max_cells)
    for i in range(len(lo)):
        merged = latency.merge(histograms[lo[i]:hi[i]])
        expected = latency.percentiles(merged, (50, 95))
        assert [None if np.isnan(v) else v for v in (p50[i], p95[i])] == expected
        assert totals[i] == sum(merged.values())
