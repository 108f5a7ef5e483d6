"""Mergeable response-time percentiles: a histogram with log-spaced bins (like HDR histograms).

Bin k holds values in [10 ** (k / BINS_PER_DECADE), 10 ** ((k + 1) / BINS_PER_DECADE)) ms, so a
bin is 2.3 % wide and a percentile read from merged histograms (interpolated inside its bin, on the
log scale) is within about 1 % of the exact one. Values below 1 ms fall in bin 0; a day's histogram
is a sparse {bin: count} mapping; a window's is the sum of its days'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

BINS_PER_DECADE = 100
DECADES = 8  # 1 ms .. 10^8 ms (about 28 hours); larger values fall in the last bin
BINS = BINS_PER_DECADE * DECADES


def bin_index(values_ms: pd.Series) -> pd.Series:
    """The bin of each value; -1 for unknown (null) values, which no histogram counts."""
    values = values_ms.astype("float64")
    bins = np.floor(np.log10(np.clip(values.to_numpy(), 1.0, None)) * BINS_PER_DECADE)
    bins = np.clip(np.nan_to_num(bins, nan=-1), -1, BINS - 1).astype(np.int64)
    return pd.Series(bins, index=values_ms.index)


def histogram(bins: Iterable[int]) -> dict[str, int]:
    """Sparse histogram of bin indices (JSON-friendly keys); unknown values (-1) left out."""
    counts: dict[str, int] = {}
    for b in bins:
        if b >= 0:
            counts[str(b)] = counts.get(str(b), 0) + 1
    return counts


def merge(histograms: Iterable[Mapping[str, int] | None]) -> dict[str, int]:
    """The sum of sparse histograms: a window's histogram from its days'."""
    total: dict[str, int] = {}
    for histogram_ in histograms:
        for key, value in (histogram_ or {}).items():
            total[key] = total.get(key, 0) + int(value)
    return total


def percentiles(histogram_: Mapping[str, int] | None, qs: Sequence[float]) -> list[float | None]:
    """The qs-th percentiles (0 < q <= 100) of a sparse histogram, each interpolated on the log scale
    inside the first bin whose cumulative count reaches q % of the total; None if it is empty.

    Walks the histogram's few occupied bins instead of an 800-bin dense array: a window of 90
    days reads tens of thousands of these.
    """
    histogram_ = histogram_ or {}
    occupied = sorted(zip(map(int, histogram_), map(int, histogram_.values()), strict=True))
    total = sum(count for _, count in occupied)
    if total == 0:
        return [None] * len(qs)
    values: list[float | None] = []
    for q in qs:
        rank, before = q / 100 * total, 0
        for index, count in occupied:
            if count and before + count >= rank:
                inside = min(max((rank - before) / count, 0.0), 1.0)
                values.append(float(10 ** ((min(index, BINS - 1) + inside) / BINS_PER_DECADE)))
                break
            before += count
    return values
