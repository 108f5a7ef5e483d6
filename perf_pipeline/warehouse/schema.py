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

EVENT_TABLES: dict[str, sa.Table] = {
    event_type: metadata.tables[name] for event_type, name in EVENT_TABLE_NAMES.items()
}

# DDL files in sql/ddl, one per table group, in creation order.
DDL_GROUPS: dict[str, list[sa.Table]] = {
    "010_ingest.sql": [ingested_files, staged_events, quarantined_events],
    "020_reference.sql": [objective_templates],
    "030_events.sql": [task_events, task_steps, feedback_events, peer_evaluations, collaboration_messages],
    "040_scoring.sql": [price_table, task_scores, llm_judgements, llm_judge_calls, panel_reviews,
                        collaboration_scores],
}
