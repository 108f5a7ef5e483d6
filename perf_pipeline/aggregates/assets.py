"""Aggregate assets: daily rollups, and as of each day D the rolling windows, trends, baselines and
anomalies computed from the rollups of the days before it.

Windows read only rollups (never tasks), so one new day costs the same however long the history
is. The ``TimeWindowPartitionMapping`` on each dependency states which days a day's figures read, so
the Dagster UI shows it and a changed day is rebuilt with the days whose windows hold it
(``automation.py``), and no others.
"""

import datetime as dt
from collections.abc import Iterator
from functools import partial
from typing import Any

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
)
from sqlalchemy import Connection, Table

from perf_pipeline.aggregates.baselines import baselines as compute_baselines
from perf_pipeline.aggregates.checks import (
    leaderboard_check,
    leaderboard_check_spec,
    rollups_check,
    rollups_check_spec,
    windows_check,
    windows_check_spec,
)
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
from perf_pipeline.daily import (
    daily_asset,
    daily_multi_asset,
    day_chunks,
    partition_days,
    range_metadata,
    record_days,
)
from perf_pipeline.jobs import AGGREGATES
from perf_pipeline.partitions import days_between, trailing_days
from perf_pipeline.resources import AggregatesResource, WarehouseResource
from perf_pipeline.warehouse.db import TrailingDays, replace_partition
from perf_pipeline.warehouse.schema import (
    anomalies,
    baselines,
    daily_metrics,
    daily_rollups,
    leaderboard,
    most_improved_agents,
    project_agent_stats,
    prompt_version_comparisons,
    row_order,
    task_steps,
    trends,
    window_stats,
)
from perf_pipeline.warehouse.schema import (
    node_performance as node_performance_table,
)
from perf_pipeline.warehouse.schema import (
    node_rollups as node_rollups_table,
)
from perf_pipeline.warehouse.schema import (
    project_summaries as project_summaries_table,
)
from perf_pipeline.warehouse.schema import (
    provider_rankings as provider_rankings_table,
)


def _history(asset_key: str = "daily_rollups", days: int = MAX_WINDOW_DAYS) -> AssetDep:
    """``asset_key`` of the ``days`` days ending with the partition's day."""
    return AssetDep(asset_key, partition_mapping=trailing_days(days))


def _trailing_table(table: Table) -> TrailingDays:
    """The rows of ``table`` (by ``date``, in key order as ``read_days``) that the longest window of
    the as-of days of a chunk covers."""
    return TrailingDays(lambda conn, first, last: read_days(conn, table, "date", first, last), MAX_WINDOW_DAYS,
                        "date", row_order(table))


def _write(context: AssetExecutionContext, conn: Connection, table: Table, first: dt.date, last: dt.date,
           frame: pd.DataFrame) -> int:
    """Replace the rows of [first, last] (by as_of_date, or date) of ``table`` (the asset of the same
    name) with ``frame``'s, and record each day's row count."""
    date_column = "as_of_date" if "as_of_date" in table.c else "date"
    record_days(context, table.name, frame if not frame.empty else pd.DataFrame(columns=[date_column]), date_column,
                days=(first, last))
    return replace_partition(conn, table, first, last, frame, date_column=date_column)


@daily_asset(name="daily_rollups", group_name=AGGREGATES,
             deps=["task_events", "task_scores", "collaboration_scores"],
             check_specs=[rollups_check_spec()],
             description=("Per entity (agent, department, project, provider, model, task type, provider/task type, "
                          "prompt version) and day: counts and sums from which every window metric is derived."))
def daily_rollups_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
    first, last = partition_days(context)
    rows, entities = 0, pd.Series(dtype="int64")
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last):  # a week at a time: memory follows a week's tasks
            rollups = compute_rollups(read_scored_tasks(conn, start, end), read_collaboration(conn, start, end))
            rows += _write(context, conn, daily_rollups, start, end, rollups)
            entities = entities.add(rollups.groupby("entity_type").size(), fill_value=0)
        check = rollups_check(conn, first, last)
    yield MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": rows,
        **{f"entities_{kind}": int(n) for kind, n in entities.items()}}))
    yield check


