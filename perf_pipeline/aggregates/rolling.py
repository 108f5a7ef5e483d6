"""Sums of many windows of rollup rows at once: the core that every windowed aggregate is built on.

Rollup rows sorted by their group (an entity, an agent and node...) and then by day make every
window of a group a range of consecutive rows, found by binary search. Sums over ranges are then
exact and cheap: integer columns (and float columns holding whole numbers) by differences of
integer prefix sums, other float columns by ``math.fsum`` over the range, which is correctly
rounded whatever the order of the rows, so a backfilled range stores the same sums as its days run
one by one. No per-window group-by: a range of 30 days and 3 windows is one pass over the rows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Whole-number floats below this add up exactly in an int64 prefix sum of a few million rows.
EXACT_INTEGER_LIMIT = 2.0 ** 40


def day_numbers(dates: pd.Series) -> np.ndarray:
    """Each date's ordinal (``date.toordinal()``), computed once per distinct date: a window's
    hundreds of thousands of rows hold 90 days."""
    codes, distinct = pd.factorize(dates)
    if (codes < 0).any():
        raise ValueError("a row without a date cannot be placed in a window")
    return np.array([d.toordinal() for d in distinct], dtype=np.int64)[codes] if len(dates) \
        else np.array([], dtype=np.int64)


@dataclass(frozen=True)
class Groups:
    """``rows`` sorted by ``keys`` then date; ``keys`` one row per group (in order); ``group`` each row's
    group number; ``day`` each row's day ordinal."""

    rows: pd.DataFrame
    keys: pd.DataFrame
    group: np.ndarray
    day: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame, keys: Sequence[str], date_column: str = "date") -> Groups:
        """The rows as a stable sort by ``keys`` and ``date_column`` orders them. Rows that come in
        that order already (read in key order, ``schema.row_order``) are not moved: sorting 90 days of a fleet's
        node rollups again cost a tenth of a second."""
        keys = list(keys)
        rows = frame.reset_index(drop=True)
        group = rows.groupby(keys, sort=True, dropna=False).ngroup().to_numpy(dtype=np.int64)
        day = day_numbers(rows[date_column])
        step, later = np.diff(group), np.diff(day)
        if not ((step > 0) | ((step == 0) & (later >= 0))).all():
            order = np.lexsort((day, group))  # stable: by group number (the keys' order), then day
            rows, group, day = rows.take(order).reset_index(drop=True), group[order], day[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(rows) else np.array([], dtype=np.int64)
        return cls(rows, rows.loc[starts, keys].reset_index(drop=True), group, day)

    def whole(self) -> tuple[np.ndarray, np.ndarray]:
        """Each group's row range [lo, hi)."""
        bounds = np.flatnonzero(np.r_[True, self.group[1:] != self.group[:-1], True]) if len(self.rows) \
            else np.array([0])
        return bounds[:-1], bounds[1:]


@dataclass(frozen=True)
class Windows:
    """One output per (as-of day, window, group) in that order: its group number, day, window and rows [lo, hi)."""

    group: np.ndarray
    as_of: np.ndarray  # index into the as-of days
    window_days: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def windows(groups: Groups, as_of: Sequence[dt.date], window_days: Sequence[int],
            present_in: int | None = None) -> Windows:
    """The windows (D - W, D] of every group, as-of day D and window W. A group gets an output when it has
    a row in the window itself or, with ``present_in``, in the window of that many days (every window
    of a group then has an output, empty ones included)."""
    n_groups = int(groups.group.max()) + 1 if len(groups.group) else 0
    stride = int(groups.day.max()) + 1 if len(groups.day) else 1
    key = groups.group * stride + groups.day  # sorted: groups, then days
    ends = np.array([d.toordinal() for d in as_of], dtype=np.int64)
    days = np.array(list(window_days), dtype=np.int64)
    a, w, g = (grid.ravel() for grid in np.meshgrid(np.arange(len(ends)), np.arange(len(days)),
                                                    np.arange(n_groups), indexing="ij"))

    def after(day: np.ndarray) -> np.ndarray:
        """The first row of group g past ``day`` (days clipped into the group's key range)."""
        return np.searchsorted(key, g * stride + np.clip(day, 0, stride - 1), side="right")

    lo, hi = after(ends[a] - days[w]), after(ends[a])
    keep = hi > lo if present_in is None else hi > after(ends[a] - present_in)
    return Windows(g[keep], a[keep], days[w[keep]], lo[keep], hi[keep])


def range_sums(rows: pd.DataFrame, columns: Sequence[str], lo: np.ndarray, hi: np.ndarray) -> pd.DataFrame:
    """Per range [lo, hi) of ``rows``, the sum of each of ``columns``: int64 for integer columns, the
    correctly rounded sum (``math.fsum``) for float columns."""
    out = {}
    for column in columns:
        values = rows[column].to_numpy()
        if values.dtype.kind in "iub":
            prefix = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
            out[column] = prefix[hi] - prefix[lo]
            continue
        values = values.astype("float64")
        if np.all(np.isfinite(values) & (np.abs(values) < EXACT_INTEGER_LIMIT) & (values == np.round(values))):
            # Whole numbers (tokens, tool calls): exact in integers, and so equal to fsum's result.
            prefix = np.concatenate([[0], np.cumsum(values.astype(np.int64))])
            out[column] = (prefix[hi] - prefix[lo]).astype("float64")
            continue
        listed = values.tolist()
        fsum = math.fsum
        out[column] = np.fromiter((fsum(listed[i:j]) for i, j in zip(lo.tolist(), hi.tolist(), strict=True)),
                                  dtype="float64", count=len(lo))
    return pd.DataFrame(out)
