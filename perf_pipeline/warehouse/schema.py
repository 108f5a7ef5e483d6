"""Table definitions of the warehouse (SQLAlchemy Core), the source of ``sql/ddl``.

Event tables take their columns from the input contract (``perf_pipeline.contract``): one
column per field, nested objects flattened as ``<parent>_<child>``, lists moved to their own
table. Columns the pipeline adds (partition, lineage, derived figures) are listed here.
``perf-pipeline schema --write`` regenerates ``sql/ddl``; a test fails when they drift.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from perf_pipeline.contract import EventSpec, FieldSpec, event_specs

metadata = sa.MetaData()

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
UTCDateTime = sa.DateTime(timezone=True)

# A table whose info has this key keeps a columnar copy of each day's rows in day_blocks (value: the
# column whose values split a day's rows into separately readable blocks, or None).
DAY_BLOCKS = "day_blocks"
# A table whose info has this key is read in this order of its key columns (``row_order``) rather than
# in the order of its primary key. The tables a new day is appended to have their day first in the
# primary key, so that the day's rows go into the last pages of its index rather than one page per
# entity all over it; their readers still get the rows entity by entity, as before.
ROW_ORDER = "row_order"


def key_columns(table: sa.Table) -> list[str]:
    """The names of ``table``'s primary-key columns, in the key's order."""
    return [column.name for column in table.primary_key.columns]


def row_order(table: sa.Table) -> list[str]:
    """The key columns by which ``table``'s rows are read: ``info[ROW_ORDER]``, else the primary key."""
    return list(table.info.get(ROW_ORDER) or key_columns(table))


_SCALAR_TYPES: dict[str, sa.types.TypeEngine] = {
    "string": sa.Text(),
    "integer": sa.BigInteger(),
    "number": sa.Float(),
    "timestamp": UTCDateTime,
}

# Which event table holds which event type.
EVENT_TABLE_NAMES = {
    "task": "task_events",
    "feedback": "feedback_events",
    "peer_evaluation": "peer_evaluations",
    "message": "collaboration_messages",
}


def flat_fields(spec: EventSpec) -> list[tuple[str, FieldSpec]]:
    """(column name, field) for every scalar of an event, nested objects flattened."""
    columns: list[tuple[str, FieldSpec]] = []
    for f in spec.fields:
        if f.kind == "object":
            columns.extend((f"{f.name}_{child.name}", child) for child in f.children)
        elif f.kind != "array":
            columns.append((f.name, f))
    return columns


def _lineage_columns() -> list[sa.Column]:
    return [
        sa.Column("extra", JSON, nullable=True, comment="Fields outside the contract, kept as sent."),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
    ]


def _event_table(event_type: str, extra_columns: list[sa.Column]) -> sa.Table:
    spec = event_specs()[event_type]
    columns = [
        sa.Column(name, _SCALAR_TYPES[f.kind], primary_key=(name == spec.id_field), nullable=not f.required)
        for name, f in flat_fields(spec)
    ]
    return sa.Table(
        EVENT_TABLE_NAMES[event_type],
        metadata,
        *columns,
        sa.Column("partition_date", sa.Date(), nullable=False, index=True),
        *extra_columns,
        *_lineage_columns(),
        comment=spec.description,
    )