@daily_asset(name="daily_metrics", group_name=AGGREGATES,
             deps=["daily_rollups"],
             description=("Per entity and day: that day's metrics, the points of the trends and baselines (computed "
                          "once per day, not once per window that holds the day)."))
def daily_metrics_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    first, last = partition_days(context)
    with warehouse.engine().begin() as conn:
        rows = _write(context, conn, daily_metrics, first, last, daily_metric_values(read_rollups(conn, first, last)))
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}", "rows": rows}))


@daily_asset(name="window_stats", group_name=AGGREGATES,
             deps=[_history()], check_specs=[windows_check_spec()],
             description=("As of each day D, per entity and window W (7, 30, 90 days): the metrics of the tasks of "
                          "(D - W, D]; fewer than 5 tasks: insufficient_data with null metrics."))
def window_stats_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                       aggregates: AggregatesResource) -> Iterator[Any]:
    first, last = partition_days(context)
    config = aggregates.config()
    strategy = RollingWindowStrategy(config.windows, config.min_points)
    rows = ok = 0
    days_read: set[dt.date] = set()
    history = TrailingDays(partial(read_rollups, columns=[*SUMMED, "response_time_histogram"]), MAX_WINDOW_DAYS,
                           "date")
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # 4 weeks of as-of days at a time
            rollups = history.read(conn, start, end)
            stats = strategy.compute(rollups, days_between(start, end))
            rows += _write(context, conn, window_stats, start, end, stats)
            ok += int((stats["status"] == "ok").sum()) if not stats.empty else 0
            days_read.update(rollups["date"].tolist())
        check = windows_check(conn, first, last, config.min_points)
    yield MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": rows, "rows_ok": ok,
        "rows_insufficient_data": rows - ok, "rollup_days_read": len(days_read)}))
    yield check


@daily_asset(name="trends", group_name=AGGREGATES,
             deps=[_history("daily_metrics")],
             description=("As of each day, per entity, window and metric: Theil-Sen slope through the daily values "
                          "with its 95 % interval, Mann-Kendall p-value and direction (improving, stable, declining, "
                          "insufficient_data)."))
def trends_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                 aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    config = aggregates.config()
    strategy = TheilSenTrendStrategy(config.windows, config.trend_metrics, config.min_points,
                                     config.trend_min_relative_change)
    rows, directions = 0, pd.Series(dtype="int64")
    history = _trailing_table(daily_metrics)
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # 4 weeks of as-of days at a time
            daily = history.read(conn, start, end)
            result = strategy.compute(daily, days_between(start, end))
            rows += _write(context, conn, trends, start, end, result)
            directions = _tally(directions, result, "direction")
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}", "rows": rows,
                                       **_named(directions, "direction")}))


@daily_multi_asset(
    name="baselines_and_anomalies", group_name=AGGREGATES,
    specs=[AssetSpec("baselines", group_name=AGGREGATES,
                     deps=[_history("daily_metrics", MAX_WINDOW_DAYS + 1)], description=(
               "Per provider/task type, day and metric: the value against the median and MAD of the previous "
               "30 days (at least 7 needed), and its robust z-score.")),
           AssetSpec("anomalies", group_name=AGGREGATES, deps=["baselines"], description=(
               "The baseline rows whose |robust z| exceeds the threshold (3.5 by default)."))])
def baselines_and_anomalies(context: AssetExecutionContext, warehouse: WarehouseResource,
                            aggregates: AggregatesResource) -> Iterator[MaterializeResult]:
    first, last = partition_days(context)
    config = aggregates.config()
    with warehouse.engine().begin() as conn:
        daily = read_days(conn, daily_metrics, "date", first - dt.timedelta(days=config.baseline_days), last,
                          entity_type="provider_task_type")
        result = compute_baselines(daily, days_between(first, last), config.anomaly_metrics,
                                   baseline_days=config.baseline_days, min_baseline_days=config.min_baseline_days,
                                   threshold=config.anomaly_threshold)
        flagged = result[result["is_anomaly"]] if not result.empty else result
        _write(context, conn, baselines, first, last, result)
        _write(context, conn, anomalies, first, last, flagged)
    yield MaterializeResult(asset_key="baselines", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": len(result),
        "rows_with_baseline": int(result["baseline_median"].notna().sum()) if not result.empty else 0}))
    yield MaterializeResult(asset_key="anomalies", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "anomalies": len(flagged),
        "worse": int((flagged["direction"] == "worse").sum()) if not flagged.empty else 0}))


