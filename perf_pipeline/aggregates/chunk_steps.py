"""What the aggregate assets do to each chunk of their range: read its inputs (the as-of days' longest
trailing window of history with them), compute its rows and replace them, in the chunk's transaction.

``warehouse.chunks.each_chunk`` runs these, in two worker processes at once in a backfill, so each is
a module-level function of a connection, the chunk's first and last day and picklable arguments,
returning only what the asset reports: the rows written per day (the figures per day) and a few
counts. A chunk reads its whole trailing span: the workers share the chunks, so none could carry
the history of the chunk before; reading the 89 days before four weeks of as-of days again costs a
fraction of computing them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Table

from perf_pipeline.aggregates.baselines import baselines as compute_baselines
from perf_pipeline.aggregates.checks import leaderboard_counts, rollups_counts, windows_counts
from perf_pipeline.aggregates.prompts import compare_prompt_versions
from perf_pipeline.aggregates.rankings import leaderboard as rank_agents
from perf_pipeline.aggregates.rankings import most_improved, provider_rankings
from perf_pipeline.aggregates.rollups import daily_rollups as compute_rollups
from perf_pipeline.aggregates.store import (
    read_collaboration,
    read_days,
    read_project_spans,
    read_rollups,
    read_scored_tasks,
    read_task_quality,
)
from perf_pipeline.aggregates.summaries import PROJECT_SUMS, node_performance, node_rollups, project_summaries
from perf_pipeline.aggregates.trends import TheilSenTrendStrategy, daily_metric_values
from perf_pipeline.aggregates.windows import SUMMED, RollingWindowStrategy
from perf_pipeline.config import MAX_WINDOW_DAYS
from perf_pipeline.partitions import days_between
from perf_pipeline.warehouse.db import replace_partition
from perf_pipeline.warehouse.schema import (
    anomalies,
    baselines,
    daily_metrics,
    daily_rollups,
    leaderboard,
    most_improved_agents,
    project_agent_stats,
    prompt_version_comparisons,
    task_steps,
    trends,
    window_stats,
)
from perf_pipeline.warehouse.schema import node_performance as node_performance_table
from perf_pipeline.warehouse.schema import node_rollups as node_rollups_table
from perf_pipeline.warehouse.schema import project_summaries as project_summaries_table
from perf_pipeline.warehouse.schema import provider_rankings as provider_rankings_table


@dataclass
class Written:
    """What a chunk wrote: per table, its rows per day (``as_of_date`` or ``date``); per named tally,
    the rows per value of a column; named counts (numbers, or sets of days); and what the asset's
    check counts of the chunk's days, in its transaction."""

    day_rows: dict[str, dict[dt.date, int]] = field(default_factory=dict)
    tallies: dict[str, pd.Series] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    check: Counter[str] = field(default_factory=Counter)  # what the asset's check counts (``checks.py``)

    def rows(self, table_name: str) -> int:
        return sum(self.day_rows[table_name].values())


def merge(parts: Sequence[Written]) -> Written:
    """The chunks' ``Written`` as one, the range's: rows per day and tallies added, counts and check
    counts summed (sets of days united)."""
    merged = Written()
    for part in parts:
        for name, day_rows in part.day_rows.items():
            merged.day_rows.setdefault(name, {}).update(day_rows)  # chunks hold distinct days
        for name, tally in part.tallies.items():
            merged.tallies[name] = merged.tallies[name].add(tally, fill_value=0) if name in merged.tallies else tally
        merged.check.update(part.check)
        for name, count in part.counts.items():
            if name not in merged.counts:
                merged.counts[name] = count
            elif isinstance(count, set):
                merged.counts[name] = merged.counts[name] | count
            else:
                merged.counts[name] += count
    return merged


def date_column(table: Table) -> str:
    return "as_of_date" if "as_of_date" in table.c else "date"


def replace(conn: Connection, table: Table, first: dt.date, last: dt.date, frame: pd.DataFrame,
            written: Written) -> pd.DataFrame:
    """Replace the rows of [first, last] (by as_of_date, or date) of ``table`` with ``frame``'s and note
    their number per day in ``written``; returns ``frame``."""
    column = date_column(table)
    replace_partition(conn, table, first, last, frame, date_column=column)
    written.day_rows[table.name] = frame[column].value_counts().to_dict() if not frame.empty else {}
    return frame


def _trailing(first: dt.date, days: int = MAX_WINDOW_DAYS) -> dt.date:
    """The first day of the longest window of the as-of day ``first``."""
    return first - dt.timedelta(days=days - 1)


def _tally(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].value_counts() if not frame.empty else pd.Series(dtype="int64")


def roll_up(conn: Connection, first: dt.date, last: dt.date) -> Written:
    written = Written()
    rollups = replace(conn, daily_rollups, first, last,
                      compute_rollups(read_scored_tasks(conn, first, last), read_collaboration(conn, first, last)),
                      written)
    written.check = rollups_counts(conn, first, last)
    written.tallies["entities"] = rollups.groupby("entity_type").size() if not rollups.empty \
        else pd.Series(dtype="int64")
    return written


def day_metrics(conn: Connection, first: dt.date, last: dt.date) -> Written:
    written = Written()
    replace(conn, daily_metrics, first, last, daily_metric_values(read_rollups(conn, first, last)), written)
    return written


