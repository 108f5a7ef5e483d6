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

EVENT_TABLES: dict[str, sa.Table] = {
    event_type: metadata.tables[name] for event_type, name in EVENT_TABLE_NAMES.items()
}

# DDL files in sql/ddl, one per table group, in creation order.
DDL_GROUPS: dict[str, list[sa.Table]] = {
    "010_ingest.sql": [ingested_files, staged_events, quarantined_events],
    "020_reference.sql": [objective_templates],
    "030_events.sql": [task_events, task_steps, feedback_events, peer_evaluations, collaboration_messages],
}
