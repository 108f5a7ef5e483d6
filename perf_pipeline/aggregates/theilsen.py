"""Theil-Sen slopes with their confidence intervals and Mann-Kendall p-values for many series at once.

Each function takes a batch of series of the same length ``n`` as two (series, n) arrays, ``x``
strictly increasing along each row (day numbers: one point per day), and returns one value per
series. The figures are those of ``scipy.stats.theilslopes(y, x, alpha)`` and the two-sided p-value
of ``scipy.stats.kendalltau(x, y)``, reproduced step for step (the same pairwise slopes, the same
order statistics, the same variance formulas, the same exact null distribution) so that they agree
to the last bits; the property tests compare them on random series with ties, constant series and
gaps between days. One call costs a few array operations over the pairs of every series in the
batch instead of a SciPy call per series, which is what makes trends of a fleet affordable.

The exact Kendall distribution below follows ``scipy.stats._mstats_basic._kendall_p_exact``
(SciPy, BSD-3-Clause, Copyright (c) 2001-2002 Enthought, Inc. and 2003-2024 SciPy Developers).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import cache

import numpy as np
from scipy import special, stats

from perf_pipeline import settings

# Kendall's exact null distribution is used, as SciPy does, without ties and up to this length.
EXACT_MAX_N = 33
# Pairwise slopes held at once (float64 elements): 2 MiB, so that a chunk's passes stay in the CPU's cache.
MAX_PAIR_ELEMENTS = 262_144
# A batch of at least this many pairwise slopes (about 4 ms of work) is split between threads, one
# part per usable CPU: sorting and subtracting arrays release the GIL, so the parts are fitted at
# once. 8,000 series of 90 days took 0.87 s alone, 0.56 s in two parts; 100 series of 80 days
# 10.0 ms against 7.0; below about 100,000 slopes, handing a part over costs what it saves. (Two
# runs of trends at once, or a run beside an ingest's workers, share the CPUs: each still gets its
# figures, only later.)
PARALLEL_MIN_PAIRS = 150_000
# From this many pairwise slopes per series on, the interval's and the median's order statistics may
# be selected rather than read from every slope sorted (``order_statistics``): a sample of every
# ``SAMPLE_STRIDE``-th slope brackets the ranks needed, and only the slopes inside the bracket are
# sorted. Whether that pays depends on numpy's sort on the machine (``selecting_pays``): 4,150 series
# of 90 points were fitted in 0.44 s instead of 0.97 s with numpy's portable sort, but in 0.20 s
# instead of 0.16 s where it sorts with AVX-512 instructions (0.24 s instead of 0.21 s with AVX2);
# with fewer slopes the difference was within the noise.
SELECT_MIN_PAIRS = 1_100
SAMPLE_STRIDE = 8
_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()
_selection_pays: bool | None = None  # selecting_pays(), once timed
_selection_lock = threading.Lock()


@dataclass(frozen=True)
class TheilSenBatch:
    """One value per series: slope, intercept, interval bounds, Mann-Kendall p (NaN for a constant series)."""

    slope: np.ndarray
    intercept: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mann_kendall_p: np.ndarray


def _median_sorted(values: np.ndarray) -> np.ndarray:
    """Row medians of row-sorted ``values``, as ``np.median`` computes them (mean of the two middle ones)."""
    n = values.shape[1]
    if n % 2:
        return values[:, n // 2].copy()
    return (values[:, n // 2 - 1] + values[:, n // 2]) / 2


def _tie_sums(sorted_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of row-sorted values, over the groups of t equal values: the sums of t(t-1)/2 (tied
    pairs) and of t(t-1)(2t+5) (the ties' share of the variance of Kendall's S), as int64."""
    rows, n = sorted_y.shape
    starts = np.ones((rows, n), dtype=bool)
    starts[:, 1:] = sorted_y[:, 1:] != sorted_y[:, :-1]
    # Size of each run of equal values, placed at the run's first element.
    flat_starts = np.flatnonzero(starts.ravel())
    row_of = flat_starts // n
    bounds = np.append(flat_starts, rows * n)
    # A run ends at the next start or at its row's end.
    row_end = (row_of + 1) * n
    sizes = np.minimum(bounds[1:], row_end) - flat_starts
    t = sizes.astype(np.int64)
    # Float weights are exact here: the sums stay far below 2 ** 53.
    return tuple(np.bincount(row_of, weights=weights, minlength=rows).astype(np.int64)
                 for weights in (t * (t - 1) // 2, t * (t - 1) * (2 * t + 5)))


@cache
def kendall_p_exact(n: int, c: int) -> float:
    """Two-sided p-value of Kendall's test without ties, from ``c`` concordant pairs of ``n`` points."""
    c = int(min(c, (n * (n - 1)) // 2 - c))
    if n == 1:
        return 1.0
    if n == 2:
        return 1.0
    if c == 0:
        prob = 2.0 / math.factorial(n) if n < 171 else 0.0
    elif c == 1:
        prob = 2.0 / math.factorial(n - 1) if n < 172 else 0.0
    elif 4 * c == n * (n - 1):
        prob = 1.0
    else:
        new = np.zeros(c + 1)
        new[0:2] = 1.0
        for j in range(3, n + 1):
            new = np.cumsum(new)
            if j <= c:
                new[j:] -= new[:c + 1 - j]
        prob = 2.0 * np.sum(new) / math.factorial(n)
    return float(np.clip(prob, 0, 1))


def _pairwise_differences(values: np.ndarray) -> np.ndarray:
    """Per row, values[j] - values[i] for every pair i < j (grouped by j - i: one slice per lag)."""
    rows, n = values.shape
    out = np.empty((rows, n * (n - 1) // 2))
    position = 0
    for lag in range(1, n):
        np.subtract(values[:, lag:], values[:, :-lag], out=out[:, position:position + n - lag])
        position += n - lag
    return out


def theil_sen(x: np.ndarray, y: np.ndarray, alpha: float = 0.95) -> TheilSenBatch:
    """Theil-Sen fits and Mann-Kendall p-values of the rows of ``y`` over the rows of ``x`` (see the
    module docstring); series of at least 2 points. A large batch is split into one part per usable
    CPU, fitted by as many threads at once (``PARALLEL_MIN_PAIRS``); each row's figures are computed
    alone, so they are the same either way."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    rows, n = y.shape
    parts = min(settings.usable_cpus(), rows) if rows * (n * (n - 1) // 2) >= PARALLEL_MIN_PAIRS else 1
    if parts < 2:
        return _theil_sen(x, y, alpha)
    bounds = np.linspace(0, rows, parts + 1).astype(int)
    if n * (n - 1) // 2 >= SELECT_MIN_PAIRS:
        selecting_pays()  # timed here, before the threads start fitting
    pool = _pool()
    others = [pool.submit(_theil_sen, x[start:stop], y[start:stop], alpha)
              for start, stop in itertools.pairwise(bounds[1:])]
    try:
        fitted = [_theil_sen(x[:bounds[1]], y[:bounds[1]], alpha), *(part.result() for part in others)]
    except BaseException:  # a part failed, or the run was interrupted: the parts not started are dropped
        for part in others:
            part.cancel()
        raise
    return TheilSenBatch(**{f.name: np.concatenate([getattr(part, f.name) for part in fitted])
                            for f in fields(TheilSenBatch)})


def _pool() -> ThreadPoolExecutor:
    """The process's threads for the parts of large batches but the first (fitted by the caller),
    started on first use and kept, so that a backfill's chunks do not each start them."""
    global _threads
    with _threads_lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(max_workers=max(1, settings.usable_cpus() - 1),
                                          thread_name_prefix="theil-sen")
        return _threads


def _theil_sen(x: np.ndarray, y: np.ndarray, alpha: float) -> TheilSenBatch:
    rows, n = y.shape
    pairs = n * (n - 1) // 2
    if n < 2:
        raise ValueError("a Theil-Sen fit needs at least 2 points per series")
    out = {name: np.empty(rows) for name in ("slope", "intercept", "low", "high", "mann_kendall_p")}
    chunk = max(1, MAX_PAIR_ELEMENTS // pairs)
    # Sen (1968), equation 2.6, and the interval's ranks (days are distinct: no ties in x).
    z = stats.norm.ppf((1.0 - alpha if alpha > 0.5 else alpha) / 2.0)
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        xs, ys = x[start:stop], y[start:stop]
        slopes = _pairwise_differences(ys)
        # A pair is discordant when y decreases (x increases along each row): counted on the
        # differences, not on the slopes, which round to 0 where a difference is subnormal (SciPy
        # compares the values).
        discordant = (slopes < 0).sum(axis=1)
        if (xs[:, -1] - xs[:, 0] == n - 1).all():  # consecutive days: the same day differences for every row
            np.divide(slopes, _pairwise_differences(xs[:1]), out=slopes)
        else:
            np.divide(slopes, _pairwise_differences(xs), out=slopes)
        sorted_y = np.sort(ys, axis=1)
        tie_pairs, tie_sen = _tie_sums(sorted_y)
        sigsq = 1 / 18. * (n * (n - 1) * (2 * n + 5) - tie_sen)
        sigma = np.sqrt(sigsq)
        upper = np.minimum(np.round((pairs - z * sigma) / 2.).astype(np.int64), pairs - 1)
        lower = np.maximum(np.round((pairs + z * sigma) / 2.).astype(np.int64) - 1, 0)
        # The ranks of the interval's bounds and of the median (the middle two slopes: equal ranks
        # for an odd number of pairs), as ``np.median`` takes them.
        middle = np.broadcast_to([(pairs - 1) // 2, pairs // 2], (stop - start, 2))
        ranks = np.column_stack([lower, middle, upper])
        chosen = order_statistics if pairs >= SELECT_MIN_PAIRS and selecting_pays() else sorted_ranks
        low, median_low, median_high, high = chosen(slopes, ranks).T
        slope = median_low if pairs % 2 else (median_low + median_high) / 2
        out["slope"][start:stop] = slope
        out["intercept"][start:stop] = _median_sorted(sorted_y) - slope * _median_sorted(xs)
        out["low"][start:stop] = low
        out["high"][start:stop] = high
        out["mann_kendall_p"][start:stop] = _mann_kendall_p(discordant, n, tie_pairs, tie_sen)
    return TheilSenBatch(**out)


def order_statistics(slopes: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``np.sort(slopes, axis=1)[row, ranks[row]]`` for each row: the values of the given ranks (0 the
    smallest; NaN after every number, as ``np.sort`` places it). ``slopes`` may be left reordered.

    Sorting every slope is most of a long fit's work; numpy's sort takes about 20 ns a slope here. From
    ``SELECT_MIN_PAIRS`` on, a sorted sample of every ``SAMPLE_STRIDE``-th slope gives each row a
    bracket [a, b] around its ranks, with a margin for what the sample misses (one or two rows in a
    hundred need more). Counting the slopes below a and up to b shows whether the bracket holds the ranks:
    when it does, only its slopes are sorted (a quarter of a 90-point fit's), and a rank's value is
    the bracket's value of that rank less the count below a. The other rows are sorted whole."""
    rows, pairs = slopes.shape
    if pairs < SELECT_MIN_PAIRS:
        return sorted_ranks(slopes, ranks)
    first, last = ranks.min(axis=1), ranks.max(axis=1)
    sample = slopes[:, ::SAMPLE_STRIDE].copy()
    sample.sort(axis=1)
    size = sample.shape[1]
    lo_at, hi_at = bracket_ranks(first, last, size, pairs)
    row = np.arange(rows)
    a = np.where(lo_at < 0, -np.inf, sample[row, np.clip(lo_at, 0, size - 1)])[:, None]
    b = np.where(hi_at >= size, np.inf, sample[row, np.clip(hi_at, 0, size - 1)])[:, None]
    below = slopes < a
    inside = slopes <= b
    inside &= ~below  # a <= b (a NaN bound fails the test below)
    n_below, n_inside = np.count_nonzero(below, axis=1), np.count_nonzero(inside, axis=1)
    # The slopes below a are the n_below smallest and those inside the next n_inside; a bracket
    # holding half a row's slopes or more (ties) saves nothing.
    held = (n_below <= first) & (n_below + n_inside > last) & (n_inside <= pairs // 2)
    out = np.empty(ranks.shape)
    kept = np.flatnonzero(held)
    if kept.size:
        inside[~held] = False
        values = np.compress(inside.ravel(), slopes.ravel())  # row after row (faster than slopes[inside])
        counts = n_inside[kept]
        negative_zero = (values == 0) & np.signbit(values)
        if negative_zero.any():
            # -0.0 and 0.0 are equal to a sort, which may order them otherwise in the bracket than in
            # the whole row: such rows are sorted whole, so that even the sign of a zero is the sort's.
            mixed = np.unique(np.repeat(np.arange(kept.size), counts)[negative_zero])
            held[kept[mixed]] = False
            keep = np.ones(kept.size, dtype=bool)
            keep[mixed] = False
            values = values[np.repeat(keep, counts)]
            kept, counts = kept[keep], counts[keep]
    if kept.size:
        bracket = np.full((kept.size, counts.max()), np.inf)  # after every value, NaN aside: none is inside
        starts = np.cumsum(counts) - counts
        bracket[np.repeat(np.arange(kept.size), counts), np.arange(values.size) - np.repeat(starts, counts)] = values
        bracket.sort(axis=1)
        out[kept] = bracket[np.arange(kept.size)[:, None], ranks[kept] - n_below[kept, None]]
    missed = np.flatnonzero(~held)
    if missed.size:
        out[missed] = sorted_ranks(slopes[missed], ranks[missed])
    return out


def sorted_ranks(slopes: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``np.sort(slopes, axis=1)[row, ranks[row]]`` for each row, ``slopes`` sorted in place."""
    slopes.sort(axis=1)
    return slopes[np.arange(len(slopes))[:, None], ranks]


def selecting_pays() -> bool:
    """Whether ``order_statistics`` gets a 90-point fit's ranks faster than sorting every slope, on this
    machine's numpy: timed once per process (about 15 ms; ``theil_sen`` asks before its threads start
    fitting), on the slopes of 64 random series, the best of three runs each. The figures are the
    same either way (those of the sort). 48-point fits (1,128 pairs) were faster the same way on the
    three kinds of sort measured (README: *Trends*)."""
    global _selection_pays
    with _selection_lock:
        if _selection_pays is None:
            _selection_pays = _time_selection()
        return _selection_pays


def _time_selection() -> bool:
    rng = np.random.default_rng(0)
    n = 90
    slopes = _pairwise_differences(np.cumsum(rng.normal(size=(64, n)), axis=1)) / _pairwise_differences(
        np.arange(n, dtype=np.float64)[None, :])
    pairs = slopes.shape[1]
    ranks = np.broadcast_to([int(pairs * 0.43), (pairs - 1) // 2, pairs // 2, int(pairs * 0.57)], (len(slopes), 4))

    def best(work: Callable[[np.ndarray], object]) -> float:
        times = []
        for _ in range(3):
            copy = slopes.copy()
            started = time.perf_counter()
            work(copy)
            times.append(time.perf_counter() - started)
        return min(times)

    return best(lambda rows: order_statistics(rows, ranks)) < best(lambda rows: rows.sort(axis=1))


def bracket_ranks(first: np.ndarray, last: np.ndarray, size: int, pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """The ranks, in a sorted sample of ``size`` of ``pairs`` slopes, of the bounds of the bracket
    around the ranks [first, last] of all slopes: where the sample would put them, widened by a
    margin for its error (below 0 or from ``size`` on: no bound on that side)."""
    margin = int(0.75 * math.sqrt(size)) + 2
    return first * size // pairs - margin, -(-(last + 1) * size // pairs) + margin


def _mann_kendall_p(discordant: np.ndarray, n: int, tie_pairs: np.ndarray, tie_sen: np.ndarray) -> np.ndarray:
    """``kendalltau(x, y).pvalue`` from the discordant pairs and the ties of y (x increasing: no ties in x)."""
    total = n * (n - 1) // 2
    concordant_minus_discordant = total - tie_pairs - 2 * discordant
    p = np.full(len(discordant), np.nan)
    exact = (tie_pairs == 0) & ((n <= EXACT_MAX_N) | (np.minimum(discordant, total - discordant) <= 1))
    for index in np.flatnonzero(exact):
        p[index] = kendall_p_exact(n, int(total - discordant[index]))
    asymptotic = ~exact & (tie_pairs < total)  # every value equal: no test, NaN
    if asymptotic.any():
        m = n * (n - 1.)
        # x has no ties, so SciPy's x terms (x0, x1, xtie) are 0, and so are the terms they multiply.
        variance = (m * (2 * n + 5) - tie_sen[asymptotic]) / 18
        z = concordant_minus_discordant[asymptotic] / np.sqrt(variance)
        p[asymptotic] = 2 * special.ndtr(-np.abs(z))
    return p
