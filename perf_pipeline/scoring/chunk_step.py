"""What ``task_scores`` does to each chunk (a week) of its range, in the chunk's transaction: read the
chunk's tasks, feedback and reviews, score them with the judge's results against their trailing
baselines, replace the chunk's scores, prompt_quality rows and panel reviews, and count what the
asset's checks count of them (``checks.py``).

``warehouse.chunks.each_chunk`` runs it, in two worker processes at once in a backfill. The judge
does not run here: its client, its cache writes and its task budget belong to the run's process,
which judges each chunk before handing it out (``prepare``) and passes the results as arguments,
with the chunk's baseline history, which it reads a week at a time (``db.TrailingDays``).
A chunk's leniency window reads the panel reviews of the 89 days before it, and those of the
range's earlier chunks may not be committed yet (the other worker may still be writing them): the
run passes them too, and they take the place of the stored ones (``store.read_reviews``), as a run
of those days one after the other would have written them first.

So with the panel on, a week may commit while an earlier week whose panel reviews it read fails and
rolls back: its scores then rest on reviews the warehouse does not hold, until the failed range is
run again (its re-run gives what a clean run gives, as after any failure).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection

from perf_pipeline.scoring.checks import scores_counts
from perf_pipeline.scoring.components import EVALUATION_DIMENSIONS
from perf_pipeline.scoring.config import ScoringConfig
from perf_pipeline.scoring.store import (
    REVIEW_COLUMNS,
    prompt_quality_rows,
    read_feedback,
    read_reviews,
    read_tasks,
    score_rows,
)
from perf_pipeline.scoring.tasks import score_tasks
from perf_pipeline.warehouse.db import replace_partition
from perf_pipeline.warehouse.schema import panel_reviews, prompt_quality, task_scores

# What a leniency window reads of a panel review (``store.read_reviews``).
PANEL_WINDOW_COLUMNS = [*REVIEW_COLUMNS, "partition_date"]
# What the asset reports of each scored task (``assets.score_day_figures``), besides its day and agent.
SCORE_FIGURES = ["quality_score", "overall_score", "efficiency_score", "cost_usd", "cost_source"]


@dataclass
class ScoredChunk:
    """What a chunk sends back: its scored tasks' figures, its days' reviews (for the reviewer
    agreement of the range) and what the checks count of its days, not its rows."""

    scores: pd.DataFrame  # partition_date, agent_id and SCORE_FIGURES per task scored
    reviews: pd.DataFrame  # task_id and the dimensions of each review of the chunk's tasks
    check: Counter[str]  # checks.scores_counts


def score_chunk(conn: Connection, first: dt.date, last: dt.date, config: ScoringConfig, prices: pd.DataFrame,
                judged: pd.DataFrame, panel: pd.DataFrame, window: pd.DataFrame, range_first: dt.date,
                history: pd.DataFrame) -> ScoredChunk:
    """Score the tasks of [first, last] and replace their rows, reading everything before writing:
    SQLite's write lock is taken by the first write, so the other worker reads and computes meanwhile.
    The checks' counts follow the writes (one pass over the week's score rows, under the lock).

    ``judged``: the judge's results (``tasks.JUDGE_COLUMNS``) by task id; ``panel``: the chunk's panel
    reviews (``panel_reviews`` rows); ``window``: the ``PANEL_WINDOW_COLUMNS`` of the panel reviews the
    run judged of its range (from ``range_first``, its first day), of the chunk's leniency window up to
    ``last``; ``prices``: price_table; ``history``: ``store.read_history`` of the chunk's baselines
    (its days and those before)."""
    tasks = read_tasks(conn, first, last)
    reviews = read_reviews(conn, first - dt.timedelta(days=config.peer_review.leniency_days - 1), last,
                           judged_panel=window, judged_from=range_first)
    in_range = reviews[reviews["partition_date"].between(first, last)] if not reviews.empty else reviews
    scores = (score_tasks(tasks, history, read_feedback(conn, first, last), in_range, reviews, prices, judged, config)
              if not tasks.empty else pd.DataFrame())
    rows = score_rows(scores)
    replace_partition(conn, panel_reviews, first, last, panel)
    replace_partition(conn, task_scores, first, last, rows)
    replace_partition(conn, prompt_quality, first, last, prompt_quality_rows(tasks, rows), date_column="date")
    figures = ["partition_date", "agent_id", *SCORE_FIGURES]
    return ScoredChunk(scores=scores[figures] if not scores.empty else pd.DataFrame(columns=figures),
                       reviews=in_range[["task_id", *EVALUATION_DIMENSIONS]].reset_index(drop=True),
                       check=scores_counts(conn, first, last))
