"""TrailingDays: the chunks of a range read with their carried history equal one read of each span,
and each day is read once."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from perf_pipeline.daily import day_chunks
from perf_pipeline.warehouse.db import TrailingDays

FIRST = dt.date(2026, 1, 1)


def table(days: int, seed: int) -> pd.DataFrame:
    """Rows of several entities a day (some days without rows), a nullable integer column and a float."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        if rng.random() < 0.15:
            continue  # a day without rows
        for entity in rng.choice(["a", "b", "c", "d"], size=int(rng.integers(1, 5)), replace=False):
            count = None if rng.random() < 0.1 else int(rng.integers(0, 50))
            rows.append({"entity_id": str(entity), "date": FIRST + dt.timedelta(days=d), "n": count,
                         "value": float(rng.normal())})
    return pd.DataFrame(rows)


class Reader:
    """A reader of ``rows`` by day range, in ``order``, that records the days it was asked for."""

    def __init__(self, rows: pd.DataFrame, order: list[str]) -> None:
        self.rows, self.order, self.spans = rows, order, []

    def __call__(self, _conn, first: dt.date, last: dt.date) -> pd.DataFrame:
        self.spans.append((first, last))
        selected = self.rows[(self.rows["date"] >= first) & (self.rows["date"] <= last)]
        # As from a database: the dtypes of what this span holds (a column without nulls is int64).
        return pd.DataFrame(selected.sort_values(self.order).to_dict("records"),
                            columns=list(self.rows.columns)).infer_objects()


@pytest.mark.parametrize("order", [["date", "entity_id"], ["entity_id", "date"]])
@pytest.mark.parametrize(("history", "chunk", "seed"), [(7, 5, 1), (3, 5, 2), (10, 1, 3), (30, 4, 4)])
def test_chunks_with_their_carried_history_equal_one_read_of_each_span(order: list[str], history: int, chunk: int,
                                                                       seed: int,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", chunk)
    rows = table(60, seed)
    last = FIRST + dt.timedelta(days=59)
    read = Reader(rows, order)
    trailing = TrailingDays(read, history, "date", None if order[0] == "date" else order)
    start = FIRST + dt.timedelta(days=history - 1)  # the first chunk's history starts on the table's first day
    for first, end in day_chunks(start, last):
        carried = trailing.read(None, first, end)
        expected = Reader(rows, order)(None, first - dt.timedelta(days=history - 1), end)
        pd.testing.assert_frame_equal(carried, expected, check_dtype=False)
        for column in carried.columns:  # a nullable integer column read with its nulls is float64, and
            # stays so when they leave the span: the same numbers (a database column keeps its type)
            assert carried[column].dtype == expected[column].dtype or \
                (column, carried[column].dtype, expected[column].dtype) == ("n", "float64", "int64")
    # Each day was read once: the spans read are consecutive, without overlap.
    assert read.spans[0][0] == FIRST and read.spans[-1][1] == last
    assert all(b[0] == a[1] + dt.timedelta(days=1) for a, b in zip(read.spans, read.spans[1:], strict=False))


def test_a_chunk_past_the_carried_span_reads_its_span_anew() -> None:
    rows = table(60, 5)
    read = Reader(rows, ["date", "entity_id"])
    trailing = TrailingDays(read, 5, "date")
    trailing.read(None, FIRST + dt.timedelta(days=10), FIRST + dt.timedelta(days=12))
    later = trailing.read(None, FIRST + dt.timedelta(days=30), FIRST + dt.timedelta(days=31))
    assert read.spans[-1] == (FIRST + dt.timedelta(days=26), FIRST + dt.timedelta(days=31))
    pd.testing.assert_frame_equal(later, Reader(rows, ["date", "entity_id"])(
        None, FIRST + dt.timedelta(days=26), FIRST + dt.timedelta(days=31)))

