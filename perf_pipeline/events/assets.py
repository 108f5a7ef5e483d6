"""Daily event tables, cut from ``staged_events`` per UTC day, and the objective templates they use.

A run replaces its days' rows a week at a time, each week in one transaction (in a backfill, by two
worker processes at once: ``warehouse/chunks.py``), so re-running a day (or a backfill after late
files) gives the same rows as a clean run. Backfills run as one run per
range (``BackfillPolicy.single_run``): the asset reads ``context.partition_time_window``. A day is
cut again when the ingest records that its staged events changed (``automation.py``).
"""


import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset,
)

from perf_pipeline.daily import (
    daily_asset,
    daily_multi_asset,
    day_chunks,
    mean,
    partition_days,
    range_metadata,
    record_days,
)
from perf_pipeline.events.checks import matches_staging_result, matches_staging_spec
from perf_pipeline.events.classify import load_templates, seed_templates
from perf_pipeline.events.transform import cut_events, cut_tasks
from perf_pipeline.jobs import EVENTS, REFERENCE
from perf_pipeline.resources import WarehouseResource
from perf_pipeline.warehouse.chunks import each_chunk
from perf_pipeline.warehouse.schema import EVENT_TABLES

STAGED = AssetKey("staged_events")


@asset(name="objective_templates", group_name=REFERENCE, description=(
    "Task type -> objective patterns, seeded from sql/seeds/objective_templates.sql; rows you add with "
    "source='user' are kept. Used to classify tasks sent without task_type."))
def objective_templates_asset(warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.engine().begin() as conn:
        defaults = seed_templates(conn)
        templates = load_templates(conn)
    preview = "\n".join(f"| {t.priority} | {t.task_type} | `{t.pattern}` |" for t in templates)
    return MaterializeResult(metadata={
        "default_templates": defaults, "templates": len(templates),
        "preview": MetadataValue.md("| priority | task type | pattern |\n|---:|---|---|\n" + preview)})


@daily_multi_asset(
    name="task_tables",
    group_name=EVENTS,
    specs=[
        AssetSpec("task_events", group_name=EVENTS, deps=[STAGED, "objective_templates"], description=(
            "One row per task, typed, partitioned by the UTC day of completed_at; task_type classified from "
            "the objective where missing; total_tokens and completion_time_s derived.")),
        AssetSpec("task_steps", group_name=EVENTS, deps=[STAGED], description=(
            "One row per step (node) of a task, partitioned like its task: node-level performance.")),
    ],
    check_specs=[matches_staging_spec("task_events")],
)
def task_tables(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[MaterializeResult]:
    first, last = partition_days(context)
    with warehouse.engine().connect() as conn:
        templates = load_templates(conn)
    # A week at a time (memory follows a week's events), each in its own transaction, by two workers
    # in a backfill (warehouse/chunks.py).
    cut = each_chunk(warehouse.resolved_url(), day_chunks(first, last), cut_tasks, templates)
    task_frame = pd.concat([tasks for tasks, _, _ in cut], ignore_index=True)
    steps = pd.concat([days for _, days, _ in cut], ignore_index=True)
    check = matches_staging_result("task", sum((counts for _, _, counts in cut), Counter()), first, last)
    classified = int((task_frame["task_type_source"] == "template").sum())
    uncategorized = int((task_frame["task_type_source"] == "default").sum())
    context.log.info(f"{first}..{last}: {len(task_frame)} tasks, {len(steps)} steps")
    record_days(context, "task_events", task_frame, "partition_date", task_day_figures)
    record_days(context, "task_steps", steps, "partition_date")
    yield MaterializeResult(asset_key="task_events", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "tasks_classified_by_template": classified,
        "tasks_uncategorized": uncategorized, **task_day_figures(first, task_frame)}))
    yield MaterializeResult(asset_key="task_steps", metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": len(steps)}))
    yield check


def task_day_figures(_day: dt.date, tasks: pd.DataFrame) -> dict[str, object]:
    """Tasks, success rate, known cost and rows without token counts of a day's (or range's) tasks."""
    return {"rows": len(tasks), "success_rate": mean(tasks["status"] == "success"),
            "total_cost_usd": round(float(tasks["cost_usd"].sum()), 6),
            "unknown_token_rows": int(tasks["total_tokens"].isna().sum())}


def daily_event_asset(event_type: str, description: str):
    """A daily asset that cuts one non-task event type from staging (same shape for each type)."""
    table = EVENT_TABLES[event_type]

    @daily_asset(name=table.name, group_name=EVENTS, deps=[STAGED], description=description,
                 check_specs=[matches_staging_spec(table.name)])
    def _daily_events(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator:
        first, last = partition_days(context)
        cut = each_chunk(warehouse.resolved_url(), day_chunks(first, last), cut_events, event_type)
        rows = pd.concat([days for days, _ in cut], ignore_index=True)
        check = matches_staging_result(event_type, sum((counts for _, counts in cut), Counter()), first, last)
        record_days(context, table.name, rows, "partition_date")
        yield MaterializeResult(metadata=range_metadata(context, {"partition_range": f"{first}..{last}",
                                                                  "rows": len(rows)}))
        yield check

    return _daily_events


feedback_events = daily_event_asset("feedback", (
    "User ratings of tasks, partitioned by the UTC day of created_at (often days after the task)."))
peer_evaluations = daily_event_asset("peer_evaluation", (
    "Agents' reviews of other agents' tasks (accuracy, relevance, completeness), by UTC day of created_at."))
collaboration_messages = daily_event_asset("message", (
    "Messages between agents (request, response, handoff) with helpfulness ratings, by UTC day of sent_at."))

DAILY_EVENT_ASSETS = [task_tables, feedback_events, peer_evaluations, collaboration_messages]

