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

from perf_pipeline.aggregates import rolling
from perf_pipeline.aggregates.rolling import Groups, range_sums
from perf_pipeline.aggregates.rollups import FAILED_STATUSES, exact_sums
from perf_pipeline.aggregates.trends import IMPROVING, TREND_COLUMNS
from perf_pipeline.aggregates.windows import INSUFFICIENT, OK

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
    """(project_summaries, project_agent_stats) rows, every as-of day and window in one pass.

    rollups: ``project`` and ``project_agent`` rollups of the longest window's days; spans: per project
    and day, first_task_at and last_task_at of all history up to the last as-of day (a project's
    span does not end with the window); agent_trends: agents' trend rows of the as-of days.
    """
    projects = rollups[rollups["entity_type"] == "project"]
    pairs = rollups[rollups["entity_type"] == "project_agent"]
    if projects.empty or not as_of:
        return pd.DataFrame(columns=PROJECT_COLUMNS), pd.DataFrame(columns=PROJECT_AGENT_COLUMNS)
    days = np.asarray(as_of, dtype=object)
    totals, _ = _window_sums(projects, ["project_id"], days, windows, min_points)
    per_agent, pair_sums = _window_sums(pairs, ["project_id", "agent_id"], days, windows, min_points)
    ok = per_agent["status"] == OK
    per_agent["avg_overall_score"] = (pair_sums["sum_overall_score"] / pair_sums["n_overall_score"].where(
        pair_sums["n_overall_score"] > 0)).where(ok)
    per_agent["innovation_count"] = per_agent["innovation_count"].where(ok)
    window_keys = ["as_of_date", "window_days", "project_id"]
    agents = per_agent.groupby(window_keys, sort=False).size().rename("n_agents").reset_index()
    totals = (totals.merge(agents, on=window_keys, how="left")
              .merge(_spans_as_of(spans, days), on=["as_of_date", "project_id"], how="left")
              .merge(_most_improved_per_project(per_agent, agent_trends), on=window_keys, how="left"))
    return totals[PROJECT_COLUMNS], per_agent[PROJECT_AGENT_COLUMNS]


def _window_sums(rollups: pd.DataFrame, keys: list[str], days: np.ndarray, windows: Sequence[int],
                 min_points: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feedback rows (``_feedback``) and the sums behind them, per as-of day, window and ``keys``
    with tasks in the window, in that order."""
    groups = Groups.of(rollups, keys)
    found = rolling.windows(groups, days, sorted(windows))
    sums = range_sums(groups.rows, PROJECT_SUMS, found.lo, found.hi)
    rows = _feedback(sums, min_points)
    rows.insert(0, "window_days", found.window_days)
    rows.insert(0, "as_of_date", days[found.as_of])
    for position, key in enumerate(keys):
        rows.insert(2 + position, key, groups.keys[key].to_numpy()[found.group])
    return rows, sums


def _spans_as_of(spans: pd.DataFrame, days: np.ndarray) -> pd.DataFrame:
    """Per as-of day and project with a span row up to that day: the earliest first_task_at and the
    latest last_task_at of those rows."""
    if spans.empty:
        return pd.DataFrame(columns=["as_of_date", "project_id", "first_task_at", "last_task_at"])
    groups = Groups.of(spans, ["project_id"])
    found = rolling.windows(groups, days, [max(days).toordinal()])  # every row up to the day
    by_group = groups.rows.groupby(groups.group, sort=False)
    last_row = found.hi - 1
    return pd.DataFrame({
        "as_of_date": days[found.as_of], "project_id": groups.keys["project_id"].to_numpy()[found.group],
        "first_task_at": by_group["first_task_at"].cummin().to_numpy()[last_row],
        "last_task_at": by_group["last_task_at"].cummax().to_numpy()[last_row]})


def _most_improved_per_project(per_agent: pd.DataFrame, agent_trends: pd.DataFrame) -> pd.DataFrame:
    """Per as-of day, window and project, the most improved (``rankings.most_improved``: the steepest
    improving overall-score trend; ties by relative change, then name) of the agents that worked on
    it in the window."""
    columns = ["as_of_date", "window_days", "project_id", "most_improved_agent", "most_improved_slope"]
    trends = agent_trends.reindex(columns=TREND_COLUMNS)
    improving = trends[(trends["metric"] == "avg_overall_score") & (trends["direction"] == IMPROVING)]
    if improving.empty:
        return pd.DataFrame(columns=columns)
    candidates = per_agent[["as_of_date", "window_days", "project_id", "agent_id"]].merge(
        improving[["as_of_date", "window_days", "entity_id", "slope_per_day", "relative_change"]],
        left_on=["as_of_date", "window_days", "agent_id"], right_on=["as_of_date", "window_days", "entity_id"])
    best = (candidates.sort_values(["slope_per_day", "relative_change", "entity_id"], ascending=[False, False, True],
                                   kind="stable")
            .drop_duplicates(["as_of_date", "window_days", "project_id"]))
    return best.rename(columns={"agent_id": "most_improved_agent", "slope_per_day": "most_improved_slope"})[columns]


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
    """Node performance rows per as-of day and window (every window in one pass, ``rolling.py``), for
    the agents and nodes with steps in the window; below ``min_points`` steps, null metrics."""
    if rollups.empty or not as_of:
        return pd.DataFrame(columns=NODE_COLUMNS)
    groups = Groups.of(rollups, ["agent_id", "node"])
    found = rolling.windows(groups, as_of, sorted(windows))
    sums = range_sums(groups.rows, NODE_ROLLUP_COLUMNS[3:], found.lo, found.hi)
    out = sums[["n_steps", "n_status_known", "n_duration", "n_tokens"]].astype(np.int64)
    enough = out["n_steps"] >= min_points
    out["failure_rate"] = (sums["n_failed"] / sums["n_status_known"].where(sums["n_status_known"] > 0))
    out["avg_duration_s"] = sums["sum_duration_s"] / sums["n_duration"].where(sums["n_duration"] > 0)
    out["avg_tokens"] = sums["sum_tokens"] / sums["n_tokens"].where(sums["n_tokens"] > 0)
    out[["failure_rate", "avg_duration_s", "avg_tokens"]] = out[
        ["failure_rate", "avg_duration_s", "avg_tokens"]].where(enough, axis=0)
    out["status"] = np.where(enough, OK, INSUFFICIENT)
    out = pd.concat([groups.keys.iloc[found.group].reset_index(drop=True), out], axis=1)
    out["as_of_date"] = np.asarray(as_of, dtype=object)[found.as_of]
    out["window_days"] = found.window_days
    return out[NODE_COLUMNS]
