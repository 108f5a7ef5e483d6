"""Aggregate assets: daily rollups, and as of each day D the rolling windows, trends, baselines and
anomalies computed from the rollups of the days before it.

Windows read only rollups (never tasks), so one new day costs the same however long the history
is. The ``TimeWindowPartitionMapping`` on each dependency states which days a day's figures read, so
the Dagster UI shows it and a changed day is rebuilt with the days whose windows hold it
(``automation.py``), and no others.
"""

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
)

from perf_pipeline.aggregates.checks import (
    leaderboard_check_spec,
    leaderboard_result,
    rollups_check_spec,
    rollups_result,
    windows_check_spec,
    windows_result,
)
from perf_pipeline.aggregates.chunk_steps import (
    Written,
    compare_prompts,
    day_metrics,
    find_anomalies,
    fit_trends,
    merge,
    node_figures,
    pick_most_improved,
    rank,
    rank_providers,
    roll_up,
    roll_up_nodes,
    summarize_projects,
    window_figures,
)
from perf_pipeline.aggregates.trends import TheilSenTrendStrategy
from perf_pipeline.aggregates.windows import RollingWindowStrategy
from perf_pipeline.config import MAX_WINDOW_DAYS
from perf_pipeline.daily import (
    daily_asset,
    daily_multi_asset,
    day_chunks,
    partition_days,
    range_metadata,
    record_day_rows,
)
from perf_pipeline.jobs import AGGREGATES
from perf_pipeline.partitions import trailing_days
from perf_pipeline.resources import AggregatesResource, WarehouseResource
from perf_pipeline.warehouse.chunks import each_chunk


def _history(asset_key: str = "daily_rollups", days: int = MAX_WINDOW_DAYS) -> AssetDep:
    """``asset_key`` of the ``days`` days ending with the partition's day."""
    return AssetDep(asset_key, partition_mapping=trailing_days(days))


def _each_chunk(context: AssetExecutionContext, warehouse: WarehouseResource, chunks: list[tuple[dt.date, dt.date]],
                step: Callable[..., Written], *args: Any) -> Written:
    """``step`` (``chunk_steps``) over each chunk of the run's range, in worker processes in a backfill
    (``warehouse/chunks.py``); each table's rows per day recorded; what the chunks wrote, merged."""
    written = merge(each_chunk(warehouse.resolved_url(), chunks, step, *args))
    for name, day_rows in written.day_rows.items():
        record_day_rows(context, name, day_rows)
    return written


@daily_asset(name="daily_rollups", group_name=AGGREGATES,
             deps=["task_events", "task_scores", "collaboration_scores"],
             check_specs=[rollups_check_spec()],
             description=("Per entity (agent, department, project, provider, model, task type, provider/task type, "
                          "prompt version) and day: counts and sums from which every window metric is derived."))
def daily_rollups_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
    first, last = partition_days(context)
    # A week at a time: memory follows a week's tasks.
    written = _each_chunk(context, warehouse, day_chunks(first, last), roll_up)
    yield MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("daily_rollups"),
        **{f"entities_{kind}": int(n) for kind, n in written.tallies["entities"].items()}}))
    yield rollups_result(written.check, first, last)


@daily_asset(name="daily_metrics", group_name=AGGREGATES,
             deps=["daily_rollups"],
             description=("Per entity and day: that day's metrics, the points of the trends and baselines (computed "
                          "once per day, not once per window that holds the day)."))
def daily_metrics_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    first, last = partition_days(context)
    written = _each_chunk(context, warehouse, day_chunks(first, last), day_metrics)
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}",
                                                               "rows": written.rows("daily_metrics")}))


@daily_asset(name="window_stats", group_name=AGGREGATES,
             deps=[_history()], check_specs=[windows_check_spec()],
             description=("As of each day D, per entity and window W (7, 30, 90 days): the metrics of the tasks of "
                          "(D - W, D]; fewer than 5 tasks: insufficient_data with null metrics."))
def window_stats_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                       aggregates: AggregatesResource) -> Iterator[Any]:
    first, last = partition_days(context)
    config = aggregates.config()
    written = _each_chunk(context, warehouse, day_chunks(first, last, as_of=True), window_figures,
                          RollingWindowStrategy(config.windows, config.min_points))
    rows, ok = written.rows("window_stats"), written.counts["rows_ok"]
    yield MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": rows, "rows_ok": ok,
        "rows_insufficient_data": rows - ok, "rollup_days_read": len(written.counts["rollup_days_read"])}))
    yield windows_result(written.check, first, last)


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
    written = _each_chunk(context, warehouse, day_chunks(first, last, as_of=True), fit_trends, strategy)
    return MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("trends"),
        **_named(written.tallies["direction"], "direction")}))


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
    written = _each_chunk(context, warehouse, day_chunks(first, last), find_anomalies, config.anomaly_metrics,
                          {"baseline_days": config.baseline_days, "min_baseline_days": config.min_baseline_days,
                           "threshold": config.anomaly_threshold})
    yield MaterializeResult(asset_key="baselines", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("baselines"),
        "rows_with_baseline": written.counts["rows_with_baseline"]}))
    yield MaterializeResult(asset_key="anomalies", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "anomalies": written.rows("anomalies"),
        "worse": written.counts["worse"]}))


