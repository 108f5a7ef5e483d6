"""``read_frame``'s columns of numbers are made by numpy at once (``numbers_or_list``): the frame is
the one pandas makes of the driver's lists, value for value and dtype for dtype, whatever the list
holds (integers of any size, floats, NaN and infinities, None, text, booleans)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.warehouse.db import create_warehouse_engine, numbers_or_list, read_frame

_values = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.integers(), st.floats(),
                    st.text(max_size=3), st.booleans())
_lists = st.one_of(st.lists(_values, max_size=30),  # anything
                   st.lists(st.one_of(st.none(), st.integers(-(2**62), 2**62)), max_size=30),
                   st.lists(st.one_of(st.none(), st.floats(), st.integers(-(2**53), 2**53)), max_size=30),
                   st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=30))


def _frame_of(values: Any) -> pd.DataFrame:
    return pd.DataFrame({"column": values}, columns=["column"])


@settings(max_examples=1500, deadline=None)
@given(values=_lists)
def test_the_column_is_the_one_pandas_makes_of_the_list(values: list[Any]) -> None:
    made = _frame_of(numbers_or_list(list(values)))
    expected = _frame_of(list(values))
    pd.testing.assert_frame_equal(made, expected, check_exact=True)
    assert made["column"].dtype == expected["column"].dtype


def test_numbers_become_arrays_and_other_lists_stay_lists() -> None:
    assert numbers_or_list([1, 2]).dtype == np.int64
    assert numbers_or_list([1, 2.5]).dtype == np.float64
    assert np.isnan(numbers_or_list([1, None])[1])
    for kept in ([], [None, None], ["a", 1], [True, 1], [2**64, 1], [2**64, 1.5, None]):
        assert numbers_or_list(kept) is kept


def test_a_read_of_numbers_with_nulls_gives_the_frame_of_the_rows(tmp_path) -> None:
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'numbers.db'}")
    metadata = sa.MetaData()
    table = sa.Table("numbers", metadata, sa.Column("id", sa.Integer(), primary_key=True),
                     sa.Column("count", sa.BigInteger()), sa.Column("amount", sa.Float()),
                     sa.Column("label", sa.Text()))
    metadata.create_all(engine)
    rows = [{"id": i, "count": None if i % 3 == 0 else i * 10**12, "amount": i / 7 if i % 4 else None,
             "label": f"agent-{i}"} for i in range(1, 200)]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
        frame = read_frame(conn, sa.select(table).order_by(table.c.id))
    expected = pd.DataFrame({name: [row[name] for row in rows] for name in ("id", "count", "amount", "label")})
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert frame["id"].dtype == np.int64 and frame["count"].dtype == np.float64