def roll_up_nodes(conn: Connection, first: dt.date, last: dt.date) -> Written:
    written = Written()
    steps = read_days(conn, task_steps, "partition_date", first, last)
    replace(conn, node_rollups_table, first, last, node_rollups(steps), written)
    return written


def find_anomalies(conn: Connection, first: dt.date, last: dt.date, metrics: Sequence[str],
                   options: dict[str, Any]) -> Written:
    written = Written()
    daily = read_days(conn, daily_metrics, "date", first - dt.timedelta(days=options["baseline_days"]), last,
                      entity_type="provider_task_type")
    result = replace(conn, baselines, first, last,
                     compute_baselines(daily, days_between(first, last), metrics, **options), written)
    flagged = replace(conn, anomalies, first, last, result[result["is_anomaly"]] if not result.empty else result,
                      written)
    written.counts["rows_with_baseline"] = int(result["baseline_median"].notna().sum()) if not result.empty else 0
    written.counts["worse"] = int((flagged["direction"] == "worse").sum()) if not flagged.empty else 0
    return written


def window_figures(conn: Connection, first: dt.date, last: dt.date, strategy: RollingWindowStrategy) -> Written:
    written = Written()
    rollups = read_rollups(conn, _trailing(first), last, columns=[*SUMMED, "response_time_histogram"])
    stats = replace(conn, window_stats, first, last, strategy.compute(rollups, days_between(first, last)), written)
    written.counts["rows_ok"] = int((stats["status"] == "ok").sum()) if not stats.empty else 0
    written.check = windows_counts(conn, first, last, strategy.min_points)
    written.counts["rollup_days_read"] = set(rollups["date"].tolist())
    return written


def fit_trends(conn: Connection, first: dt.date, last: dt.date, strategy: TheilSenTrendStrategy) -> Written:
    written = Written()
    daily = read_days(conn, daily_metrics, "date", _trailing(first), last)
    result = replace(conn, trends, first, last, strategy.compute(daily, days_between(first, last)), written)
    written.tallies["direction"] = _tally(result, "direction")
    return written


def rank(conn: Connection, first: dt.date, last: dt.date) -> Written:
    written = Written()
    stats = read_days(conn, window_stats, "as_of_date", first, last, entity_type="agent")
    departments = read_rollups(conn, _trailing(first), last, entity_types=["department_agent"],
                               columns=["department", "agent_id", "n_tasks"])
    board = replace(conn, leaderboard, first, last, rank_agents(stats, departments), written)
    written.tallies["status"] = _tally(board, "status")
    written.check = leaderboard_counts(conn, first, last)
    return written


def pick_most_improved(conn: Connection, first: dt.date, last: dt.date, windows: Sequence[int]) -> Written:
    written = Written()
    agent_trends = read_days(conn, trends, "as_of_date", first, last, entity_type="agent", metric="avg_overall_score")
    best = replace(conn, most_improved_agents, first, last,
                   most_improved(agent_trends, days_between(first, last), list(windows)), written)
    written.counts["days_with_a_most_improved_agent"] = int(best["agent_id"].notna().sum())
    return written


def rank_providers(conn: Connection, first: dt.date, last: dt.date, options: dict[str, Any]) -> Written:
    written = Written()
    models = read_rollups(conn, _trailing(first, options["window_days"]), last, entity_types=["model_task_type"])
    ranked = replace(conn, provider_rankings_table, first, last,
                     provider_rankings(models, days_between(first, last), **options), written)
    written.tallies["status"] = _tally(ranked, "status")
    return written


def compare_prompts(conn: Connection, first: dt.date, last: dt.date, options: dict[str, Any]) -> Written:
    written = Written()
    scores = read_task_quality(conn, _trailing(first, options["window_days"]), last)
    compared = replace(conn, prompt_version_comparisons, first, last,
                       compare_prompt_versions(scores, days_between(first, last), **options), written)
    written.tallies["verdict"] = _tally(compared, "verdict")
    return written


def summarize_projects(conn: Connection, first: dt.date, last: dt.date, windows: Sequence[int],
                       min_points: int) -> Written:
    written = Written()
    rollups = read_rollups(conn, _trailing(first), last, entity_types=["project", "project_agent"],
                           columns=["project_id", "agent_id", *PROJECT_SUMS])
    agent_trends = read_days(conn, trends, "as_of_date", first, last, entity_type="agent", metric="avg_overall_score")
    summaries, per_agent = project_summaries(rollups, read_project_spans(conn, first, last), agent_trends,
                                             days_between(first, last), list(windows), min_points)
    replace(conn, project_summaries_table, first, last, summaries, written)
    replace(conn, project_agent_stats, first, last, per_agent, written)
    written.tallies["status"] = _tally(per_agent, "status")
    return written


def node_figures(conn: Connection, first: dt.date, last: dt.date, windows: Sequence[int], min_points: int) -> Written:
    written = Written()
    rollups = read_days(conn, node_rollups_table, "date", _trailing(first), last)
    performance = replace(conn, node_performance_table, first, last,
                          node_performance(rollups, days_between(first, last), list(windows), min_points), written)
    written.tallies["status"] = _tally(performance, "status")
    return written
