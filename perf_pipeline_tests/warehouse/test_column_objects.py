"""``column_objects`` gives, for every kind of column a frame of the warehouse holds, the values (and
the types of the values) that ``series.astype(object).where(series.notna(), None).tolist()`` gives,
None for each missing value."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.warehouse.db import column_objects


def _reference(series: pd.Series) -> list[object]:
    return series.astype(object).where(series.notna(), None).tolist()


def _same(series: pd.Series) -> None:
    objects, expected = column_objects(series), _reference(series)
    assert objects.dtype == object and objects.shape == (len(series),)
    got = objects.tolist()
    assert [type(value) for value in got] == [type(value) for value in expected]
    assert [repr(value) for value in got] == [repr(value) for value in expected]  # NaN-free: None stands for it


def _columns(rows: int, seed: int) -> dict[str, pd.Series]:
    rng = np.random.default_rng(seed)
    gone = rng.random(rows) < 0.3
    floats = rng.normal(size=rows) * 10.0 ** rng.integers(-300, 300, rows)
    floats[gone] = np.nan
    floats[rng.random(rows) < 0.05] = -0.0
    at = pd.Series(pd.to_datetime(rng.integers(0, 4 * 10**18, rows), unit="ns", utc=True))
    at[gone] = pd.NaT
    text = np.array([f"agent-{k}" for k in rng.integers(0, 50, rows)], dtype=object)
    text[gone] = None
    days = np.array([dt.date(2026, 1, 1) + dt.timedelta(days=int(k)) for k in rng.integers(0, 90, rows)],
                    dtype=object)
    days[gone] = None
    mixed = np.array([{"bin": int(k)} for k in rng.integers(0, 9, rows)], dtype=object)
    mixed[gone & (rng.random(rows) < 0.5)] = np.nan
    return {
        "int64": pd.Series(rng.integers(-(2**62), 2**62, rows)),
        "int32": pd.Series(rng.integers(-1000, 1000, rows).astype(np.int32)),
        "bool": pd.Series(rng.random(rows) < 0.5),
        "float64": pd.Series(floats),
        "float64 complete": pd.Series(np.nan_to_num(floats)),
        "float32": pd.Series(np.where(gone, np.nan, rng.normal(size=rows)).astype(np.float32)),
        "Int64": pd.Series(pd.array(np.where(gone, None, rng.integers(0, 9, rows)), dtype="Int64")),
        "boolean": pd.Series(pd.array(np.where(gone, None, rng.random(rows) < 0.5), dtype="boolean")),
        "Float64": pd.Series(pd.array(floats, dtype="Float64")),
        "string pyarrow": pd.Series(text, dtype="string[pyarrow]"),
        "string python": pd.Series(text, dtype="string[python]"),
        "object text": pd.Series(text),
        "object dates": pd.Series(days),
        "object dicts and NaN": pd.Series(mixed),
        "datetime UTC": at,
        "datetime naive": at.dt.tz_localize(None),
        "datetime microseconds": at.astype("datetime64[us, UTC]"),
        "category": pd.Series(pd.Categorical(text)),
        "category of numbers": pd.Series(pd.Categorical(np.where(gone, None, rng.integers(0, 5, rows)))),
        "timedelta": pd.Series(pd.to_timedelta(np.where(gone, None, rng.integers(0, 10**6, rows)), unit="s")),
    }


@pytest.mark.parametrize("name", list(_columns(1, 0)))
def test_every_kind_of_column_converts_as_astype_object_does(name: str) -> None:
    for rows in (0, 1, 7, 1_000):
        _same(_columns(rows, rows)[name])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=40))
def test_floats_with_any_missing_values(values: list[float | None]) -> None:
    _same(pd.Series(values, dtype="float64"))
    _same(pd.Series(values, dtype="object"))
