"""Warehouse reads and writes of the scoring assets: frames in, rows out, bound parameters only."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.scoring.components import EVALUATION_DIMENSIONS
from perf_pipeline.scoring.judge import JudgeOutcome
from perf_pipeline.warehouse.db import (
    chunked,
    insert_new_rows,
    insert_rows,
    read_frame,
    run_seed,
    to_python_date,
)
from perf_pipeline.warehouse.schema import (
    EVENT_TABLES,
    llm_judge_calls,
    llm_judgements,
    panel_reviews,
    price_table,
    prompt_quality,
    task_scores,
)

TASKS = EVENT_TABLES["task"]
FEEDBACK = EVENT_TABLES["feedback"]
PEER = EVENT_TABLES["peer_evaluation"]
MESSAGES = EVENT_TABLES["message"]


class StaleDay(NamedTuple):
    day: dt.date
    tasks: int  # tasks whose feedback or reviews changed since they were scored
    fingerprint: str  # of those tasks and their current counts


CACHE_LOOKUP_IDS = 1_000  # task ids per cache query (bound parameters stay well under driver limits)
REVIEW_COLUMNS = ["evaluation_id", "task_id", "evaluator_agent_id", "evaluated_agent_id",
                  "accuracy", "relevance", "completeness"]


def seed_prices(conn: Connection) -> pd.DataFrame:
    run_seed(conn, "price_table.sql")
    return read_prices(conn)


def read_prices(conn: Connection) -> pd.DataFrame:
    return read_frame(conn, sa.select(price_table))


# The task columns scoring and prompt_quality use. Not the lineage, the timestamps or the task's
# other fields: reading all 38 columns of a fleet's 30 days (198,000 tasks) took 3.0 s, these and the
# texts 1.6 s. Nor its texts, which only the judge reads (``JUDGED_TASK_COLUMNS``), in the run's process.
SCORED_TASK_COLUMNS = ["task_id", "partition_date", "agent_id", "provider", "model", "task_type", "prompt_version",
                       "status", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "completion_time_s",
                       "code_review_lint_errors", "code_review_tests_passed", "code_review_tests_failed",
                       "code_review_coverage", "user_rating", "feedback_type"]
JUDGED_TASK_COLUMNS = ["task_id", "partition_date", "agent_id", "objective", "input", "output"]


def read_tasks(conn: Connection, first: dt.date, last: dt.date,
               columns: Sequence[str] = tuple(SCORED_TASK_COLUMNS)) -> pd.DataFrame:
    """The tasks of [first, last] (``columns``: those scoring uses, or ``JUDGED_TASK_COLUMNS`` for
    the judge), by day and task id."""
    return read_frame(conn, sa.select(*[TASKS.c[name] for name in columns])
                      .where(TASKS.c.partition_date.between(first, last))
                      .order_by(TASKS.c.partition_date, TASKS.c.task_id))


HISTORY_COLUMNS = ["task_id", "partition_date", "task_type", "provider", "model", "total_tokens",
                   "completion_time_s", "input_tokens", "output_tokens", "cost_usd"]


def read_history(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The task columns the trailing baselines need (``HISTORY_COLUMNS``) of [first, last], by task id."""
    return read_frame(conn, sa.select(*[TASKS.c[c] for c in HISTORY_COLUMNS]).where(
        TASKS.c.partition_date.between(first, last)).order_by(TASKS.c.task_id))