def _tally(counts: pd.Series, frame: pd.DataFrame, column: str) -> pd.Series:
    """``counts`` (rows per value of ``column``) plus those of ``frame``: a range's counts, chunk by chunk."""
    return counts.add(frame[column].value_counts(), fill_value=0) if not frame.empty else counts


def _named(counts: pd.Series, column: str) -> dict[str, int]:
    """Metadata of ``_tally``'s counts: ``<column>_<value>``."""
    return {f"{column}_{k}": int(v) for k, v in counts.items()}


@daily_asset(name="leaderboard", group_name=AGGREGATES,
             deps=["window_stats", _history()],
             check_specs=[leaderboard_check_spec()],
             description=("As of each day, per window: agents ranked by average overall score (ties: more tasks); "
                          "agents with fewer than 5 tasks or no scores listed unranked."))
def leaderboard_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
    first, last = partition_days(context)
    rows, statuses = 0, pd.Series(dtype="int64")
    history = TrailingDays(partial(read_rollups, entity_types=["department_agent"],
                                   columns=["department", "agent_id", "n_tasks"]), MAX_WINDOW_DAYS, "date")
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # 4 weeks of as-of days at a time
            stats = read_days(conn, window_stats, "as_of_date", start, end, entity_type="agent")
            departments = history.read(conn, start, end)
            board = rank_agents(stats, departments)
            rows += _write(context, conn, leaderboard, start, end, board)
            statuses = _tally(statuses, board, "status")
        check = leaderboard_check(conn, first, last)
    yield MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}", "rows": rows,
                                      **_named(statuses, "status")}))
    yield check


@daily_asset(name="most_improved_agents", group_name=AGGREGATES,
             deps=["trends"],
             description=("As of each day, per window: the agent with the steepest significant improving trend in "
                          "overall score, or none."))
def most_improved_agents_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                               aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    config = aggregates.config()
    rows = found = 0
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # 4 weeks of as-of days at a time
            agent_trends = read_days(conn, trends, "as_of_date", start, end, entity_type="agent",
                                     metric="avg_overall_score")
            best = most_improved(agent_trends, days_between(start, end), sorted(config.windows))
            rows += _write(context, conn, most_improved_agents, start, end, best)
            found += int(best["agent_id"].notna().sum())
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}", "rows": rows,
                                       "days_with_a_most_improved_agent": found}))


@daily_asset(name="provider_rankings", group_name=AGGREGATES,
             deps=[_history()],
             description=("As of each day, per task type: provider/model candidates with at least 5 tasks in 30 days "
                          "ranked by a utility of quality, cost and latency (README: provider rankings)."))
def provider_rankings_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                            aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    config = aggregates.config().provider_ranking
    rows, statuses = 0, pd.Series(dtype="int64")
    history = TrailingDays(partial(read_rollups, entity_types=["model_task_type"]), config.window_days, "date")
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # 4 weeks of as-of days at a time
            models = history.read(conn, start, end)
            ranked = provider_rankings(models, days_between(start, end), **config.model_dump())
            rows += _write(context, conn, provider_rankings_table, start, end, ranked)
            statuses = _tally(statuses, ranked, "status")
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}", "rows": rows,
                                       **_named(statuses, "status")}))


@daily_asset(name="prompt_version_comparisons", group_name=AGGREGATES,
             deps=[_history("task_scores"), _history("task_events")],
             description=("As of each day, per task type and pair of prompt versions: Mann-Whitney U on the quality "
                          "scores of 30 days, Holm-adjusted, with a verdict."))
