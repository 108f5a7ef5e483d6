"""Cut typed daily rows from staged events: read payloads, type them, derive task figures, explode steps."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.events.classify import Template, classify
from perf_pipeline.warehouse.db import frame_to_records
from perf_pipeline.warehouse.schema import EVENT_TABLES, staged_events, task_steps

LINEAGE = ["content_hash", "source_file", "line_number"]


def read_staged(conn: Connection, event_type: str, first_day: dt.date, last_day: dt.date) -> pd.DataFrame:
    """Staged events of one type whose partition is in [first_day, last_day], payload parsed."""
    query = (sa.select(staged_events.c.payload, staged_events.c.partition_date, *[staged_events.c[c] for c in LINEAGE])
             .where(staged_events.c.event_type == event_type,
                    staged_events.c.partition_date.between(first_day, last_day))
             .order_by(staged_events.c.partition_date, staged_events.c.event_id))
    rows = conn.execute(query).all()
    if not rows:
        return pd.DataFrame()
    payloads = pd.read_json(io.StringIO("\n".join(r.payload for r in rows)), lines=True, dtype=False,
                            precise_float=True)
    lineage = pd.DataFrame([r[1:] for r in rows], columns=["partition_date", *LINEAGE])
    return pd.concat([payloads, lineage], axis=1)


def typed_for(table: sa.Table, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` restricted to the table's columns, each cast to the column's type."""
    typed = {}
    for column in table.columns:
        values = frame[column.name] if column.name in frame.columns else pd.Series(None, index=frame.index)
        typed[column.name] = _cast(values, column.type)
    return pd.DataFrame(typed, index=frame.index)


def _cast(values: pd.Series, column_type: sa.types.TypeEngine) -> pd.Series:
    if isinstance(column_type, sa.DateTime):
        return pd.to_datetime(values, utc=True, format="ISO8601")
    if isinstance(column_type, sa.Date):
        return pd.to_datetime(values).dt.date
    if isinstance(column_type, sa.Integer):
        return pd.to_numeric(values).astype("Int64")
    if isinstance(column_type, sa.Float):
        return pd.to_numeric(values).astype("float64")
    return values.astype(object)


def task_rows(frame: pd.DataFrame, templates: list[Template]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``task_events`` and ``task_steps`` for staged task events."""
    if frame.empty:
        return [], []
    frame = frame.copy()
    frame["task_type"], frame["task_type_source"] = classify(
        frame.get("task_type", pd.Series(None, index=frame.index)), frame.get("objective"), templates)
    tokens = frame[["input_tokens", "output_tokens"]].apply(pd.to_numeric)
    frame["total_tokens"] = tokens.sum(axis=1, min_count=2)  # unknown if either part is unknown
    assigned = pd.to_datetime(frame["assigned_at"], utc=True, format="ISO8601")
    completed = pd.to_datetime(frame["completed_at"], utc=True, format="ISO8601")
    frame["completion_time_s"] = (completed - assigned).dt.total_seconds()
    steps = frame["steps"] if "steps" in frame.columns else pd.Series(None, index=frame.index)
    frame["step_count"] = steps.map(lambda s: len(s) if isinstance(s, list) else 0)
    return frame_to_records(typed_for(EVENT_TABLES["task"], frame)), step_rows(frame, steps)


def step_rows(tasks: pd.DataFrame, steps: pd.Series) -> list[dict[str, Any]]:
    """One row per step of every task that reported steps."""
    records = []
    for position, items in steps.items():
        if not isinstance(items, list):
            continue
        for item in items:
            records.append({**item, "task_id": tasks.at[position, "task_id"],
                            "agent_id": tasks.at[position, "agent_id"],
                            "partition_date": tasks.at[position, "partition_date"]})
    if not records:
        return []
    frame = pd.DataFrame.from_records(records)
    frame["duration_s"] = (pd.to_datetime(frame["completed_at"], utc=True, format="ISO8601")
                           - pd.to_datetime(frame["started_at"], utc=True, format="ISO8601")).dt.total_seconds()
    return frame_to_records(typed_for(task_steps, frame))


def event_rows(event_type: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of the event table of a non-task event type."""
    if frame.empty:
        return []
    return frame_to_records(typed_for(EVENT_TABLES[event_type], frame))
