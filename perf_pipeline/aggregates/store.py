"""Warehouse reads of the aggregate assets."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.scoring.store import read_frame
from perf_pipeline.warehouse.schema import EVENT_TABLES, collaboration_scores, daily_rollups, task_scores

TASKS = EVENT_TABLES["task"]
TASK_COLUMNS = ["agent_id", "department", "project_id", "provider", "model", "task_type", "prompt_version",
                "partition_date", "status", "completion_time_s", "total_tokens", "tool_invocations",
                "revision_count", "sla_seconds", "response_time_ms"]
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


def read_rollups(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    return read_frame(conn, sa.select(daily_rollups).where(daily_rollups.c.date.between(first, last))
                      .order_by(daily_rollups.c.date, daily_rollups.c.entity_type, daily_rollups.c.entity_id))
