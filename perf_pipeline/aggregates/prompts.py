"""Prompt version comparison: for a task type, does one prompt version's quality beat another's?

Quality scores are not normal (bounded, often skewed), so two versions are compared with the
Mann-Whitney U test, on the raw scores of the window's tasks (ranks need the values themselves,
which rollups do not keep). A task type with k versions makes k(k-1)/2 tests, so the p-values are
Holm-adjusted within the task type before the verdict: without it, five versions would find a
"winner" in pure noise about four times in ten.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from perf_pipeline.aggregates.windows import in_window

A_BETTER, B_BETTER, NO_DIFFERENCE, INSUFFICIENT = "a_better", "b_better", "no_difference", "insufficient_data"
COMPARISON_COLUMNS = ["as_of_date", "task_type", "version_a", "version_b", "window_days", "n_a", "n_b", "median_a",
                      "median_b", "u_statistic", "p_value", "p_value_holm", "prob_a_beats_b", "verdict"]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, kept monotone, capped at 1)."""
    order = np.argsort(p_values, kind="stable")
    m, running, adjusted = len(p_values), 0.0, [0.0] * len(p_values)
    for step, index in enumerate(order):
        running = max(running, min(1.0, (m - step) * p_values[index]))
        adjusted[index] = running
    return adjusted


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Two-sided Mann-Whitney U of a against b; U counts the pairs where a wins (ties count half).
    When every score is the same there is no evidence of a difference: p = 1."""
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    p_value = 1.0 if np.isnan(result.pvalue) else float(result.pvalue)
    return {"u_statistic": float(result.statistic), "p_value": p_value,
            "prob_a_beats_b": float(result.statistic) / (len(a) * len(b))}


def compare_prompt_versions(scores: pd.DataFrame, as_of: Sequence[dt.date], *, window_days: int = 30,
                            min_tasks: int = 5, alpha: float = 0.05) -> pd.DataFrame:
    """Comparison rows from scored tasks (task_type, prompt_version, quality_score, partition_date):
    every pair of a task type's versions seen in the window; pairs where either version has fewer
    than ``min_tasks`` scored tasks are listed as insufficient_data, untested."""
    rows = []
    known = scores.dropna(subset=["task_type", "prompt_version", "quality_score"])
    for day in as_of:
        part = known[in_window(known["partition_date"], day, window_days)]
        for task_type, tasks in part.groupby("task_type", sort=True):
            versions = {v: g["quality_score"].to_numpy(dtype="float64")
                        for v, g in tasks.groupby("prompt_version", sort=True)}
            tested = []
            for version_a, version_b in itertools.combinations(sorted(versions), 2):
                a, b = versions[version_a], versions[version_b]
                row = {"as_of_date": day, "task_type": task_type, "version_a": version_a, "version_b": version_b,
                       "window_days": window_days, "n_a": len(a), "n_b": len(b), "median_a": float(np.median(a)),
                       "median_b": float(np.median(b)), "verdict": INSUFFICIENT}
                if min(len(a), len(b)) >= min_tasks:
                    row.update(compare(a, b))
                    tested.append(row)
                rows.append(row)
            for row, adjusted in zip(tested, holm([r["p_value"] for r in tested]), strict=True):
                row["p_value_holm"] = adjusted
                if adjusted >= alpha:
                    row["verdict"] = NO_DIFFERENCE
                else:
                    row["verdict"] = A_BETTER if row["prob_a_beats_b"] > 0.5 else B_BETTER
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
