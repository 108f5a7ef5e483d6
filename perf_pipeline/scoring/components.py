"""Score components of a task, each in 0..1 and null where there is no signal. Pure functions on
DataFrames: no database, no Dagster, so every number can be checked by hand.

Frames follow the warehouse's column names (``task_events``, ``feedback_events``,
``peer_evaluations``, ``price_table``); results are indexed like the ``tasks`` frame given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

UNKNOWN, REPORTED, PRICE_TABLE = "unknown", "reported", "price_table"
EVALUATION_DIMENSIONS = ["accuracy", "relevance", "completeness"]


def effort(tasks: pd.DataFrame) -> pd.Series:
    """Tokens x seconds: the work a task took. Unknown when either is unknown (never zero)."""
    tokens = pd.to_numeric(tasks["total_tokens"], errors="coerce").astype("float64")
    seconds = pd.to_numeric(tasks["completion_time_s"], errors="coerce").astype("float64")
    return tokens * seconds


def trailing_share_above(values: pd.Series, groups: pd.Series, days: pd.Series, history: pd.DataFrame,
                         window_days: int, min_baseline: int) -> tuple[pd.Series, pd.Series]:
    """For each row: the share of its group's baseline values above its own value (ties count half).

    The baseline of a row of day D is every value of ``history`` (columns ``value``, ``group``,
    ``day``) of the same group in (D - window_days, D], the row itself excluded (``history`` must
    contain the rows being scored). Lower values (less effort, lower cost) thus score higher, and a
    task is compared only with its own kind. Returns (score, baseline size); the score is null
    when the value is unknown or the baseline has fewer than ``min_baseline`` values.
    """
    score = pd.Series(np.nan, index=values.index, dtype="float64")
    size = pd.Series(pd.NA, index=values.index, dtype="Int64")
    known_history = history[history["value"].notna()]
    # Each group's values ordered by day, with the days as day numbers: a row's window is the range
    # of the pool found by binary search, not a comparison of every date object of the pool (the
    # same values, so the same sorted baseline).
    by_group = {}
    for key, frame in known_history.groupby("group", sort=False):
        pool_days = _day_numbers(frame["day"])
        order = np.argsort(pool_days, kind="stable")
        by_group[key] = (pool_days[order], frame["value"].to_numpy(dtype="float64")[order])
    scored = values.notna()
    numbers = pd.Series(_day_numbers(days), index=days.index)
    for (group, number), rows in values[scored].groupby([groups[scored], numbers[scored]], sort=False):
        pool = by_group.get(group)
        if pool is None:
            continue
        pool_days, pool_values = pool
        lo, hi = np.searchsorted(pool_days, [number - window_days, number], side="right")
        baseline = np.sort(pool_values[lo:hi])
        n = len(baseline) - 1  # each scored row is itself in the baseline
        size[rows.index] = max(n, 0)
        if n < min_baseline:
            continue
        mine = rows.to_numpy(dtype="float64")
        below_or_equal = np.searchsorted(baseline, mine, side="right")
        below = np.searchsorted(baseline, mine, side="left")
        above = len(baseline) - below_or_equal
        ties = below_or_equal - below - 1  # not counting the row itself
        score[rows.index] = (above + 0.5 * ties) / n
    return score, size


def _day_numbers(days: pd.Series) -> np.ndarray:
    """Dates (``datetime.date`` or midnight timestamps) as day numbers (days since 1970-01-01)."""
    return pd.to_datetime(days).to_numpy(dtype="datetime64[D]").astype(np.int64)


def task_costs(tasks: pd.DataFrame, prices: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(cost_usd, cost_source): the reported cost, else tokens x the price effective on the
    completion day for the provider and model, else unknown.

    ``prices`` has provider, model, effective_from (date), input_usd_per_mtok, output_usd_per_mtok.
    A price row applies from its date until the next row of the same provider and model.
    """
    reported = pd.to_numeric(tasks["cost_usd"], errors="coerce").astype("float64")
    cost = reported.copy()
    source = pd.Series(np.where(reported.notna(), REPORTED, UNKNOWN), index=tasks.index, dtype=object)
    price_in, price_out = effective_prices(tasks["provider"], tasks["model"], tasks["partition_date"], prices)
    inputs = pd.to_numeric(tasks["input_tokens"], errors="coerce").astype("float64")
    outputs = pd.to_numeric(tasks["output_tokens"], errors="coerce").astype("float64")
    computed = (inputs * price_in + outputs * price_out) / 1e6
    fill = reported.isna() & computed.notna()
    cost[fill] = computed[fill]
    source[fill] = PRICE_TABLE
    return cost, source


