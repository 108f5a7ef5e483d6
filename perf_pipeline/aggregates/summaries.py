"""Project summaries and node performance.

A project summary as of day D and window W: the project's span (first and last task up to D), its
feedback rates and innovations in the window, the same per agent, and the agent of the project
with the steepest significant improving overall-score trend. Node performance: per agent and node
(a step inside the agent), steps, failure rate, average duration and tokens in the window, from
mergeable per-day node rollups, like every other window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from perf_pipeline.aggregates.rankings import most_improved
from perf_pipeline.aggregates.rollups import FAILED_STATUSES, exact_sums
from perf_pipeline.aggregates.windows import INSUFFICIENT, OK, in_window

FEEDBACK_RATES = {"correction_rate": "corrections", "enhancement_rate": "enhancements", "approval_rate": "approvals"}
PROJECT_COLUMNS = ["as_of_date", "window_days", "project_id", "first_task_at", "last_task_at", "n_tasks", "n_agents",
                   "n_feedback_typed", *FEEDBACK_RATES, "innovation_count", "most_improved_agent",
                   "most_improved_slope", "status"]
PROJECT_AGENT_COLUMNS = ["as_of_date", "window_days", "project_id", "agent_id", "n_tasks", "n_feedback_typed",
                         *FEEDBACK_RATES, "avg_overall_score", "innovation_count", "status"]
NODE_ROLLUP_COLUMNS = ["agent_id", "node", "date", "n_steps", "n_status_known", "n_failed", "n_duration", "n_tokens",
                       "sum_duration_s", "sum_tokens"]
NODE_COLUMNS = ["as_of_date", "window_days", "agent_id", "node", "n_steps", "failure_rate", "avg_duration_s",
                "avg_tokens", "n_status_known", "n_duration", "n_tokens", "status"]
PROJECT_SUMS = ["n_tasks", "feedback_typed", "corrections", "enhancements", "approvals", "innovations",
                  "sum_overall_score", "n_overall_score"]


def _feedback(sums: pd.DataFrame, min_points: int) -> pd.DataFrame:
    """Rates and counts from summed feedback columns; below ``min_points`` tasks, nulls."""
    out = pd.DataFrame(index=sums.index)
    out["n_tasks"] = sums["n_tasks"].astype(np.int64)
    out["n_feedback_typed"] = sums["feedback_typed"].astype(np.int64)
    enough = out["n_tasks"] >= min_points
    typed = sums["feedback_typed"].where(sums["feedback_typed"] > 0)
    for rate, column in FEEDBACK_RATES.items():
        out[rate] = (sums[column] / typed).where(enough)
    out["innovation_count"] = sums["innovations"].astype(np.int64)
    out["status"] = np.where(enough, OK, INSUFFICIENT)
    return out


def project_summaries(rollups: pd.DataFrame, spans: pd.DataFrame, agent_trends: pd.DataFrame,
                      as_of: Sequence[dt.date], windows: Sequence[int],
                      min_points: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(project_summaries, project_agent_stats) rows.

    rollups: ``project`` and ``project_agent`` rollups of the longest window's days; spans: per project
    and day, first_task_at and last_task_at of all history up to the last as-of day (a project's
    span does not end with the window); agent_trends: agents' trend rows of the as-of days.
    """
    summaries, agent_rows = [], []
    projects = rollups[rollups["entity_type"] == "project"]
    pairs = rollups[rollups["entity_type"] == "project_agent"]
    for day in as_of:
        span = spans[spans["date"] <= day].groupby("project_id").agg(
            first_task_at=("first_task_at", "min"), last_task_at=("last_task_at", "max"))
        for window in windows:
            inside = projects[in_window(projects["date"], day, window)]
            if inside.empty:
                continue
            totals = _feedback(exact_sums(inside.groupby("project_id", sort=True), PROJECT_SUMS), min_points)
            pair_part = pairs[in_window(pairs["date"], day, window)]
            pair_sums = exact_sums(pair_part.groupby(["project_id", "agent_id"], sort=True), PROJECT_SUMS)
            per_agent = _feedback(pair_sums, min_points)
            per_agent["avg_overall_score"] = (pair_sums["sum_overall_score"] / pair_sums["n_overall_score"].where(
                pair_sums["n_overall_score"] > 0)).where(per_agent["status"] == OK)
            per_agent["innovation_count"] = per_agent["innovation_count"].where(per_agent["status"] == OK)
            agent_rows.append(per_agent.reset_index().assign(as_of_date=day, window_days=window))
            totals["n_agents"] = per_agent.reset_index().groupby("project_id")["agent_id"].nunique()
            best = _most_improved_per_project(per_agent.reset_index(), agent_trends, day, window)
            totals = totals.join(span).join(best)
            summaries.append(totals.reset_index().assign(as_of_date=day, window_days=window))
    if not summaries:
        return pd.DataFrame(columns=PROJECT_COLUMNS), pd.DataFrame(columns=PROJECT_AGENT_COLUMNS)
    return (pd.concat(summaries, ignore_index=True)[PROJECT_COLUMNS],
            pd.concat(agent_rows, ignore_index=True)[PROJECT_AGENT_COLUMNS])


