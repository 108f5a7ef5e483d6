"""Assemble ``task_scores`` rows: every component of every task, then the configured composite.
Pure: the inputs are frames read by the asset, the judge's results included."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from perf_pipeline.scoring import components as c
from perf_pipeline.scoring.config import ScoringConfig
from perf_pipeline.scoring.strategies import quality_strategy

JUDGE_COLUMNS = ["judge_accuracy", "judge_relevance", "judge_completeness", "judge_status", "judge_error"]


def score_tasks(tasks: pd.DataFrame, history: pd.DataFrame, feedback: pd.DataFrame, evaluations: pd.DataFrame,
                leniency_window: pd.DataFrame, prices: pd.DataFrame, judged: pd.DataFrame,
                config: ScoringConfig) -> pd.DataFrame:
    """``task_scores`` rows for ``tasks``.

    history: task_events rows of the trailing baselines (every task of ``tasks`` among them);
    feedback / evaluations: feedback events and peer reviews (ingested and panel) of ``tasks``;
    leniency_window: reviews with the reviewed task's partition_date and the day they became known
    (known_on), of at least the ``peer_review.leniency_days`` before each day: a day's leniency is
    measured on its own trailing window, so a range gives the same scores as its days one by one;
    prices: price_table; judged: per task_id, the JUDGE_COLUMNS.
    """
    tasks = tasks.reset_index(drop=True)
    scores = tasks[["task_id", "partition_date", "agent_id", "provider", "model", "task_type", "status"]].copy()
    scores["effort"] = c.effort(tasks)
    scores["efficiency_score"], scores["efficiency_baseline_n"] = c.trailing_share_above(
        scores["effort"], tasks["task_type"], tasks["partition_date"], _baseline(history, c.effort(history)),
        config.efficiency.baseline_days, config.efficiency.min_baseline_tasks)
    scores["cost_usd"], scores["cost_source"] = c.task_costs(tasks, prices)
    history_cost, _ = c.task_costs(history, prices)
    scores["cost_score"], _ = c.trailing_share_above(
        scores["cost_usd"], tasks["task_type"], tasks["partition_date"], _baseline(history, history_cost),
        config.cost.baseline_days, config.cost.min_baseline_tasks)
    judge = judged.reindex(tasks["task_id"]).reset_index(drop=True)
    for column in JUDGE_COLUMNS:
        scores[column] = judge[column]
    scores["judge_score"] = scores[["judge_accuracy", "judge_relevance", "judge_completeness"]].mean(
        axis=1, skipna=False)
    scores = scores.join(_peer_scores_by_day(tasks, evaluations, leniency_window, config))
    scores = scores.join(c.user_scores(tasks, feedback))
    scores["code_review_score"] = c.code_review_scores(tasks)
    scores = scores.join(quality_strategy(config).combine(scores))
    return scores


def _baseline(history: pd.DataFrame, values: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"value": values, "group": history["task_type"], "day": history["partition_date"]})


def _peer_scores_by_day(tasks: pd.DataFrame, evaluations: pd.DataFrame, window: pd.DataFrame,
                        config: ScoringConfig) -> pd.DataFrame:
    days = config.peer_review.leniency_days
    parts = []
    for day, day_tasks in tasks.groupby("partition_date", sort=True):
        # Reviews of the trailing window's tasks, as known at the end of the day: a review written
        # later never changes an earlier day's leniency, so a re-run equals a clean run.
        trailing = window[(window["partition_date"] > day - dt.timedelta(days=days))
                          & (window["partition_date"] <= day) & (window["known_on"] <= day)] if not window.empty \
            else window
        parts.append(c.peer_scores(day_tasks, evaluations, trailing, config.peer_review.prior_reviews))
    return pd.concat(parts) if parts else pd.DataFrame({"peer_score": [], "peer_review_count": []})
