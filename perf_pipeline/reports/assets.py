"""Report assets: ``daily_report`` (a day) and ``weekly_report`` (an ISO week, Monday to Sunday).

Each renders its period (``reports.publish``): the HTML with its charts and the Markdown under
``PERF_REPORTS_DIR``, a row of the ``reports`` table, and, when its period is over and recent, the
Slack summary and webhook document in the notification outbox, once per period and destination.
The notification_sender sensor posts them.
"""

import datetime as dt
from collections import deque
from collections.abc import Callable
from typing import Any

import pandas as pd
from dagster import AssetDep, AssetExecutionContext, BackfillPolicy, MaterializeResult, MetadataValue, asset

from perf_pipeline.automation import rebuild_when_upstream_changes
from perf_pipeline.daily import daily_asset, partition_days, range_metadata, record_days
from perf_pipeline.jobs import REPORTS
from perf_pipeline.partitions import days_between, days_of_week, weekly_partitions
from perf_pipeline.reports.charts import ChartDrawer
from perf_pipeline.reports.content import Period, Report, gather
from perf_pipeline.reports.publish import AlreadyPosted, Rendered, due, post, save, write
from perf_pipeline.resources import (
    WAREHOUSE_POOL,
    AlertsResource,
    NotifyResource,
    ReportsResource,
    WarehouseResource,
)

# Reports gathered ahead of the one being written: enough to keep the chart workers busy.
GATHERED_AHEAD = 8
# What a report reads, on the days of its period (task_scores: the judge's calls it counts).
REPORT_DEPS = ["task_events", "task_scores", "daily_rollups", "daily_metrics", "window_stats", "trends", "anomalies",
               "leaderboard", "most_improved_agents", "provider_rankings", "prompt_version_comparisons", "alerts"]


def _publish(context: AssetExecutionContext, periods: list[Period], warehouse: WarehouseResource,
             reports: ReportsResource, notify: NotifyResource, now: dt.datetime) -> dict[str, Any]:
    """Render, save and (when due) post each period; the figures of the last one. The reports are
    gathered one after the other while their charts are drawn (``ChartDrawer``: by worker processes
    in a backfill), at most ``GATHERED_AHEAD`` ahead of the one being written, saved and posted (in
    a transaction of its own): a year's backfill holds a few reports at a time, not the year's. A
    daily report records each day's figures as that day's (``daily.record_days``)."""
    folder = reports.folder()
    engine = warehouse.engine()
    posted = 0
    by_day: list[dict[str, Any]] = []
    gathered: deque[tuple[Report, Callable[[], dict[str, bytes]]]] = deque()

    def publish_first() -> Rendered:
        nonlocal posted
        report, pictures = gathered.popleft()
        period = report.period
        rendered = write(report, pictures(), folder)
        with engine.begin() as conn:
            save(conn, rendered, now)
            destinations = notify.destinations()
            if due(period, now.date()) and destinations:
                try:
                    post(conn, period.kind, period.label, destinations, now)
                    posted += 1
                except AlreadyPosted:
                    pass  # a re-run of a posted period: rendered again, not posted again
        context.log.info(f"{rendered.title}: {rendered.html_path}")
        by_day.append({"date": period.first, **_numbers(rendered.figures)})
        return rendered

    with ChartDrawer(len(periods)) as drawer:
        for period in periods:
            with engine.connect() as conn:
                report = gather(conn, period)
            gathered.append((report, drawer.submit(report)))
            if len(gathered) > GATHERED_AHEAD:
                publish_first()
        while gathered:
            rendered = publish_first()
    if periods[0].kind == "daily":
        record_days(context, "daily_report", pd.DataFrame(by_day), "date",
                    lambda _day, rows: rows.iloc[0].drop("date").dropna().to_dict() if len(rows) else {})
    return {"period": rendered.period.label, "html": MetadataValue.path(str(rendered.html_path)),
            "preview": MetadataValue.md(rendered.markdown[:4000]), "posted": posted, **_numbers(rendered.figures)}


def _numbers(figures: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in figures.items() if isinstance(v, int | float) and not isinstance(v, bool)}


@daily_asset(name="daily_report", group_name=REPORTS, deps=REPORT_DEPS, description=(
    "The day's report: tasks, success rate, cost and evaluation cost, SLA compliance, the leaderboard, trends, "
    "anomalies and alerts, provider rankings, prompt findings and recommendations with their evidence; HTML with "
    "charts under PERF_REPORTS_DIR, posted to Slack and the webhooks once the day is over."))
def daily_report_asset(context: AssetExecutionContext, warehouse: WarehouseResource, reports: ReportsResource,
                       notify: NotifyResource, alerts: AlertsResource) -> MaterializeResult:
    first, last = partition_days(context)
    figures = _publish(context, [Period.daily(day) for day in days_between(first, last)], warehouse, reports,
                       notify, alerts.now())
    return MaterializeResult(metadata=range_metadata(context, figures))


@asset(name="weekly_report", group_name=REPORTS, partitions_def=weekly_partitions,
       deps=[AssetDep(key, partition_mapping=days_of_week()) for key in REPORT_DEPS],
       automation_condition=rebuild_when_upstream_changes(), backfill_policy=BackfillPolicy.single_run(),
       pool=WAREHOUSE_POOL, description=(
           "The ISO week's report (Monday to Sunday), as the daily one; built by the weekly schedule on Mondays and "
           "posted once, in the week after its week."))
def weekly_report_asset(context: AssetExecutionContext, warehouse: WarehouseResource, reports: ReportsResource,
                        notify: NotifyResource, alerts: AlertsResource) -> MaterializeResult:
    window = context.partition_time_window
    mondays = [window.start.date() + dt.timedelta(days=7 * k) for k in range((window.end - window.start).days // 7)]
    figures = _publish(context, [Period.weekly(monday) for monday in mondays], warehouse, reports, notify,
                       alerts.now())
    return MaterializeResult(metadata=figures)


REPORT_ASSETS = [daily_report_asset, weekly_report_asset]
