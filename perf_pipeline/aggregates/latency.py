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
import pyarrow as pa
import pyarrow.compute as pc

from perf_pipeline.warehouse.blocks import HISTOGRAM

BINS_PER_DECADE = 100
DECADES = 8  # 1 ms .. 10^8 ms (about 28 hours); larger values fall in the last bin
BINS = BINS_PER_DECADE * DECADES
# The histograms of day blocks (warehouse/blocks.py) as lists of (bin, count) entries.
ENTRY_LISTS = pa.list_(pa.struct([("key", HISTOGRAM.key_type), ("value", HISTOGRAM.item_type)]))


def bin_index(values_ms: pd.Series) -> pd.Series:
    """The bin of each value; -1 for unknown (null) values, which no histogram counts."""
    values = values_ms.astype("float64")
    bins = np.floor(np.log10(np.clip(values.to_numpy(), 1.0, None)) * BINS_PER_DECADE)
    bins = np.clip(np.nan_to_num(bins, nan=-1), -1, BINS - 1).astype(np.int64)
    return pd.Series(bins, index=values_ms.index)


def histograms(groups: np.ndarray, bins: np.ndarray, n_groups: int) -> list[dict[str, int]]:
    """The sparse histogram ({bin: count}, unknown values (-1) left out, keys in bin order) of each
    group's bins, for rows numbered by group (0 .. n_groups - 1): one count of the distinct (group,
    bin) pairs instead of a Python loop per group."""
    known = bins >= 0
    pairs, counts = np.unique(groups[known].astype(np.int64) * BINS + bins[known], return_counts=True)
    out: list[dict[str, int]] = [{} for _ in range(n_groups)]
    for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
        out[pair // BINS][str(pair % BINS)] = count
    return out


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


def entries(histograms: Sequence[Mapping[str, int] | None] | pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(number of entries, bins, counts) of the histograms, their entries one after the other: from a
    {bin: count} dict per row, or from an Arrow map column (``warehouse/blocks.py``) without a Python
    object per entry."""
    if isinstance(histograms, pd.Series) and isinstance(histograms.dtype, pd.ArrowDtype):
        # As lists of (bin, count): their kernels take a slice's own entries, and none of a null.
        lists = histograms.array.__arrow_array__().combine_chunks().cast(ENTRY_LISTS)
        flat = pc.list_flatten(lists)
        return (pc.list_value_length(lists).fill_null(0).to_numpy().astype(np.int64),
                flat.field(0).to_numpy().astype(np.int64), flat.field(1).to_numpy().astype(np.int64))
    # A frame joining rows read both ways holds the Arrow maps' values as lists of (bin, count) pairs.
    pairs = [h.items() if isinstance(h, Mapping) else h or () for h in
             (histograms.tolist() if isinstance(histograms, pd.Series) else histograms)]
    lengths = np.fromiter(map(len, pairs), dtype=np.int64, count=len(pairs))
    bins = np.fromiter((int(k) for h in pairs for k, _ in h), dtype=np.int64, count=int(lengths.sum()))
    counts = np.fromiter((int(v) for h in pairs for _, v in h), dtype=np.int64, count=len(bins))
    return lengths, bins, counts


def range_percentiles(histograms: Sequence[Mapping[str, int] | None] | pd.Series, lo: np.ndarray, hi: np.ndarray,
                      qs: Sequence[float], max_cells: int = 8_000_000) -> tuple[np.ndarray, list[np.ndarray]]:
    """For each range [lo, hi) of the rows ``histograms`` (as ``entries`` takes them): the number of
    values and the qs-th percentiles (NaN when empty) of the range's merged histogram, as
    ``percentiles(merge(...))`` gives them.

    The rows between consecutive range bounds are added up dense (BINS counts each) and cumulated,
    so a range's histogram is the difference of two cumulated rows; rows go in blocks of about
    ``max_cells`` counts, cut where no range crosses.
    """
    n_rows, n_ranges = len(histograms), len(lo)
    totals = np.zeros(n_ranges, dtype=np.int64)
    values = [np.full(n_ranges, np.nan) for _ in qs]
    if n_ranges == 0:
        return totals, values
    lengths, bins, counts = entries(histograms)
    entry_start = np.concatenate([[0], np.cumsum(lengths)])
    # Row p is a cut when no range holds both row p - 1 and row p.
    crossing = np.zeros(n_rows + 2, dtype=np.int64)
    spans = hi - lo >= 2
    np.add.at(crossing, lo[spans] + 1, 1)
    np.add.at(crossing, hi[spans], -1)
    cuts = np.flatnonzero(np.cumsum(crossing)[:n_rows + 1] == 0)
    block_rows = max(1, max_cells // BINS)
    row = 0
    while row < n_rows:
        later = cuts[cuts > row]
        fitting = later[later <= row + block_rows]
        end = int(fitting[-1] if len(fitting) else later[0])
        inside = np.flatnonzero((lo >= row) & (hi <= end) & (hi > lo))
        # Only the rows where a range starts or ends need a cumulated row: the rows between two such
        # bounds are added up as one segment (a single as-of day has a few bounds per group).
        bounds = np.unique(np.concatenate([[0, end - row], lo[inside] - row, hi[inside] - row]))
        first, last = entry_start[row], entry_start[end]
        entry_row = np.repeat(np.arange(end - row), lengths[row:end])
        segment = np.searchsorted(bounds, entry_row, side="right") - 1
        dense = np.bincount(segment * BINS + np.minimum(bins[first:last], BINS - 1), weights=counts[first:last],
                            minlength=(len(bounds) - 1) * BINS).reshape(len(bounds) - 1, BINS)
        cumulated = np.zeros((len(bounds), BINS), dtype=np.int64)  # row i: the rows before bounds[i]
        cumulated[1:] = dense.astype(np.int64).cumsum(axis=0)
        _block_percentiles(cumulated, np.searchsorted(bounds, lo[inside] - row),
                           np.searchsorted(bounds, hi[inside] - row), inside, qs, totals, values)
        row = end
    return totals, values


def _block_percentiles(cumulated: np.ndarray, lo: np.ndarray, hi: np.ndarray, where: np.ndarray,
                       qs: Sequence[float], totals: np.ndarray, values: list[np.ndarray]) -> None:
    for start in range(0, len(where), 4096):
        part = slice(start, start + 4096)
        merged = cumulated[hi[part]] - cumulated[lo[part]]
        running = merged.cumsum(axis=1)
        total = running[:, -1]
        totals[where[part]] = total
        has = np.flatnonzero(total > 0)
        for q, out in zip(qs, values, strict=True):
            rank = q / 100 * total[has]
            index = np.argmax(running[has] >= rank[:, None], axis=1)  # the first bin reaching the rank
            count = merged[has, index]
            before = running[has, index] - count
            inside = np.minimum(np.maximum((rank - before) / count, 0.0), 1.0)
            exponents = (np.minimum(index, BINS - 1) + inside) / BINS_PER_DECADE
            # Python's float power, as ``percentiles`` computes it (numpy's may differ in the last bit).
            out[where[part][has]] = [10 ** exponent for exponent in exponents.tolist()]