def read_feedback(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Feedback events of the tasks of [first, last], whenever the feedback arrived."""
    return read_frame(conn, feedback_query(first, last))


def feedback_query(first: dt.date, last: dt.date) -> sa.Select:
    """``read_feedback``'s query: from the range's tasks (by day) to their feedback (by task id)."""
    return (sa.select(FEEDBACK.c.feedback_id, FEEDBACK.c.task_id, FEEDBACK.c.user_rating, FEEDBACK.c.feedback_type,
                      FEEDBACK.c.created_at)
            .join(TASKS, TASKS.c.task_id == FEEDBACK.c.task_id)
            .where(TASKS.c.partition_date.between(first, last)).order_by(FEEDBACK.c.feedback_id))


def reviews_query(first: dt.date, last: dt.date) -> sa.Select:
    """The ingested peer evaluations of ``read_reviews``: from the range's tasks to their reviews."""
    return (sa.select(*[PEER.c[c] for c in REVIEW_COLUMNS], TASKS.c.partition_date, PEER.c.created_at)
            .join(TASKS, TASKS.c.task_id == PEER.c.task_id)
            .where(TASKS.c.partition_date.between(first, last)).order_by(PEER.c.evaluation_id))


def read_reviews(conn: Connection, first: dt.date, last: dt.date, judged_panel: pd.DataFrame | None = None,
                 judged_from: dt.date | None = None) -> pd.DataFrame:
    """Ingested peer evaluations and panel reviews of the tasks of [first, last], with the task's day
    and ``known_on``: the day a review became known (its created_at; a panel review's task day).

    ``judged_panel``: the panel reviews a run judged of the days from ``judged_from`` on, which it has
    not written yet; they take the place of those days' stored ones, which the run replaces.

    In id order, as every read here: float sums then add up the same whatever order the rows were
    ingested in, so a late file leaves the scores a clean run would give. The panel's ids are ordered
    here, stored and judged ones together, by code point whatever the database's collation."""
    stored_until = last if judged_from is None else min(last, judged_from - dt.timedelta(days=1))
    panel = sa.select(*[panel_reviews.c[c] for c in REVIEW_COLUMNS], panel_reviews.c.partition_date).where(
        panel_reviews.c.partition_date.between(first, stored_until))
    ingested_frame = read_frame(conn, reviews_query(first, last))
    ingested_frame["known_on"] = ingested_frame["created_at"].dt.date
    panel_parts = [read_frame(conn, panel)]
    if judged_panel is not None and not judged_panel.empty:
        since = first if judged_from is None else max(first, judged_from)
        judged = judged_panel[judged_panel["partition_date"].between(since, last)]
        panel_parts.append(judged[[*REVIEW_COLUMNS, "partition_date"]].astype(
            dict.fromkeys(EVALUATION_DIMENSIONS, "float64")))
    panel_frame = pd.concat([part for part in panel_parts if not part.empty] or panel_parts[:1], ignore_index=True)
    panel_frame = panel_frame.sort_values("evaluation_id", kind="stable", ignore_index=True)
    panel_frame["known_on"] = panel_frame["partition_date"]
    return pd.concat([ingested_frame.drop(columns="created_at"), panel_frame], ignore_index=True)


def read_cache(conn: Connection, task_ids: Sequence[str], models: Sequence[str]) -> pd.DataFrame:
    """Cached judgements of ``task_ids`` by any of ``models`` (all rubric versions). When the cache has
    no judgement by those models (the judge never ran), one query says so instead of one per
    thousand task ids."""
    if conn.execute(sa.select(llm_judgements.c.task_id).where(llm_judgements.c.judge_model.in_(list(models)))
                    .limit(1)).first() is None:
        task_ids = []
    parts = [read_frame(conn, sa.select(llm_judgements).where(llm_judgements.c.task_id.in_(list(ids)),
                                                              llm_judgements.c.judge_model.in_(list(models))))
             for ids in chunked(task_ids, CACHE_LOOKUP_IDS)]
    return pd.concat(parts, ignore_index=True) if parts else read_frame(conn, sa.select(llm_judgements).where(
        sa.false()))


def save_outcomes(conn: Connection, outcomes: Sequence[JudgeOutcome], run_id: str | None) -> None:
    """Every call made, and the judgements obtained (the cache). Committed by the caller as they come
    in, so a crash later in the run never pays for the same judgement twice."""
    calls, judgements = [], []
    for outcome in outcomes:
        item = outcome.item
        key = {"task_id": item.task_id, "content_hash": item.content_hash, "judge_model": item.model,
               "rubric_version": item.rubric_version}
        calls += [{**key, "run_id": run_id, "attempt": call.attempt, "outcome": call.outcome, "error": call.error,
                   "input_tokens": call.input_tokens, "output_tokens": call.output_tokens, "cost_usd": call.cost_usd,
                   "latency_ms": call.latency_ms, "called_at": dt.datetime.fromtimestamp(call.called_at, dt.UTC)}
                  for call in outcome.calls]
        if outcome.judgement is not None:
            j = outcome.judgement
            judgements.append({**key, "accuracy": j.accuracy, "relevance": j.relevance,
                               "completeness": j.completeness, "rationale": j.rationale,
                               "input_tokens": outcome.tokens("input"), "output_tokens": outcome.tokens("output"),
                               "cost_usd": outcome.cost_usd, "attempts": len(outcome.calls),
                               "judged_at": dt.datetime.fromtimestamp(outcome.calls[-1].called_at, dt.UTC),
                               "run_id": run_id})
    # A concurrent run may have judged the same text meanwhile: the first judgement stays.
    insert_new_rows(conn, llm_judgements, judgements)
    insert_rows(conn, llm_judge_calls, calls)


def score_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The task_scores columns of ``scores`` (none when there is nothing scored)."""
    columns = [c.name for c in task_scores.columns]
    return scores[columns] if not scores.empty else pd.DataFrame(columns=columns)


def prompt_quality_rows(tasks: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The ``prompt_quality`` rows of the task_scores ``rows`` of ``tasks``: those with a quality
    score, with their task's prompt version."""
    known = rows[rows["quality_score"].notna()]
    versions = tasks.set_index("task_id")["prompt_version"]
    return pd.DataFrame({"date": known["partition_date"], "task_id": known["task_id"],
                         "task_type": known["task_type"], "prompt_version": known["task_id"].map(versions),
                         "quality_score": known["quality_score"]},
                        columns=[column.name for column in prompt_quality.columns])


def stale_score_days(conn: Connection) -> list[StaleDay]:
    """Days already scored whose tasks received feedback or peer reviews since.

    A task's score records how many feedback events and reviews it was computed from; a day whose
    tasks now have a different number (late feedback, a review days later) must be scored again.
    Each day comes with a fingerprint of what changed, to ask for one run per change.
    """
    feedback = (sa.select(FEEDBACK.c.task_id, sa.func.count().label("n"))
                .group_by(FEEDBACK.c.task_id).subquery())
    reviews = sa.union_all(sa.select(PEER.c.task_id), sa.select(panel_reviews.c.task_id)).subquery()
    review_counts = (sa.select(reviews.c.task_id, sa.func.count().label("n"))
                     .group_by(reviews.c.task_id).subquery())
    feedback_now = sa.func.coalesce(feedback.c.n, 0)
    reviews_now = sa.func.coalesce(review_counts.c.n, 0)
    query = (sa.select(task_scores.c.partition_date, task_scores.c.task_id, feedback_now, reviews_now)
             .select_from(task_scores.outerjoin(feedback, feedback.c.task_id == task_scores.c.task_id)
                          .outerjoin(review_counts, review_counts.c.task_id == task_scores.c.task_id))
             .where(sa.or_(feedback_now != task_scores.c.feedback_count,
                           reviews_now != task_scores.c.peer_review_count))
             .order_by(task_scores.c.partition_date, task_scores.c.task_id))
    days: dict[dt.date, list[str]] = {}
    for day, task_id, n_feedback, n_reviews in conn.execute(query).all():
        days.setdefault(to_python_date(day), []).append(f"{task_id}:{n_feedback}:{n_reviews}")
    return [StaleDay(day, len(tasks), hashlib.sha256("\n".join(tasks).encode()).hexdigest()[:16])
            for day, tasks in days.items()]


def judge_cost_by_day(conn: Connection, run_id: str, first: dt.date, last: dt.date) -> dict[dt.date, float]:
    """What run ``run_id`` spent on judge calls, per day of the tasks judged."""
    query = (sa.select(TASKS.c.partition_date, sa.func.sum(llm_judge_calls.c.cost_usd))
             .join(TASKS, TASKS.c.task_id == llm_judge_calls.c.task_id)
             .where(llm_judge_calls.c.run_id == run_id, TASKS.c.partition_date.between(first, last))
             .group_by(TASKS.c.partition_date))
    return {to_python_date(day): float(cost or 0.0) for day, cost in conn.execute(query)}


def orphan_counts(conn: Connection) -> dict[str, int]:
    """Events that name a task the warehouse does not have (yet), per event type: kept in their
    tables and listed by the view ``v_orphan_events`` (sql/views), which this counts."""
    counts = dict.fromkeys(("feedback", "peer_evaluation", "message"), 0)
    orphans = sa.table("v_orphan_events", sa.column("event_type"))
    counts.update(conn.execute(sa.select(orphans.c.event_type, sa.func.count()).group_by(orphans.c.event_type)).all())
    return counts


def read_messages(conn: Connection, first: dt.date, last: dt.date, answer_window: dt.timedelta) -> pd.DataFrame:
    """Messages sent in [first, last], and the later ones that may answer them (within the window)."""
    until = last + dt.timedelta(days=1 + answer_window.days + (1 if answer_window.seconds else 0))
    columns = ["message_id", "from_agent_id", "to_agent_id", "sent_at", "kind", "in_reply_to", "helpfulness"]
    return read_frame(conn, sa.select(*[MESSAGES.c[c] for c in columns]).where(
        MESSAGES.c.partition_date.between(first, until)).order_by(MESSAGES.c.message_id))


def read_task_peer_scores(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    return read_frame(conn, sa.select(task_scores.c.agent_id, task_scores.c.partition_date,
                                      task_scores.c.peer_score)
                      .where(task_scores.c.partition_date.between(first, last)).order_by(task_scores.c.task_id))
