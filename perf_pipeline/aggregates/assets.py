"""Aggregate assets: daily rollups, and as of each day D the rolling windows, trends, baselines and
anomalies computed from the rollups of the days before it.

Windows read only rollups (never tasks), so one new day costs the same however long the history
is. The ``TimeWindowPartitionMapping`` on each dependency shows in the Dagster UI which daily
rollup partitions a day's windows depend on.
"""

import datetime as dt
import warnings
from collections.abc import Iterator

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    BetaWarning,
    MaterializeResult,
    TimeWindowPartitionMapping,
    asset,
    multi_asset,
)

from perf_pipeline.aggregates.baselines import baselines as compute_baselines
from perf_pipeline.aggregates.rollups import daily_rollups as compute_rollups
from perf_pipeline.aggregates.store import read_collaboration, read_rollups, read_scored_tasks
from perf_pipeline.aggregates.trends import TheilSenTrendStrategy, daily_metric_values
from perf_pipeline.aggregates.windows import RollingWindowStrategy
from perf_pipeline.events.assets import partition_days
from perf_pipeline.partitions import daily_partitions
from perf_pipeline.resources import ScoringResource, WarehouseResource
from perf_pipeline.scoring.config import MAX_WINDOW_DAYS
from perf_pipeline.warehouse.db import frame_to_records, replace_partition
from perf_pipeline.warehouse.schema import anomalies, baselines, daily_rollups, trends, window_stats

# Beta in Dagster 1.13; windows over days before the first partition must not fail the run.
warnings.filterwarnings("ignore", message="Parameter `allow_nonexistent_upstream_partitions`", category=BetaWarning)

GROUP = "aggregates"
HISTORY = dt.timedelta(days=MAX_WINDOW_DAYS - 1)


def _rollup_history() -> AssetDep:
    """daily_rollups of the MAX_WINDOW_DAYS days ending with the partition's day."""
    return AssetDep("daily_rollups", partition_mapping=TimeWindowPartitionMapping(
        start_offset=-(MAX_WINDOW_DAYS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True))


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


@asset(name="daily_rollups", group_name=GROUP, partitions_def=daily_partitions,
       backfill_policy=BackfillPolicy.single_run(), deps=["task_events", "task_scores", "collaboration_scores"],
       description=("Per entity (agent, department, project, provider, model, task type, provider/task type, "
                    "prompt version) and day: counts and sums from which every window metric is derived."))
def daily_rollups_asset(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    first, last = partition_days(context)
    with warehouse.engine().begin() as conn:
        rollups = compute_rollups(read_scored_tasks(conn, first, last), read_collaboration(conn, first, last))
        rows = replace_partition(conn, daily_rollups, first, last, frame_to_records(rollups), date_column="date")
    return MaterializeResult(metadata={
        "partition_range": f"{first}..{last}", "rows": rows,
        **{f"entities_{kind}": int(n) for kind, n in rollups.groupby("entity_type").size().items()}})


@asset(name="window_stats", group_name=GROUP, partitions_def=daily_partitions,
       backfill_policy=BackfillPolicy.single_run(), deps=[_rollup_history()],
       description=("As of each day D, per entity and window W (7, 30, 90 days): the metrics of the tasks of "
                    "(D - W, D]; fewer than 5 tasks: insufficient_data with null metrics."))
def window_stats_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                       scoring: ScoringResource) -> MaterializeResult:
    first, last = partition_days(context)
    config = scoring.config().aggregates
    with warehouse.engine().begin() as conn:
        rollups = read_rollups(conn, first - HISTORY, last)
        stats = RollingWindowStrategy(config.windows, config.min_points).compute(rollups, _days(first, last))
        rows = replace_partition(conn, window_stats, first, last, frame_to_records(stats), date_column="as_of_date")
    ok = stats[stats["status"] == "ok"] if not stats.empty else stats
    return MaterializeResult(metadata={
        "partition_range": f"{first}..{last}", "rows": rows, "rows_ok": len(ok),
        "rows_insufficient_data": rows - len(ok), "rollup_days_read": int(rollups["date"].nunique())
        if not rollups.empty else 0})


@asset(name="trends", group_name=GROUP, partitions_def=daily_partitions,
       backfill_policy=BackfillPolicy.single_run(), deps=[_rollup_history()],
       description=("As of each day, per entity, window and metric: Theil-Sen slope through the daily values with "
                    "its 95 % interval, Mann-Kendall p-value and direction (improving, stable, declining, "
                    "insufficient_data)."))
def trends_asset(context: AssetExecutionContext, warehouse: WarehouseResource,
                 scoring: ScoringResource) -> MaterializeResult:
    first, last = partition_days(context)
    config = scoring.config().aggregates
    strategy = TheilSenTrendStrategy(config.windows, config.trend_metrics, config.min_points,
                                     config.trend_min_relative_change)
    with warehouse.engine().begin() as conn:
        daily = daily_metric_values(read_rollups(conn, first - HISTORY, last))
        result = strategy.compute(daily, _days(first, last))
        rows = replace_partition(conn, trends, first, last, frame_to_records(result), date_column="as_of_date")
    directions = result["direction"].value_counts().to_dict() if not result.empty else {}
    return MaterializeResult(metadata={"partition_range": f"{first}..{last}", "rows": rows,
                                       **{f"direction_{k}": int(v) for k, v in directions.items()}})


@multi_asset(
    name="baselines_and_anomalies", group_name=GROUP, partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    specs=[AssetSpec("baselines", group_name=GROUP, deps=[_rollup_history()], description=(
               "Per provider/task type, day and metric: the value against the median and MAD of the previous "
               "30 days (at least 7 needed), and its robust z-score.")),
           AssetSpec("anomalies", group_name=GROUP, deps=["baselines"], description=(
               "The baseline rows whose |robust z| exceeds the threshold (3.5 by default)."))])
def baselines_and_anomalies(context: AssetExecutionContext, warehouse: WarehouseResource,
                            scoring: ScoringResource) -> Iterator[MaterializeResult]:
    first, last = partition_days(context)
    config = scoring.config().aggregates
    with warehouse.engine().begin() as conn:
        daily = daily_metric_values(read_rollups(conn, first - dt.timedelta(days=config.baseline_days), last))
        result = compute_baselines(daily, _days(first, last), config.anomaly_metrics,
                                   baseline_days=config.baseline_days, min_baseline_days=config.min_baseline_days,
                                   threshold=config.anomaly_threshold)
        flagged = result[result["is_anomaly"]] if not result.empty else result
        replace_partition(conn, baselines, first, last, frame_to_records(result), date_column="date")
        replace_partition(conn, anomalies, first, last, frame_to_records(flagged), date_column="date")
    yield MaterializeResult(asset_key="baselines", metadata={
        "partition_range": f"{first}..{last}", "rows": len(result),
        "rows_with_baseline": int(result["baseline_median"].notna().sum()) if not result.empty else 0})
    yield MaterializeResult(asset_key="anomalies", metadata={
        "partition_range": f"{first}..{last}", "anomalies": len(flagged),
        "worse": int((flagged["direction"] == "worse").sum()) if not flagged.empty else 0})


AGGREGATE_ASSETS = [daily_rollups_asset, window_stats_asset, trends_asset, baselines_and_anomalies]