ingested_files = sa.Table(
    "ingested_files",
    metadata,
    sa.Column("file_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=True, index=True),
    sa.Column("size_bytes", sa.BigInteger(), nullable=True),
    sa.Column("file_format", sa.String(16), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, comment="ingested, or failed with error"),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("lines_read", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("blank_lines", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("events_loaded", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("quarantined", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("duplicates_skipped", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("min_partition_date", sa.Date(), nullable=True),
    sa.Column("max_partition_date", sa.Date(), nullable=True),
    sa.Column("ingested_at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.Text(), nullable=True),
    comment="Ledger of landing files: one row per ingest attempt; content is ingested once (by sha256).",
)

staged_events = sa.Table(
    "staged_events",
    metadata,
    sa.Column("event_type", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.Text(), primary_key=True),
    sa.Column("partition_date", sa.Date(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False, comment="The validated event, typed, as canonical JSON."),
    sa.Column("source_file", sa.Text(), nullable=False),
    sa.Column("line_number", sa.Integer(), nullable=False),
    sa.Column("file_id", sa.Integer(), nullable=False, index=True),
    sa.Index("ix_staged_events_type_partition", "event_type", "partition_date"),
    comment="Every validated, de-duplicated event, whatever its day; the daily event tables are cut from it.",
)

staged_day_changes = sa.Table(
    "staged_day_changes",
    metadata,
    sa.Column("event_type", sa.String(32), primary_key=True),
    sa.Column("partition_date", sa.Date(), primary_key=True),
    comment=("Days whose staged events changed and are not yet reported to Dagster: written in the ingest's "
             "transaction, removed once the run has recorded those days as updated (an outbox: a crash "
             "between the two reports them on the next ingest run)."),
)

quarantined_events = sa.Table(
    "quarantined_events",
    metadata,
    sa.Column("quarantine_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("source_file", sa.Text(), nullable=False),
    sa.Column("file_id", sa.Integer(), nullable=False, index=True),
    sa.Column("line_number", sa.Integer(), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=True),
    sa.Column("event_id", sa.Text(), nullable=True),
    sa.Column("partition_date", sa.Date(), nullable=True),
    sa.Column("content_hash", sa.String(64), nullable=True, comment="Set when the event could be typed."),
    sa.Column("raw", sa.Text(), nullable=False, comment="The line as read (undecodable bytes escaped)."),
    sa.Column("reasons", JSON, nullable=False, comment="[{code, field, message}, ...]"),
    sa.Column("reason_codes", sa.Text(), nullable=False, comment="Comma-separated codes, for filtering."),
    sa.Column("quarantined_at", UTCDateTime, nullable=False),
    sa.Index("ix_quarantined_events_type_id", "event_type", "event_id"),
    comment="Rows that failed parsing or validation, with every reason; nothing is dropped.",
)

objective_templates = sa.Table(
    "objective_templates",
    metadata,
    sa.Column("template_id", sa.Text(), primary_key=True),
    sa.Column("task_type", sa.Text(), nullable=False),
    sa.Column("pattern", sa.Text(), nullable=False, comment="Python regular expression, matched case-insensitively."),
    sa.Column("priority", sa.Integer(), nullable=False, comment="Lower wins when several templates match."),
    sa.Column("source", sa.String(16), nullable=False, comment="default (seeded from sql/seeds) or user"),
    sa.Column("description", sa.Text(), nullable=True),
    comment="Task type -> objective patterns, to classify tasks sent without task_type.",
)

task_events = _event_table(
    "task",
    [
        sa.Column("total_tokens", sa.BigInteger(), nullable=True, comment="input + output; null if either is unknown"),
        sa.Column("completion_time_s", sa.Float(), nullable=True, comment="assigned_at to completed_at"),
        sa.Column("step_count", sa.Integer(), nullable=False),
        sa.Column("task_type_source", sa.String(16), nullable=False, comment="reported, template or default"),
    ],
)
sa.Index("ix_task_events_agent_partition", task_events.c.agent_id, task_events.c.partition_date)

task_steps = sa.Table(
    "task_steps",
    metadata,
    sa.Column("task_id", sa.Text(), primary_key=True),
    sa.Column("step_index", sa.Integer(), primary_key=True),
    sa.Column("partition_date", sa.Date(), nullable=False, index=True),
    sa.Column("agent_id", sa.Text(), nullable=False),
    sa.Column("node", sa.Text(), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("completed_at", UTCDateTime, nullable=True),
    sa.Column("duration_s", sa.Float(), nullable=True),
    sa.Column("tokens", sa.BigInteger(), nullable=True),
    sa.Column("status", sa.Text(), nullable=True),
    comment="Node-level performance inside an agent: one row per step of a task.",
)

feedback_events = _event_table("feedback", [])
peer_evaluations = _event_table("peer_evaluation", [])
collaboration_messages = _event_table("message", [])
# Scoring reads the feedback and reviews of a range's tasks (a join on task_id): without these, each
# week of a backfill would scan every feedback and review of the whole history.
sa.Index("ix_feedback_events_task_id", feedback_events.c.task_id)
sa.Index("ix_peer_evaluations_task_id", peer_evaluations.c.task_id)

price_table = sa.Table(
    "price_table",
    metadata,
    sa.Column("provider", sa.Text(), primary_key=True),
    sa.Column("model", sa.Text(), primary_key=True),
    sa.Column("effective_from", sa.Date(), primary_key=True, comment="Valid until the next row's date."),
    sa.Column("input_usd_per_mtok", sa.Float(), nullable=False),
    sa.Column("output_usd_per_mtok", sa.Float(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False, comment="default (seeded from sql/seeds) or user"),
    sa.Column("note", sa.Text(), nullable=True),
    comment="Date-effective model prices, to cost tasks that did not report cost_usd and the judge's calls.",
)

_SCORE = {"comment": "0..1; null: no signal"}

task_scores = sa.Table(
    "task_scores",
    metadata,
    sa.Column("task_id", sa.Text(), primary_key=True),
    sa.Column("partition_date", sa.Date(), nullable=False, index=True),
    sa.Column("agent_id", sa.Text(), nullable=False),
    sa.Column("provider", sa.Text(), nullable=False),
    sa.Column("model", sa.Text(), nullable=False),
    sa.Column("task_type", sa.Text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("effort", sa.Float(), nullable=True, comment="total_tokens x completion_time_s"),
    sa.Column("efficiency_score", sa.Float(), nullable=True, comment="share of the task type's baseline "
              "tasks that needed more effort (ties count half)"),
    sa.Column("efficiency_baseline_n", sa.Integer(), nullable=True),
    sa.Column("cost_usd", sa.Float(), nullable=True),
    sa.Column("cost_source", sa.String(16), nullable=False, comment="reported, price_table or unknown"),
    sa.Column("cost_score", sa.Float(), nullable=True,
              comment="share of the task type's baseline tasks that cost more"),
    sa.Column("judge_accuracy", sa.Float(), nullable=True, **_SCORE),
    sa.Column("judge_relevance", sa.Float(), nullable=True, **_SCORE),
    sa.Column("judge_completeness", sa.Float(), nullable=True, **_SCORE),
    sa.Column("judge_score", sa.Float(), nullable=True, comment="mean of the three judge scores"),
    sa.Column("judge_status", sa.String(24), nullable=False, comment=(
        "scored, cached, skipped_no_key, skipped_no_content, skipped_sampling, skipped_budget or failed")),
    sa.Column("judge_error", sa.Text(), nullable=True),
    sa.Column("peer_score", sa.Float(), nullable=True, comment="mean of leniency-corrected peer reviews"),
    sa.Column("peer_review_count", sa.Integer(), nullable=False),
    sa.Column("user_score", sa.Float(), nullable=True, comment="mean of (rating - 1) / 4"),
    sa.Column("user_rating_count", sa.Integer(), nullable=False),
    sa.Column("feedback_type", sa.Text(), nullable=True, comment="latest feedback type (feedback events first)"),
    sa.Column("feedback_count", sa.Integer(), nullable=False, comment="feedback events for the task"),
    sa.Column("code_review_score", sa.Float(), nullable=True, comment="mean of test pass rate, coverage, "
              "1 / (1 + lint errors)"),
    sa.Column("quality_score", sa.Float(), nullable=True, **_SCORE),
    sa.Column("overall_score", sa.Float(), nullable=True, **_SCORE),
    sa.Column("components_used", sa.Integer(), nullable=False, comment="quality components that contributed"),
    sa.Column("weights_used", JSON, nullable=False, comment="renormalized weights of quality and overall"),
    comment="One row per task: every score component, the composite, and how it was made.",
)
sa.Index("ix_task_scores_agent_partition", task_scores.c.agent_id, task_scores.c.partition_date)

llm_judgements = sa.Table(
    "llm_judgements",
    metadata,
    sa.Column("task_id", sa.Text(), primary_key=True),
    sa.Column("content_hash", sa.String(64), primary_key=True, comment="sha256 of the judged (redacted) text"),
    sa.Column("judge_model", sa.Text(), primary_key=True),
    sa.Column("rubric_version", sa.Text(), primary_key=True, comment="rubric, or rubric/panel persona"),
    sa.Column("accuracy", sa.Float(), nullable=False),
    sa.Column("relevance", sa.Float(), nullable=False),
    sa.Column("completeness", sa.Float(), nullable=False),
    sa.Column("rationale", sa.Text(), nullable=False),
    sa.Column("input_tokens", sa.BigInteger(), nullable=True),
    sa.Column("output_tokens", sa.BigInteger(), nullable=True),
    sa.Column("cost_usd", sa.Float(), nullable=True, comment="all attempts; null when the judge's price is unknown"),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("judged_at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.Text(), nullable=True),
    comment="Cache of LLM judgements: a task is judged again only when its text, the model or the rubric changes.",
)

llm_judge_calls = sa.Table(
    "llm_judge_calls",
    metadata,
    sa.Column("call_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text(), nullable=True, index=True),
    sa.Column("task_id", sa.Text(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("judge_model", sa.Text(), nullable=False),
    sa.Column("rubric_version", sa.Text(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False, comment="ok, malformed, refusal or error"),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("input_tokens", sa.BigInteger(), nullable=True),
    sa.Column("output_tokens", sa.BigInteger(), nullable=True),
    sa.Column("cost_usd", sa.Float(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("called_at", UTCDateTime, nullable=False),
    comment="Every call to the judge, answered or not: what evaluation itself costs.",
)

panel_reviews = sa.Table(
    "panel_reviews",
    metadata,
    sa.Column("evaluation_id", sa.Text(), primary_key=True),
    sa.Column("task_id", sa.Text(), nullable=False, index=True),
    sa.Column("partition_date", sa.Date(), nullable=False, index=True, comment="the reviewed task's day"),
    sa.Column("evaluator_agent_id", sa.Text(), nullable=False, comment="panel:<persona>"),
    sa.Column("evaluated_agent_id", sa.Text(), nullable=False),
    sa.Column("accuracy", sa.Float(), nullable=False),
    sa.Column("relevance", sa.Float(), nullable=False),
    sa.Column("completeness", sa.Float(), nullable=False),
    sa.Column("comment", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("judge_model", sa.Text(), nullable=False),
    sa.Column("rubric_version", sa.Text(), nullable=False),
    comment="Peer evaluations written by the LLM reviewer panel (personas), beside the ingested ones.",
)

prompt_quality = sa.Table(
    "prompt_quality",
    metadata,
    sa.Column("date", sa.Date(), primary_key=True, comment="the task's day (partition_date)"),
    sa.Column("task_id", sa.Text(), primary_key=True),
    sa.Column("task_type", sa.Text(), nullable=False),
    sa.Column("prompt_version", sa.Text(), nullable=True),
    sa.Column("quality_score", sa.Float(), nullable=False, comment="the task's quality_score (0..1)"),
    comment=("Per scored task with a quality score: its task type, prompt version and quality, written with its "
             "task_scores row. The prompt comparisons read 30 days of these from their day blocks instead of "
             "joining 200,000 tasks with their scores."),
    info={DAY_BLOCKS: None},
)

collaboration_scores = sa.Table(
    "collaboration_scores",
    metadata,
    sa.Column("agent_id", sa.Text(), primary_key=True),
    sa.Column("date", sa.Date(), primary_key=True),
    sa.Column("requests_received", sa.Integer(), nullable=False),
    sa.Column("requests_answered", sa.Integer(), nullable=False),
    sa.Column("answer_rate", sa.Float(), nullable=True, **_SCORE),
    sa.Column("median_response_latency_s", sa.Float(), nullable=True),
    sa.Column("latency_score", sa.Float(), nullable=True, comment="0.5 ** (median latency / half-life)"),
    sa.Column("helpfulness_ratings", sa.Integer(), nullable=False, comment="ratings received for messages sent"),
    sa.Column("helpfulness_score", sa.Float(), nullable=True, comment="mean of (helpfulness - 1) / 4"),
    sa.Column("peer_reviewed_tasks", sa.Integer(), nullable=False),
    sa.Column("peer_score", sa.Float(), nullable=True, comment="mean peer_score of the agent's tasks that day"),
    sa.Column("collaboration_score", sa.Float(), nullable=True, **_SCORE),
    sa.Column("components_used", sa.Integer(), nullable=False),
    comment="Per agent and day: how the agent works with others (a separate score, not part of quality).",
)

def _entity_columns() -> list[sa.Column]:
    return [sa.Column("entity_type", sa.String(32), primary_key=True,
                      comment="agent, department, project, provider, model, task_type, provider_task_type, "
                              "prompt_version; rollups also model_task_type, project_agent, department_agent"),
            sa.Column("entity_id", sa.Text(), primary_key=True, comment="provider/task_type for provider_task_type")]


daily_rollups = sa.Table(
    "daily_rollups",
    metadata,
    *_entity_columns(),
    sa.Column("date", sa.Date(), primary_key=True),
    *[sa.Column(name, sa.Text(), nullable=True, comment="set when part of the entity (entity_id joins them by /)")
      for name in ("agent_id", "department", "project_id", "provider", "model", "task_type", "prompt_version")],
    sa.Column("first_task_at", UTCDateTime, nullable=False, comment="earliest assigned_at of the day's tasks"),
    sa.Column("last_task_at", UTCDateTime, nullable=False, comment="latest completed_at of the day's tasks"),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in (
        "n_tasks", "tasks_completed", "tasks_failed", "sla_known", "sla_met", "feedback_typed", "corrections",
        "enhancements", "approvals", "innovations")],
    *[column for metric in ("quality_score", "overall_score", "efficiency_score", "cost_usd", "completion_time_s",
                            "total_tokens", "tool_invocations", "revision_count", "user_rating",
                            "collaboration_score")
      for column in (sa.Column(f"sum_{metric}", sa.Float(), nullable=False),
                     sa.Column(f"n_{metric}", sa.BigInteger(), nullable=False, comment="known values summed"))],
    sa.Column("response_time_histogram", JSON, nullable=False, comment="{log bin: count}; see aggregates/latency.py"),
    sa.PrimaryKeyConstraint("date", "entity_type", "entity_id"),
    comment="Per entity and day: mergeable counts and sums; every window metric is derived from these.",
    info={DAY_BLOCKS: "entity_type", ROW_ORDER: ["entity_type", "entity_id", "date"]},
)

daily_metrics = sa.Table(
    "daily_metrics",
    metadata,
    *_entity_columns(),
    sa.Column("date", sa.Date(), primary_key=True),
    sa.Column("n_tasks", sa.BigInteger(), nullable=False),
    *[sa.Column(name, sa.Float(), nullable=True) for name in (
        "success_rate", "avg_quality_score", "avg_overall_score", "avg_efficiency_score", "collaboration_score",
        "avg_user_rating", "sla_compliance_rate", "avg_cost_per_task", "avg_completion_time_s",
        "p95_response_time_ms", "p50_response_time_ms", "avg_tokens")],
    sa.PrimaryKeyConstraint("date", "entity_type", "entity_id"),
    comment="Per entity and day: that day's metrics (the points of trends and baselines), computed once.",
    info={DAY_BLOCKS: "entity_type", ROW_ORDER: ["entity_type", "entity_id", "date"]},
)

day_blocks = sa.Table(
    "day_blocks",
    metadata,
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("date", sa.Date(), primary_key=True),
    sa.Column("part", sa.Text(), primary_key=True,
              comment=("the rows' value of the table's part column ('' without one); "
                       "'*': the day's marker")),
    sa.Column("n_rows", sa.BigInteger(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False,
              comment="Arrow IPC stream, LZ4-compressed; the '*' marker's: the format's signature"),
    comment=("Per table, day and part: the day's rows as one Arrow IPC block, written with the rows in the same "
             "transaction; the aggregates read their trailing days from here (warehouse/blocks.py)."),
)

_WINDOW_FLOAT = ["success_rate", "avg_quality_score", "avg_overall_score", "avg_efficiency_score", "avg_cost_per_task",
                 "avg_completion_time_s", "avg_tokens", "avg_tool_invocations", "avg_revision_count",
                 "avg_user_rating", "sla_compliance_rate", "collaboration_score", "correction_rate",
                 "enhancement_rate", "approval_rate", "total_cost_usd", "p50_response_time_ms",
                 "p95_response_time_ms"]
window_stats = sa.Table(
    "window_stats",
    metadata,
    *_entity_columns(),
    sa.Column("as_of_date", sa.Date(), primary_key=True, comment="windows end with this day (included)"),
    sa.Column("window_days", sa.Integer(), primary_key=True, comment="7, 30 or 90: tasks of (D - W, D]"),
    sa.Column("n_tasks", sa.BigInteger(), nullable=False),
    sa.Column("tasks_completed", sa.BigInteger(), nullable=True),
    sa.Column("tasks_failed", sa.BigInteger(), nullable=True),
    *[sa.Column(name, sa.Float(), nullable=True) for name in _WINDOW_FLOAT],
    sa.Column("innovation_count", sa.BigInteger(), nullable=True),
    *[sa.Column(name, sa.BigInteger(), nullable=False, comment="values the average used") for name in (
        "n_quality", "n_overall", "n_efficiency", "n_cost", "n_completion_time", "n_tokens", "n_user_ratings",
        "n_sla", "n_feedback_typed", "n_collaboration_days", "n_response_times")],
    sa.Column("status", sa.String(24), nullable=False, comment="ok, or insufficient_data (metrics null)"),
    sa.PrimaryKeyConstraint("as_of_date", "entity_type", "entity_id", "window_days"),
    comment="Rolling 7/30/90-day metrics per entity as of each day.",
    info={ROW_ORDER: ["entity_type", "entity_id", "as_of_date", "window_days"]},
)

trends = sa.Table(
    "trends",
    metadata,
    *_entity_columns(),
    sa.Column("as_of_date", sa.Date(), primary_key=True),
    sa.Column("window_days", sa.Integer(), primary_key=True),
    sa.Column("metric", sa.Text(), primary_key=True),
    sa.Column("n_points", sa.Integer(), nullable=False, comment="days with tasks and a known value"),
    *[sa.Column(name, sa.Float(), nullable=True) for name in (
        "slope_per_day", "slope_low", "slope_high", "intercept", "relative_change", "mann_kendall_p")],
    sa.Column("direction", sa.String(24), nullable=False, comment="improving, stable, declining or insufficient_data"),
    sa.PrimaryKeyConstraint("as_of_date", "entity_type", "entity_id", "window_days", "metric"),
    comment="Theil-Sen trend per entity, window and metric, with its 95 % interval and a Mann-Kendall p-value.",
    info={ROW_ORDER: ["entity_type", "entity_id", "as_of_date", "window_days", "metric"]},
)

def _baseline_columns() -> list[sa.Column]:
    return [
        *_entity_columns(),
        sa.Column("date", sa.Date(), primary_key=True),
        sa.Column("metric", sa.Text(), primary_key=True),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("baseline_median", sa.Float(), nullable=True),
        sa.Column("baseline_mad", sa.Float(), nullable=True),
        sa.Column("baseline_days", sa.Integer(), nullable=False),
        sa.Column("robust_z", sa.Float(), nullable=True),
        sa.Column("is_anomaly", sa.Boolean(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=True, comment="better or worse, for anomalies"),
    ]


baselines = sa.Table(
    "baselines", metadata, *_baseline_columns(),
    comment="The day's value per provider_task_type and metric against the previous 30 days' median and MAD.",
)
anomalies = sa.Table(
    "anomalies", metadata, *_baseline_columns(),
    comment="The baseline rows flagged as anomalies (|robust z| above the threshold).",
)


def _as_of_window() -> list[sa.Column]:
    return [sa.Column("as_of_date", sa.Date(), primary_key=True),
            sa.Column("window_days", sa.Integer(), primary_key=True,
                      comment="tasks of (as_of_date - window, as_of_date]")]


def _floats(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Float(), nullable=True) for name in names]


leaderboard = sa.Table(
    "leaderboard",
    metadata,
    *_as_of_window(),
    sa.Column("agent_id", sa.Text(), primary_key=True),
    sa.Column("rank", sa.Integer(), nullable=True,
              comment="1 = best avg_overall_score (ties: more tasks); null: unranked"),
    sa.Column("status", sa.String(24), nullable=False, comment="ranked, insufficient_data or no_scores"),
    sa.Column("department", sa.Text(), nullable=True, comment="where the agent did most of the window's tasks"),
    sa.Column("n_tasks", sa.BigInteger(), nullable=False),
    sa.Column("n_overall", sa.BigInteger(), nullable=False, comment="tasks with an overall score"),
    *_floats("avg_overall_score", "avg_quality_score", "success_rate", "avg_cost_per_task", "total_cost_usd"),
    comment="Agents ranked by average overall score per window; agents with fewer than 5 tasks listed unranked.",
)

most_improved_agents = sa.Table(
    "most_improved_agents",
    metadata,
    *_as_of_window(),
    sa.Column("agent_id", sa.Text(), nullable=True, comment="null: no agent has a significant improving trend"),
    sa.Column("n_points", sa.Integer(), nullable=True),
    *_floats("slope_per_day", "slope_low", "slope_high", "relative_change", "mann_kendall_p"),
    sa.Column("candidates", sa.Integer(), nullable=False, comment="agents whose overall-score trend is improving"),
    sa.Column("agents_evaluated", sa.Integer(), nullable=False, comment="agents with enough points for a trend"),
    comment="Per window, the agent with the steepest significant improving trend in overall score.",
)

provider_rankings = sa.Table(
    "provider_rankings",
    metadata,
    sa.Column("as_of_date", sa.Date(), primary_key=True),
    sa.Column("task_type", sa.Text(), primary_key=True),
    sa.Column("provider", sa.Text(), primary_key=True),
    sa.Column("model", sa.Text(), primary_key=True),
    sa.Column("window_days", sa.Integer(), nullable=False),
    sa.Column("rank", sa.Integer(), nullable=True, comment="1 = highest utility; null: not a candidate"),
    sa.Column("status", sa.String(24), nullable=False,
              comment="ranked, insufficient_data, unknown_quality, unknown_cost or unknown_latency"),
    sa.Column("n_tasks", sa.BigInteger(), nullable=False),
    sa.Column("n_quality", sa.BigInteger(), nullable=False),
    sa.Column("n_cost", sa.BigInteger(), nullable=False),
    *_floats("avg_quality_score", "avg_cost_per_task", "p50_response_time_ms", "success_rate", "utility"),
    comment="Per task type, provider/model candidates ranked on quality, cost and latency (utility: see README).",
)

prompt_version_comparisons = sa.Table(
    "prompt_version_comparisons",
    metadata,
    sa.Column("as_of_date", sa.Date(), primary_key=True),
    sa.Column("task_type", sa.Text(), primary_key=True),
    sa.Column("version_a", sa.Text(), primary_key=True),
    sa.Column("version_b", sa.Text(), primary_key=True, comment="version_a < version_b"),
    sa.Column("window_days", sa.Integer(), nullable=False),
    sa.Column("n_a", sa.Integer(), nullable=False),
    sa.Column("n_b", sa.Integer(), nullable=False),
    *_floats("median_a", "median_b", "u_statistic", "p_value"),
    sa.Column("p_value_holm", sa.Float(), nullable=True, comment="Holm-adjusted over the task type's pairs"),
    sa.Column("prob_a_beats_b", sa.Float(), nullable=True, comment="U / (n_a n_b): common-language effect size"),
    sa.Column("verdict", sa.String(24), nullable=False,
              comment="a_better, b_better, no_difference or insufficient_data"),
    comment="Mann-Whitney U tests of quality scores between prompt versions of a task type.",
)

project_summaries = sa.Table(
    "project_summaries",
    metadata,
    *_as_of_window(),
    sa.Column("project_id", sa.Text(), primary_key=True),
    sa.Column("first_task_at", UTCDateTime, nullable=False, comment="earliest assigned_at up to as_of_date"),
    sa.Column("last_task_at", UTCDateTime, nullable=False, comment="latest completed_at up to as_of_date"),
    sa.Column("n_tasks", sa.BigInteger(), nullable=False),
    sa.Column("n_agents", sa.Integer(), nullable=False),
    sa.Column("n_feedback_typed", sa.BigInteger(), nullable=False),
    *_floats("correction_rate", "enhancement_rate", "approval_rate"),
    sa.Column("innovation_count", sa.BigInteger(), nullable=False),
    sa.Column("most_improved_agent", sa.Text(), nullable=True),
    sa.Column("most_improved_slope", sa.Float(), nullable=True, comment="overall score per day"),
    sa.Column("status", sa.String(24), nullable=False),
    comment="Per project and window: its span, feedback rates, innovations and most improved agent.",
)

project_agent_stats = sa.Table(
    "project_agent_stats",
    metadata,
    *_as_of_window(),
    sa.Column("project_id", sa.Text(), primary_key=True),
    sa.Column("agent_id", sa.Text(), primary_key=True),
    sa.Column("n_tasks", sa.BigInteger(), nullable=False),
    sa.Column("n_feedback_typed", sa.BigInteger(), nullable=False),
    *_floats("correction_rate", "enhancement_rate", "approval_rate", "avg_overall_score"),
    sa.Column("innovation_count", sa.BigInteger(), nullable=True),
    sa.Column("status", sa.String(24), nullable=False),
    comment="Per project, agent and window: the agent's feedback rates and innovations in that project.",
)

node_rollups = sa.Table(
    "node_rollups",
    metadata,
    sa.Column("agent_id", sa.Text(), primary_key=True),
    sa.Column("node", sa.Text(), primary_key=True),
    sa.Column("date", sa.Date(), primary_key=True),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in ("n_steps", "n_status_known", "n_failed",
                                                                     "n_duration", "n_tokens")],
    sa.Column("sum_duration_s", sa.Float(), nullable=False),
    sa.Column("sum_tokens", sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint("date", "agent_id", "node"),
    comment="Per agent, node and day: mergeable step counts and sums (from task_steps).",
    info={DAY_BLOCKS: None, ROW_ORDER: ["agent_id", "node", "date"]},
)

node_performance = sa.Table(
    "node_performance",
    metadata,
    *_as_of_window(),
    sa.Column("agent_id", sa.Text(), primary_key=True),
    sa.Column("node", sa.Text(), primary_key=True),
    sa.Column("n_steps", sa.BigInteger(), nullable=False),
    *_floats("failure_rate", "avg_duration_s", "avg_tokens"),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in ("n_status_known", "n_duration", "n_tokens")],
    sa.Column("status", sa.String(24), nullable=False),
    comment="Per agent, node and window: step count, failure rate, average duration and tokens.",
)


def _evidence_columns() -> list[sa.Column]:
    return [
        sa.Column("severity", sa.String(16), nullable=False, comment="warning or critical (the rule's)"),
        sa.Column("kind", sa.String(16), nullable=False, comment="threshold, anomaly or trend"),
        sa.Column("metric", sa.Text(), nullable=True),
        sa.Column("window_days", sa.Integer(), nullable=True, comment="the window; for anomalies the baseline days"),
        sa.Column("observed", sa.Float(), nullable=True, comment="the metric's value, or the trend's slope per day"),
        sa.Column("threshold", sa.Float(), nullable=True, comment="the rule's limit, for thresholds"),
        sa.Column("baseline", sa.Float(), nullable=True, comment="the baseline median, for anomalies"),
        sa.Column("n_tasks", sa.BigInteger(), nullable=True, comment="tasks of the window, or points of the trend"),
        sa.Column("evidence", JSON, nullable=True, comment="the other figures: robust z, trend interval, p-value"),
    ]


alert_conditions = sa.Table(
    "alert_conditions",
    metadata,
    sa.Column("as_of_date", sa.Date(), primary_key=True),
    sa.Column("rule", sa.Text(), primary_key=True),
    *_entity_columns(),
    *_evidence_columns(),
    comment="The rules that hold as of each day, per entity, with their evidence (a pure function of the day's "
            "window_stats, anomalies and trends).",
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("as_of_date", sa.Date(), primary_key=True),
    sa.Column("rule", sa.Text(), primary_key=True),
    *_entity_columns(),
    sa.Column("status", sa.String(16), nullable=False, comment="firing, or resolved (from the first day it no "
                                                                "longer holds, for resolve_after days)"),
    sa.Column("started_on", sa.Date(), nullable=False, comment="first day of the alert (flaps inside resolve_after "
                                                               "do not start a new one); at most 90 days back"),
    sa.Column("last_held_on", sa.Date(), nullable=False),
    sa.Column("resolved_on", sa.Date(), nullable=True),
    sa.Column("resolution_final", sa.Boolean(), nullable=False,
              comment="resolved for resolve_after days: the resolved notification goes out"),
    sa.Column("escalated", sa.Boolean(), nullable=False, comment="firing for escalate_after days or more"),
    sa.Column("silenced_by", sa.Integer(), nullable=True,
              comment="the silence that held back its notifications (days within the notify lookback)"),
    *_evidence_columns(),
    comment="Each alert's state as of each day, keyed by rule and entity, with the evidence of its last firing day.",
)

alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("notification_key", sa.Text(), primary_key=True,
              comment="rule|entity_type|entity_id|started_on|kind[|day]: what was announced, once"),
    sa.Column("rule", sa.Text(), nullable=False),
    sa.Column("entity_type", sa.String(32), nullable=False),
    sa.Column("entity_id", sa.Text(), nullable=False),
    sa.Column("started_on", sa.Date(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, comment="firing, repeat, escalation or resolved"),
    sa.Column("as_of_date", sa.Date(), nullable=False, comment="the evaluation that announced it"),
    sa.Column("message_key", sa.Text(), nullable=False, comment="the grouped message (notification_outbox)"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    comment="The ledger of alert notifications: each announcement once, whatever re-runs and backfills do.",
)
sa.Index("ix_alert_notifications_alert", alert_notifications.c.rule, alert_notifications.c.entity_type,
         alert_notifications.c.entity_id, alert_notifications.c.started_on)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("silence_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("rule", sa.Text(), nullable=False),
    sa.Column("entity_id", sa.Text(), nullable=True, comment="null: every entity of the rule"),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("created_by", sa.Text(), nullable=True),
    sa.Column("expired_at", UTCDateTime, nullable=True, comment="set by silence expire: ended before ends_at"),
    comment="Silences: alerts they match are recorded and shown as silenced, never sent.",
)

notification_outbox = sa.Table(
    "notification_outbox",
    metadata,
    sa.Column("delivery_key", sa.Text(), primary_key=True,
              comment="the idempotency key: message key and destination (webhooks receive it as Idempotency-Key)"),
    sa.Column("message_key", sa.Text(), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False, comment="slack or webhook"),
    sa.Column("target", sa.Text(), nullable=False,
              comment="the Slack channel, or the webhook's id (a hash of its URL, which may hold a secret)"),
    sa.Column("kind", sa.String(24), nullable=False, comment="alert kinds, run_failure, report"),
    sa.Column("payload", JSON, nullable=False, comment="Slack: text, blocks, files; webhook: the JSON document"),
    sa.Column("status", sa.String(16), nullable=False, comment="pending, sent or dead (after max_attempts)"),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("ambiguous", sa.Boolean(), nullable=False,
              comment="the last attempt may have been delivered (its response was lost)"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("receipt", sa.Text(), nullable=True, comment="Slack's message ts, or the webhook's HTTP status"),
    comment="Notifications to deliver: written in the transaction of what caused them, sent and retried by the "
            "notification_sender sensor (at least once; a lost response gives at most one duplicate).",
)
reports = sa.Table(
    "reports",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True, comment="daily or weekly"),
    sa.Column("period", sa.String(16), primary_key=True, comment="2026-03-04, or the ISO week 2026-W10"),
    sa.Column("first_day", sa.Date(), nullable=False),
    sa.Column("last_day", sa.Date(), nullable=False),
    sa.Column("markdown", sa.Text(), nullable=False),
    sa.Column("html_path", sa.Text(), nullable=False, comment="the self-contained HTML report under PERF_REPORTS_DIR"),
    sa.Column("chart_paths", JSON, nullable=False, comment="the charts' PNG files, posted with the Slack summary"),
    sa.Column("slack_blocks", JSON, nullable=False, comment="the Block Kit summary"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    comment="The daily and weekly reports, as last rendered; notification_outbox says where they were posted.",
)

sa.Index("ix_notification_outbox_status_next", notification_outbox.c.status, notification_outbox.c.next_attempt_at)

# Aggregates are read and replaced by day range (with an entity type): without these, each new
# day would scan the whole history of its table, and its cost would grow with the history. (The
# tables whose primary key starts with the day need none.)
for _table, _columns in ((baselines, ("date",)), (anomalies, ("date",)), (alert_conditions, ("as_of_date",)),
                         (alerts, ("as_of_date",))):
    sa.Index(f"ix_{_table.name}_{'_'.join(_columns)}", *[_table.c[c] for c in _columns])
del _table, _columns
# Indexes of earlier versions that a day-first primary key makes redundant: dropped with the former
# key when a table gets the new one (``db.rekey_tables``).
RETIRED_INDEXES = {"daily_rollups": ["ix_daily_rollups_date_entity_type"],
                   "daily_metrics": ["ix_daily_metrics_date_entity_type"], "node_rollups": ["ix_node_rollups_date"],
                   "window_stats": ["ix_window_stats_as_of_date_entity_type"],
                   "trends": ["ix_trends_as_of_date_entity_type"]}
# The projects' rollups of every day, for their first and last task ever (``read_project_spans``):
# a few rows a day, found without reading the other entities' rows of the whole history. Partial:
# a query uses it when it names the entity type as this literal.
PROJECT_ROLLUP = sa.text("entity_type = 'project'")
sa.Index("ix_daily_rollups_project_days", daily_rollups.c.project_id, daily_rollups.c.date,
         daily_rollups.c.first_task_at, daily_rollups.c.last_task_at,
         sqlite_where=PROJECT_ROLLUP, postgresql_where=PROJECT_ROLLUP)

EVENT_TABLES: dict[str, sa.Table] = {
    event_type: metadata.tables[name] for event_type, name in EVENT_TABLE_NAMES.items()
}

# DDL files in sql/ddl, one per table group, in creation order.
DDL_GROUPS: dict[str, list[sa.Table]] = {
    "010_ingest.sql": [ingested_files, staged_events, staged_day_changes, quarantined_events],
    "020_reference.sql": [objective_templates],
    "030_events.sql": [task_events, task_steps, feedback_events, peer_evaluations, collaboration_messages],
    "040_scoring.sql": [price_table, task_scores, prompt_quality, llm_judgements, llm_judge_calls, panel_reviews,
                        collaboration_scores],
    "050_aggregates.sql": [daily_rollups, daily_metrics, window_stats, trends, baselines, anomalies, day_blocks],
    "060_rankings.sql": [leaderboard, most_improved_agents, provider_rankings, prompt_version_comparisons,
                         project_summaries, project_agent_stats, node_rollups, node_performance],
    "070_alerts.sql": [alert_conditions, alerts, alert_notifications, silences, notification_outbox],
    "080_reports.sql": [reports],
}
