"""Rankings: the agent leaderboard, the most improved agent, and provider/model rankings per task type.

Nothing is ranked on thin evidence: an agent needs a window with at least ``min_points`` tasks
(``window_stats`` status ok) and an overall score; a provider/model needs ``min_tasks`` tasks with
known quality, cost and latency. The others are listed, unranked, with the reason.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from perf_pipeline.aggregates import rolling
from perf_pipeline.aggregates.rolling import Groups, range_sums
from perf_pipeline.aggregates.trends import IMPROVING, TREND_COLUMNS
from perf_pipeline.aggregates.windows import OK, windowed_metrics

RANKED, NO_SCORES = "ranked", "no_scores"
LEADERBOARD_COLUMNS = ["as_of_date", "window_days", "agent_id", "rank", "status", "department", "n_tasks",
                       "n_overall", "avg_overall_score", "avg_quality_score", "success_rate", "avg_cost_per_task",
                       "total_cost_usd"]
MOST_IMPROVED_COLUMNS = ["as_of_date", "window_days", "agent_id", "n_points", "slope_per_day", "slope_low",
                         "slope_high", "relative_change", "mann_kendall_p", "candidates", "agents_evaluated"]
RANKING_COLUMNS = ["as_of_date", "task_type", "provider", "model", "window_days", "rank", "status", "n_tasks",
                   "n_quality", "n_cost", "avg_quality_score", "avg_cost_per_task", "p50_response_time_ms",
                   "success_rate", "utility"]


def competition_ranks(keys: Sequence[tuple]) -> list[int]:
    """Ranks of already sorted keys, equal keys sharing the best rank (1, 2, 2, 4)."""
    ranks: list[int] = []
    for position, key in enumerate(keys, start=1):
        ranks.append(ranks[-1] if ranks and key == keys[position - 2] else position)
    return ranks


def main_departments(department_agents: pd.DataFrame, as_of: Sequence[dt.date],
                     windows: Sequence[int]) -> pd.DataFrame:
    """Per as-of day, window and agent: the department of most of its tasks in the window (ties: the
    first by name), from ``department_agent`` rollups; columns as_of_date, window_days, agent_id,
    department."""
    columns = ["as_of_date", "window_days", "agent_id", "department"]
    if department_agents.empty or not as_of:
        return pd.DataFrame(columns=columns)
    groups = Groups.of(department_agents, ["agent_id", "department"])
    found = rolling.windows(groups, as_of, sorted(set(windows)))
    tasks = pd.DataFrame({"as_of_date": np.asarray(as_of, dtype=object)[found.as_of],
                          "window_days": found.window_days,
                          "agent_id": groups.keys["agent_id"].to_numpy()[found.group],
                          "department": groups.keys["department"].to_numpy()[found.group],
                          "n_tasks": range_sums(groups.rows, ["n_tasks"], found.lo, found.hi)["n_tasks"]})
    tasks = tasks.sort_values(["as_of_date", "window_days", "agent_id", "n_tasks", "department"],
                              ascending=[True, True, True, False, True], kind="stable")
    return tasks.drop_duplicates(["as_of_date", "window_days", "agent_id"])[columns]


def leaderboard(agent_stats: pd.DataFrame, department_agents: pd.DataFrame) -> pd.DataFrame:
    """Leaderboard rows from agents' ``window_stats`` rows (any as-of days and windows).

    Ranked: status ok and a known average overall score, by that score, ties by more tasks; equal on
    both, equal rank. Unranked agents come after, with status insufficient_data or no_scores.
    """
    if agent_stats.empty:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    frames = []
    departments = main_departments(department_agents, sorted(set(agent_stats["as_of_date"])),
                                   sorted(set(agent_stats["window_days"])))
    departments = departments.set_index(["as_of_date", "window_days", "agent_id"])["department"]
    for (day, window), stats in agent_stats.groupby(["as_of_date", "window_days"], sort=True):
        board = stats.rename(columns={"entity_id": "agent_id"}).copy()
        eligible = (board["status"] == OK) & board["avg_overall_score"].notna()
        board["status"] = np.where(eligible, RANKED, np.where(board["status"] == OK, NO_SCORES, board["status"]))
        board["_ranked"] = eligible
        board = board.sort_values(["_ranked", "avg_overall_score", "n_tasks", "agent_id"],
                                  ascending=[False, False, False, True], kind="stable", na_position="last")
        ranked = board["_ranked"].to_numpy()
        keys = list(zip(board["avg_overall_score"], board["n_tasks"], strict=True))[: int(ranked.sum())]
        board["rank"] = pd.array(competition_ranks(keys) + [None] * int((~ranked).sum()), dtype="Int64")
        board["department"] = board["agent_id"].map(
            departments.xs((day, window), level=["as_of_date", "window_days"]) if (day, window) in departments.index
            else pd.Series(dtype=object))
        frames.append(board)
    return pd.concat(frames, ignore_index=True)[LEADERBOARD_COLUMNS]


def most_improved(agent_trends: pd.DataFrame, as_of: Sequence[dt.date], windows: Sequence[int],
                  metric: str = "avg_overall_score") -> pd.DataFrame:
    """Per as-of day and window, the agent whose ``metric`` trend is improving (significant: see
    trends.py) with the steepest slope; ties by relative change, then name. A row with no agent
    when none qualifies."""
    trends = agent_trends.reindex(columns=TREND_COLUMNS)  # an empty input has the columns too
    trends = trends[trends["metric"] == metric]
    # Each (day, window)'s rows found once (in their order), not by comparing every row's date again
    # for each of them.
    parts = dict(tuple(trends.groupby(["as_of_date", "window_days"], sort=False))) if not trends.empty else {}
    rows = []
    for day in as_of:
        for window in windows:
            part = parts.get((day, window), trends.iloc[0:0])
            evaluated = int(part["slope_per_day"].notna().sum())
            improving = part[part["direction"] == IMPROVING]
            row = {"as_of_date": day, "window_days": window, "candidates": len(improving),
                   "agents_evaluated": evaluated}
            if not improving.empty:
                best = improving.sort_values(["slope_per_day", "relative_change", "entity_id"],
                                             ascending=[False, False, True], kind="stable").iloc[0]
                row.update(agent_id=best["entity_id"], **{c: best[c] for c in (
                    "n_points", "slope_per_day", "slope_low", "slope_high", "relative_change", "mann_kendall_p")})
            rows.append(row)
    return pd.DataFrame(rows, columns=MOST_IMPROVED_COLUMNS)


def utility(quality: float, cost_usd: float, latency_ms: float, reference_cost: float, reference_latency: float, *,
            quality_per_cost_doubling: float, quality_per_latency_doubling: float, cost_floor_usd: float,
            latency_floor_ms: float) -> float:
    """quality - a * log2(cost / reference cost) - b * log2(latency / reference latency).

    Each doubling of the cost per task costs ``a`` quality points, each doubling of the median
    response time ``b``: an exchange rate a stakeholder can read and change. The references (the
    task type's median candidate) only centre the values near the quality scale: the difference
    between two candidates, and so the ranking, does not depend on them or on the other candidates.
    Costs and latencies below their floors count as the floor, so a free model is not infinitely
    better.
    """
    def doublings(value: float, reference: float, floor: float) -> float:
        return math.log2(max(value, floor) / max(reference, floor))

    return (quality - quality_per_cost_doubling * doublings(cost_usd, reference_cost, cost_floor_usd)
            - quality_per_latency_doubling * doublings(latency_ms, reference_latency, latency_floor_ms))


def provider_rankings(model_rollups: pd.DataFrame, as_of: Sequence[dt.date], *, window_days: int = 30,
                      min_tasks: int = 5, quality_per_cost_doubling: float = 0.05,
                      quality_per_latency_doubling: float = 0.02, cost_floor_usd: float = 0.0001,
                      latency_floor_ms: float = 1.0) -> pd.DataFrame:
    """Ranking rows from ``model_task_type`` rollups: per as-of day and task type, every provider/model
    of the window, ranked by ``utility`` when it has ``min_tasks`` tasks and a known quality, cost and
    median response time; ties by quality, then tasks."""
    keys = ["task_type", "provider", "model"]
    frames = []
    every_day = windowed_metrics(model_rollups, keys, as_of, [window_days])
    for day, metrics in every_day.groupby("as_of_date", sort=True):
        metrics = metrics.drop(columns=["as_of_date", "window_days"]).reset_index(drop=True)
        metrics["status"] = np.select(
            [metrics["n_tasks"] < min_tasks, metrics["avg_quality_score"].isna(), metrics["avg_cost_per_task"].isna(),
             metrics["p50_response_time_ms"].isna()],
            ["insufficient_data", "unknown_quality", "unknown_cost", "unknown_latency"], RANKED)
        metrics["utility"], metrics["rank"] = np.nan, pd.array([None] * len(metrics), dtype="Int64")
        for _, group in metrics[metrics["status"] == RANKED].groupby("task_type", sort=True):
            reference_cost = float(group["avg_cost_per_task"].median())
            reference_latency = float(group["p50_response_time_ms"].median())
            values = [utility(q, c, lat, reference_cost, reference_latency,
                              quality_per_cost_doubling=quality_per_cost_doubling,
                              quality_per_latency_doubling=quality_per_latency_doubling,
                              cost_floor_usd=cost_floor_usd, latency_floor_ms=latency_floor_ms)
                      for q, c, lat in zip(group["avg_quality_score"], group["avg_cost_per_task"],
                                           group["p50_response_time_ms"], strict=True)]
            order = group.assign(utility=values).sort_values(
                ["utility", "avg_quality_score", "n_tasks", "provider", "model"],
                ascending=[False, False, False, True, True], kind="stable")
            metrics.loc[order.index, "utility"] = order["utility"]
            metrics.loc[order.index, "rank"] = competition_ranks(list(zip(
                order["utility"], order["avg_quality_score"], order["n_tasks"], strict=True)))
        metrics.insert(0, "as_of_date", day)
        metrics["window_days"] = window_days
        frames.append(metrics.sort_values(["task_type", "rank", "provider", "model"], na_position="last"))
    if not frames:
        return pd.DataFrame(columns=RANKING_COLUMNS)
    return pd.concat(frames, ignore_index=True)[RANKING_COLUMNS]