def prompt_version_comparisons_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                                     aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    config = aggregates.config().prompt_comparison
    rows, verdicts = 0, pd.Series(dtype="int64")
    history = TrailingDays(read_task_quality, config.window_days, "partition_date")
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # 4 weeks of as-of days at a time
            scores = history.read(conn, start, end)
            compared = compare_prompt_versions(scores, days_between(start, end), **config.model_dump())
            rows += _write(context, conn, prompt_version_comparisons, start, end, compared)
            verdicts = _tally(verdicts, compared, "verdict")
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}", "rows": rows,
                                       **_named(verdicts, "verdict")}))


@daily_multi_asset(
    name="project_summaries_and_agents", group_name=AGGREGATES,
    specs=[AssetSpec("project_summaries", group_name=AGGREGATES, deps=[_history(), "trends"],
                     description=(
               "Per project and window: first and last task, feedback rates, innovations, most improved agent.")),
           AssetSpec("project_agent_stats", group_name=AGGREGATES, deps=[_history()], description=(
               "Per project, agent and window: the agent's correction, enhancement and approval rates."))])
def project_summaries_and_agents(context: AssetExecutionContext, warehouse: WarehouseResource,
                                 aggregates: AggregatesResource) -> Iterator[MaterializeResult]:
    first, last = partition_days(context)
    config = aggregates.config()
    summary_rows = agent_rows = 0
    statuses = pd.Series(dtype="int64")
    history = TrailingDays(partial(read_rollups, entity_types=["project", "project_agent"],
                                   columns=["project_id", "agent_id", *PROJECT_SUMS]), MAX_WINDOW_DAYS, "date")
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # 4 weeks of as-of days at a time
            rollups = history.read(conn, start, end)
            agent_trends = read_days(conn, trends, "as_of_date", start, end, entity_type="agent",
                                     metric="avg_overall_score")
            summaries, per_agent = project_summaries(rollups, read_project_spans(conn, start, end), agent_trends,
                                                     days_between(start, end), sorted(config.windows),
                                                     config.min_points)
            summary_rows += _write(context, conn, project_summaries_table, start, end, summaries)
            agent_rows += _write(context, conn, project_agent_stats, start, end, per_agent)
            statuses = _tally(statuses, per_agent, "status")
    yield MaterializeResult(asset_key="project_summaries", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": summary_rows}))
    yield MaterializeResult(asset_key="project_agent_stats", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": agent_rows, **_named(statuses, "status")}))


@daily_asset(name="node_rollups", group_name=AGGREGATES,
             deps=["task_steps"],
             description="Per agent, node and day: mergeable step counts and sums from task_steps.")
def node_rollups_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    first, last = partition_days(context)
    with warehouse.engine().begin() as conn:
        rollups = node_rollups(read_days(conn, task_steps, "partition_date", first, last))
        rows = _write(context, conn, node_rollups_table, first, last, rollups)
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}", "rows": rows}))


@daily_asset(name="node_performance", group_name=AGGREGATES,
             deps=[_history("node_rollups")],
             description=("As of each day, per agent, node and window: steps, failure rate, average duration and "
                          "tokens."))
def node_performance_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                           aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    config = aggregates.config()
    rows, statuses = 0, pd.Series(dtype="int64")
    history = _trailing_table(node_rollups_table)
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # 4 weeks of as-of days at a time
            rollups = history.read(conn, start, end)
            performance = node_performance(rollups, days_between(start, end), sorted(config.windows),
                                           config.min_points)
            rows += _write(context, conn, node_performance_table, start, end, performance)
            statuses = _tally(statuses, performance, "status")
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}", "rows": rows,
                                       **_named(statuses, "status")}))


AGGREGATE_ASSETS = [daily_rollups_asset, daily_metrics_asset, window_stats_asset, trends_asset, baselines_and_anomalies,
                    leaderboard_asset, most_improved_agents_asset, provider_rankings_asset,
                    prompt_version_comparisons_asset, project_summaries_and_agents, node_rollups_asset,
                    node_performance_asset]