def _most_improved_per_project(per_agent: pd.DataFrame, agent_trends: pd.DataFrame, day: dt.date,
                               window: int) -> pd.DataFrame:
    """Per project, the most improved of the agents that worked on it in the window."""
    rows = {}
    for project_id, agents in per_agent.groupby("project_id", sort=True):
        trends = agent_trends[agent_trends["entity_id"].isin(set(agents["agent_id"]))]
        best = most_improved(trends, [day], [window]).iloc[0]
        rows[project_id] = {"most_improved_agent": best["agent_id"], "most_improved_slope": best["slope_per_day"]}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["most_improved_agent", "most_improved_slope"])


def node_rollups(steps: pd.DataFrame) -> pd.DataFrame:
    """Per agent, node and day (task_steps rows with partition_date): mergeable counts and sums."""
    if steps.empty:
        return pd.DataFrame(columns=NODE_ROLLUP_COLUMNS)
    duration = pd.to_numeric(steps["duration_s"], errors="coerce").astype("float64")
    tokens = pd.to_numeric(steps["tokens"], errors="coerce").astype("float64")
    facts = pd.DataFrame({
        "agent_id": steps["agent_id"], "node": steps["node"], "date": steps["partition_date"], "n_steps": 1,
        "n_status_known": steps["status"].notna().astype(int), "n_failed": steps["status"].isin(FAILED_STATUSES)
        .astype(int), "n_duration": duration.notna().astype(int), "n_tokens": tokens.notna().astype(int),
        "sum_duration_s": duration.fillna(0.0), "sum_tokens": tokens.fillna(0.0)})
    sums = exact_sums(facts.groupby(["agent_id", "node", "date"], sort=True), NODE_ROLLUP_COLUMNS[3:])
    return sums.reset_index()[NODE_ROLLUP_COLUMNS]


def node_performance(rollups: pd.DataFrame, as_of: Sequence[dt.date], windows: Sequence[int],
                     min_points: int = 5) -> pd.DataFrame:
    """Node performance rows per as-of day and window; below ``min_points`` steps, null metrics."""
    frames = []
    for day in as_of:
        for window in windows:
            part = rollups[in_window(rollups["date"], day, window)]
            if part.empty:
                continue
            sums = exact_sums(part.groupby(["agent_id", "node"], sort=True), NODE_ROLLUP_COLUMNS[3:])
            out = sums[["n_steps", "n_status_known", "n_duration", "n_tokens"]].astype(np.int64)
            enough = out["n_steps"] >= min_points
            out["failure_rate"] = (sums["n_failed"] / sums["n_status_known"].where(sums["n_status_known"] > 0))
            out["avg_duration_s"] = sums["sum_duration_s"] / sums["n_duration"].where(sums["n_duration"] > 0)
            out["avg_tokens"] = sums["sum_tokens"] / sums["n_tokens"].where(sums["n_tokens"] > 0)
            out[["failure_rate", "avg_duration_s", "avg_tokens"]] = out[
                ["failure_rate", "avg_duration_s", "avg_tokens"]].where(enough, axis=0)
            out["status"] = np.where(enough, OK, INSUFFICIENT)
            frames.append(out.reset_index().assign(as_of_date=day, window_days=window))
    if not frames:
        return pd.DataFrame(columns=NODE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[NODE_COLUMNS]
