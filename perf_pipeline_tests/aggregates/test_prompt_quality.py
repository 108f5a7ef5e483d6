"""The prompt comparisons' scores: written with task_scores into prompt_quality, read from its day
blocks, equal to the join of task_events and task_scores they replace; a span with a day scored
without blocks (by an earlier version, which had no prompt_quality) reads that join."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from perf_pipeline.aggregates import store
from perf_pipeline.aggregates.store import joined_task_quality, read_task_quality
from perf_pipeline.warehouse import blocks
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import day_blocks, prompt_quality
from perf_pipeline_tests.aggregates.test_aggregate_assets import DAYS, FIRST, many_days
from perf_pipeline_tests.scoring.test_scoring_assets import ingest_and_build, score


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)


def _no_join(*_args: object) -> pd.DataFrame:
    raise AssertionError("read from the join")


def test_prompt_quality_read_from_blocks_equals_the_join_and_unwritten_scored_days_read_the_join(
        warehouse_url: str, landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many_days(landing)
    last = FIRST + dt.timedelta(days=DAYS - 1)
    ingest_and_build(warehouse_url, landing, FIRST.isoformat(), last.isoformat())
    score(warehouse_url, landing, FIRST.isoformat(), last.isoformat())
    engine = warehouse_engine(warehouse_url)
    window_start = FIRST - dt.timedelta(days=29)  # a window of the first day: 29 days before any task
    with engine.connect() as conn:
        joined = joined_task_quality(conn, window_start, last)
        assert len(joined) == DAYS * 6 and joined["prompt_version"].notna().all()
        assert blocks.unwritten_days(conn, prompt_quality, window_start, last) == \
            [window_start + dt.timedelta(days=k) for k in range(29)]
        monkeypatch.setattr(store, "joined_task_quality", _no_join)
        from_blocks = read_task_quality(conn, window_start, last)  # days without tasks are no reason to join
        pd.testing.assert_frame_equal(_sorted(from_blocks), _sorted(joined), check_exact=True)
        monkeypatch.undo()

    # As if an earlier version had scored the second day: no prompt_quality rows, no blocks.
    second = FIRST + dt.timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(prompt_quality.delete().where(prompt_quality.c.date == second))
        conn.execute(day_blocks.delete().where(day_blocks.c.table_name == prompt_quality.name,
                                               day_blocks.c.date == second))
    with engine.connect() as conn:
        assert blocks.read(conn, prompt_quality, FIRST, last) is not None  # alone, it would read no rows that day
        pd.testing.assert_frame_equal(read_task_quality(conn, FIRST, last), joined_task_quality(conn, FIRST, last),
                                      check_exact=True)
        assert len(read_task_quality(conn, FIRST, last)) == DAYS * 6
        assert conn.execute(sa.select(sa.func.count()).select_from(prompt_quality)).scalar_one() == (DAYS - 1) * 6