def _named(counts: pd.Series, column: str) -> dict[str, int]:
    """Metadata of a tally (rows per value of ``column``): ``<column>_<value>``."""
    return {f"{column}_{k}": int(v) for k, v in counts.items()}


@daily_asset(name="leaderboard", group_name=AGGREGATES,
             deps=["window_stats", _history()],
             check_specs=[leaderboard_check_spec()],
             description=("As of each day, per window: agents ranked by average overall score (ties: more tasks); "
                          "agents with fewer than 5 tasks or no scores listed unranked."))
def leaderboard_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
    first, last = partition_days(context)
    written = _each_chunk(context, warehouse, day_chunks(first, last, as_of=True), rank)
    yield MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("leaderboard"),
        **_named(written.tallies["status"], "status")}))
    yield leaderboard_result(written.check, first, last)


@daily_asset(name="most_improved_agents", group_name=AGGREGATES,
             deps=["trends"],
             description=("As of each day, per window: the agent with the steepest significant improving trend in "
                          "overall score, or none."))
def most_improved_agents_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                               aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    written = _each_chunk(context, warehouse, day_chunks(first, last, as_of=True), pick_most_improved,
                          sorted(aggregates.config().windows))
    return MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("most_improved_agents"),
        "days_with_a_most_improved_agent": written.counts["days_with_a_most_improved_agent"]}))


@daily_asset(name="provider_rankings", group_name=AGGREGATES,
             deps=[_history()],
             description=("As of each day, per task type: provider/model candidates with at least 5 tasks in 30 days "
                          "ranked by a utility of quality, cost and latency (README: provider rankings)."))
def provider_rankings_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                            aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    written = _each_chunk(context, warehouse, day_chunks(first, last, as_of=True), rank_providers,
                          aggregates.config().provider_ranking.model_dump())
    return MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("provider_rankings"),
        **_named(written.tallies["status"], "status")}))


@daily_asset(name="prompt_version_comparisons", group_name=AGGREGATES,
             deps=[_history("task_scores"), _history("task_events")],
             description=("As of each day, per task type and pair of prompt versions: Mann-Whitney U on the quality "
                          "scores of 30 days, Holm-adjusted, with a verdict."))
def prompt_version_comparisons_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                                     aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    written = _each_chunk(context, warehouse, day_chunks(first, last, as_of=True), compare_prompts,
                          aggregates.config().prompt_comparison.model_dump())
    return MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("prompt_version_comparisons"),
        **_named(written.tallies["verdict"], "verdict")}))


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
    written = _each_chunk(context, warehouse, day_chunks(first, last, as_of=True), summarize_projects,
                          sorted(config.windows), config.min_points)
    yield MaterializeResult(asset_key="project_summaries", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("project_summaries")}))
    yield MaterializeResult(asset_key="project_agent_stats", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("project_agent_stats"),
        **_named(written.tallies["status"], "status")}))


@daily_asset(name="node_rollups", group_name=AGGREGATES,
             deps=["task_steps"],
             description="Per agent, node and day: mergeable step counts and sums from task_steps.")
def node_rollups_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    first, last = partition_days(context)
    # A week at a time: memory follows a week's steps.
    written = _each_chunk(context, warehouse, day_chunks(first, last), roll_up_nodes)
    return MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}",
                                                               "rows": written.rows("node_rollups")}))


@daily_asset(name="node_performance", group_name=AGGREGATES,
             deps=[_history("node_rollups")],
             description=("As of each day, per agent, node and window: steps, failure rate, average duration and "
                          "tokens."))
def node_performance_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                           aggregates: AggregatesResource) -> MaterializeResult:
    first, last = partition_days(context)
    config = aggregates.config()
    written = _each_chunk(context, warehouse, day_chunks(first, last, as_of=True), node_figures,
                          sorted(config.windows), config.min_points)
    return MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": written.rows("node_performance"),
        **_named(written.tallies["status"], "status")}))


AGGREGATE_ASSETS = [daily_rollups_asset, daily_metrics_asset, window_stats_asset, trends_asset, baselines_and_anomalies,
                    leaderboard_asset, most_improved_agents_asset, provider_rankings_asset,
                    prompt_version_comparisons_asset, project_summaries_and_agents, node_rollups_asset,
                    node_performance_asset]
