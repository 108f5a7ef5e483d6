"""Warehouse reads of the aggregate assets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.aggregates.rollups import WINDOWED_ENTITY_TYPES
from perf_pipeline.warehouse import blocks
from perf_pipeline.warehouse.db import read_frame
from perf_pipeline.warehouse.schema import (
    DAY_BLOCKS,
    EVENT_TABLES,
    PROJECT_ROLLUP,
    collaboration_scores,
    daily_rollups,
    prompt_quality,
    row_order,
    task_scores,
)

TASKS = EVENT_TABLES["task"]
TASK_COLUMNS = ["agent_id", "department", "project_id", "provider", "model", "task_type", "prompt_version",
                "partition_date", "assigned_at", "completed_at", "status", "completion_time_s", "total_tokens",
                "tool_invocations", "revision_count", "sla_seconds", "response_time_ms"]
SCORE_COLUMNS = ["quality_score", "overall_score", "efficiency_score", "cost_usd", "user_score",
                 "user_rating_count", "feedback_type"]


def read_scored_tasks(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Tasks of [first, last] with their scores (a task not scored yet has null scores)."""
    query = (sa.select(*[TASKS.c[c] for c in TASK_COLUMNS], *[task_scores.c[c] for c in SCORE_COLUMNS])
             .select_from(TASKS.outerjoin(task_scores, task_scores.c.task_id == TASKS.c.task_id))
             .where(TASKS.c.partition_date.between(first, last))
             .order_by(TASKS.c.partition_date, TASKS.c.task_id))  # sums add up in the same order on any range
    return read_frame(conn, query)


def read_collaboration(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    return read_frame(conn, sa.select(collaboration_scores.c.agent_id, collaboration_scores.c.date,
                                      collaboration_scores.c.collaboration_score)
                      .where(collaboration_scores.c.date.between(first, last)))


def read_rollups(conn: Connection, first: dt.date, last: dt.date,
                 entity_types: Sequence[str] = WINDOWED_ENTITY_TYPES,
                 columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Rollups of [first, last] of ``entity_types`` (by default those with windows and trends); only
    ``columns`` (with the keys) when given. From the day blocks when every day has them."""
    rollup = daily_rollups.c
    names = list(dict.fromkeys(["entity_type", "entity_id", "date", *columns])) if columns else None
    from_blocks = blocks.read(conn, daily_rollups, first, last, columns=names, parts=list(entity_types))
    if from_blocks is not None:
        return from_blocks
    selected = [rollup[c] for c in names] if names else [daily_rollups]
    return read_frame(conn, sa.select(*selected).where(rollup.date.between(first, last),
                                                       rollup.entity_type.in_(list(entity_types)))
                      .order_by(rollup.date, rollup.entity_type, rollup.entity_id))


def read_days(conn: Connection, table: sa.Table, date_column: str, first: dt.date, last: dt.date,
              **equal: str) -> pd.DataFrame:
    """Rows of ``table`` whose ``date_column`` is in [first, last] and whose columns equal ``equal``,
    in key order (``schema.row_order``: so that sums add up in the same order on any range). From the day blocks
    when the table keeps them, by its day, and every day of the span has them."""
    part = table.info.get(DAY_BLOCKS)
    if blocks.keeps_blocks(table) and date_column == "date" and set(equal) <= {part}:
        from_blocks = blocks.read(conn, table, first, last, parts=[equal[part]] if part in equal else None,
                                  order=row_order(table))
        if from_blocks is not None:
            return from_blocks
    query = sa.select(table).where(table.c[date_column].between(first, last),
                                   *[table.c[name] == value for name, value in equal.items()])
    return read_frame(conn, query.order_by(*[table.c[name] for name in row_order(table)]))


def read_task_quality(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """task_type, prompt_version and quality score of the scored tasks of [first, last], by day.

    Within a day in no particular order: what is computed from them (medians, Mann-Whitney U from
    ranks) does not depend on it. From the day blocks of ``prompt_quality`` (written with the
    scores) when each day of the span has them or has no scored task (before the first scored
    day): a fleet's 30 days (198,000 tasks) joined from task_events and task_scores took 0.5 s,
    most of it making a Python value of each field. Else (days scored by an earlier version, which
    had no prompt_quality) from that join."""
    unwritten = blocks.unwritten_days(conn, prompt_quality, first, last)
    scored = unwritten and conn.execute(sa.select(task_scores.c.task_id).where(
        task_scores.c.partition_date.in_(unwritten), task_scores.c.quality_score.is_not(None)).limit(1)).first()
    if not scored:
        from_blocks = blocks.read(conn, prompt_quality, first, last,
                                  columns=["task_type", "prompt_version", "date", "quality_score"])
        if from_blocks is not None:
            return from_blocks.rename(columns={"date": "partition_date"})
    return joined_task_quality(conn, first, last)


def joined_task_quality(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """``read_task_quality``'s rows from task_events joined with task_scores."""
    query = (sa.select(TASKS.c.task_type, TASKS.c.prompt_version, TASKS.c.partition_date, task_scores.c.quality_score)
             .select_from(TASKS.join(task_scores, task_scores.c.task_id == TASKS.c.task_id))
             .where(TASKS.c.partition_date.between(first, last), task_scores.c.quality_score.is_not(None))
             .order_by(TASKS.c.partition_date))
    return read_frame(conn, query)


def read_project_spans(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Per project, first_task_at and last_task_at: one row (dated the day before ``first``) for all
    the days before ``first``, aggregated by the database, then one row per day of [first, last].

    The entity type is named as the literal of the partial index of project rollups
    (``PROJECT_ROLLUP``), which the days before ``first`` are read from: a bound parameter would
    not let SQLite use it, and it would read every rollup of the history."""
    rollup = daily_rollups.c
    columns = [rollup.project_id, rollup.first_task_at, rollup.last_task_at]
    before = (sa.select(rollup.project_id, sa.func.min(rollup.first_task_at).label("first_task_at"),
                        sa.func.max(rollup.last_task_at).label("last_task_at"))
              .where(PROJECT_ROLLUP, rollup.date < first).group_by(rollup.project_id))
    earlier = read_frame(conn, before).assign(date=first - dt.timedelta(days=1))
    days = read_frame(conn, sa.select(rollup.date, *columns).where(PROJECT_ROLLUP, rollup.date.between(first, last)))
    spans = pd.concat([earlier, days], ignore_index=True)
    for column in ("first_task_at", "last_task_at"):  # SQLite returns MIN/MAX of timestamps as text
        spans[column] = pd.to_datetime(spans[column], utc=True)
    return spans