def effective_prices(providers: pd.Series, models: pd.Series, days: pd.Series,
                     prices: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(input, output) USD per million tokens effective on each day; NaN where there is no price."""
    result_in = pd.Series(np.nan, index=providers.index, dtype="float64")
    result_out = result_in.copy()
    if prices.empty:
        return result_in, result_out
    ordered = prices.assign(effective_from=pd.to_datetime(prices["effective_from"])).sort_values("effective_from")
    for (provider, model), rows in pd.DataFrame({"p": providers, "m": models, "d": days}).groupby(["p", "m"]):
        table = ordered[(ordered["provider"] == provider) & (ordered["model"] == model)]
        if table.empty:
            continue
        position = np.searchsorted(table["effective_from"].to_numpy(), pd.to_datetime(rows["d"]).to_numpy(),
                                   side="right") - 1
        valid = position >= 0
        picked = table.iloc[position[valid]]
        result_in[rows.index[valid]] = picked["input_usd_per_mtok"].to_numpy(dtype="float64")
        result_out[rows.index[valid]] = picked["output_usd_per_mtok"].to_numpy(dtype="float64")
    return result_in, result_out


def user_scores(tasks: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """User ratings of each task (its own ``user_rating`` and its ``feedback`` events), as
    user_score = mean of (rating - 1) / 4, user_rating_count, feedback_type (the latest feedback
    event's type, else the task's) and feedback_count."""
    ratings = [tasks[["task_id", "user_rating"]].dropna()]
    own_type = tasks.set_index("task_id")["feedback_type"]
    if not feedback.empty:
        ratings.append(feedback[["task_id", "user_rating"]].dropna())
    all_ratings = pd.concat(ratings, ignore_index=True)
    all_ratings["user_rating"] = pd.to_numeric(all_ratings["user_rating"]).astype("float64")
    by_task = all_ratings.groupby("task_id")["user_rating"]
    mean_rating, count = by_task.mean(), by_task.count()
    result = pd.DataFrame(index=tasks.index)
    result["user_score"] = (tasks["task_id"].map(mean_rating) - 1.0) / 4.0
    result["user_rating_count"] = tasks["task_id"].map(count).fillna(0).astype(int)
    latest_type = pd.Series(dtype=object)
    feedback_count = pd.Series(dtype="int64")
    if not feedback.empty:
        ordered = feedback.sort_values(["created_at", "feedback_id"])
        latest_type = ordered.dropna(subset=["feedback_type"]).groupby("task_id")["feedback_type"].last()
        feedback_count = feedback.groupby("task_id").size()
    chosen = tasks["task_id"].map(latest_type)
    result["feedback_type"] = chosen.where(chosen.notna(), tasks["task_id"].map(own_type)).astype(object)
    result["feedback_type"] = result["feedback_type"].where(result["feedback_type"].notna(), None)
    result["feedback_count"] = tasks["task_id"].map(feedback_count).fillna(0).astype(int)
    return result


def code_review_scores(tasks: pd.DataFrame) -> pd.Series:
    """Mean of the code review signals a task has: test pass rate (passed / (passed + failed), when
    any test ran), coverage (0..1), and 1 / (1 + lint errors). Null without any of them."""
    passed = _numeric(tasks, "code_review_tests_passed")
    failed = _numeric(tasks, "code_review_tests_failed")
    ran = passed.fillna(0) + failed.fillna(0)
    pass_rate = (passed.fillna(0) / ran).where((passed.notna() | failed.notna()) & (ran > 0))
    coverage = _numeric(tasks, "code_review_coverage")
    lint = 1.0 / (1.0 + _numeric(tasks, "code_review_lint_errors"))
    return pd.concat([pass_rate, coverage, lint], axis=1).mean(axis=1, skipna=True)


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def evaluation_scores(evaluations: pd.DataFrame) -> pd.Series:
    """An evaluation's score: the mean of the dimensions it gave (accuracy, relevance, completeness)."""
    return evaluations[EVALUATION_DIMENSIONS].apply(pd.to_numeric, errors="coerce").mean(axis=1, skipna=True)


def leniency_offsets(evaluations: pd.DataFrame, prior_reviews: float) -> pd.Series:
    """Per evaluator: how much higher than everyone's mean their scores run, shrunk by n / (n + prior).

    A reviewer who gives everyone 0.9 where the mean is 0.7 has an offset near +0.2, so their 0.9
    counts as an ordinary review, not as praise. ``evaluations`` needs evaluator_agent_id and score.
    """
    if evaluations.empty:
        return pd.Series(dtype="float64")
    overall = evaluations["score"].mean()
    stats = evaluations.groupby("evaluator_agent_id")["score"].agg(["mean", "count"])
    return (stats["mean"] - overall) * stats["count"] / (stats["count"] + prior_reviews)


def peer_scores(tasks: pd.DataFrame, evaluations: pd.DataFrame, window: pd.DataFrame,
                prior_reviews: float) -> pd.DataFrame:
    """peer_score (mean of leniency-corrected evaluation scores, clipped to 0..1) and
    peer_review_count per task.

    ``evaluations`` are the reviews of ``tasks``; ``window`` the reviews the leniency of each
    evaluator is measured on (all reviews of the trailing leniency window). Reviews of an agent by
    itself never count, even if one slipped through.
    """
    result = pd.DataFrame({"peer_score": np.nan, "peer_review_count": 0}, index=tasks.index)
    if evaluations.empty:
        return result
    reviews = evaluations[evaluations["evaluator_agent_id"] != evaluations["evaluated_agent_id"]].copy()
    reviews["score"] = evaluation_scores(reviews)
    reviews = reviews[reviews["score"].notna()]
    history = window[window["evaluator_agent_id"] != window["evaluated_agent_id"]].copy()
    history["score"] = evaluation_scores(history)
    offsets = leniency_offsets(history[history["score"].notna()], prior_reviews)
    reviews["corrected"] = (reviews["score"] - reviews["evaluator_agent_id"].map(offsets).fillna(0.0)).clip(0, 1)
    by_task = reviews.groupby("task_id")["corrected"]
    result["peer_score"] = tasks["task_id"].map(by_task.mean()).astype("float64")
    result["peer_review_count"] = tasks["task_id"].map(by_task.count()).fillna(0).astype(int)
    return result


def reviewer_agreement(evaluations: pd.DataFrame) -> dict[str, float | int | None]:
    """Agreement between reviewers of the same task: Krippendorff's alpha (interval metric) and the
    mean absolute difference between two reviews of one task, over tasks with two or more reviews.

    Alpha is 1 for perfect agreement, 0 for agreement no better than chance, and null when there
    are no pairs or no variation at all.
    """
    scored = evaluations.assign(score=evaluation_scores(evaluations)).dropna(subset=["score"])
    units = [group.to_numpy(dtype="float64") for _, group in scored.groupby("task_id")["score"] if len(group) >= 2]
    if not units:
        return {"tasks_with_several_reviews": 0, "krippendorff_alpha": None, "mean_abs_difference": None}
    pairable = np.concatenate(units)
    n = len(pairable)
    observed = sum(_sum_squared_differences(u) / (len(u) - 1) for u in units) / n
    expected = _sum_squared_differences(pairable) / (n * (n - 1))
    pair_differences = np.concatenate([np.abs(u[:, None] - u[None, :])[np.triu_indices(len(u), 1)] for u in units])
    return {
        "tasks_with_several_reviews": len(units),
        "krippendorff_alpha": None if expected <= 1e-12 else float(1.0 - observed / expected),
        "mean_abs_difference": float(pair_differences.mean()),
    }


def _sum_squared_differences(values: np.ndarray) -> float:
    """Sum over ordered pairs i != j of (v_i - v_j)^2, in O(n): 2n * sum(v^2) - 2 * sum(v)^2."""
    return float(2 * len(values) * np.square(values).sum() - 2 * values.sum() ** 2)
