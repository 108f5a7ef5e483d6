"""The prompt comparisons' scores: written with task_scores into prompt_quality, read from its day
blocks, equal to the join of task_events and task_scores they replace; a day without blocks (scored
by an earlier version, which had no prompt_quality) sends the read to that join."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from perf_pipeline.aggregates.store import joined_task_quality, read_task_quality
from perf_pipeline.warehouse import blocks
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import day_blocks, prompt_quality
from perf_pipeline_tests.aggregates.test_aggregate_assets import DAYS, FIRST, many_days
from perf_pipeline_tests.scoring.test_scoring_assets import ingest_and_build, score


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)


def test_prompt_quality_read_from_blocks_equals_the_join_and_unwritten_days_read_the_join(
        warehouse_url: str, landing: Path) -> None:
    many_days(landing)
    last = FIRST + dt.timedelta(days=DAYS - 1)
    ingest_and_build(warehouse_url, landing, FIRST.isoformat(), last.isoformat())
    score(warehouse_url, landing, FIRST.isoformat(), last.isoformat())
    engine = warehouse_engine(warehouse_url)
    with engine.connect() as conn:
        assert blocks.read(conn, prompt_quality, FIRST, last, every_day_written=True) is not None
        joined = joined_task_quality(conn, FIRST, last)
        assert len(joined) == DAYS * 6 and joined["prompt_version"].notna().all()
        pd.testing.assert_frame_equal(_sorted(read_task_quality(conn, FIRST, last)), _sorted(joined), check_exact=True)

    # As if an earlier version had scored the second day: no prompt_quality rows, no blocks.
    second = FIRST + dt.timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(prompt_quality.delete().where(prompt_quality.c.date == second))
        conn.execute(day_blocks.delete().where(day_blocks.c.table_name == prompt_quality.name,
                                               day_blocks.c.date == second))
    with engine.connect() as conn:
        assert blocks.read(conn, prompt_quality, FIRST, last, every_day_written=True) is None
        assert blocks.read(conn, prompt_quality, FIRST, last) is not None  # read as an empty day otherwise
        pd.testing.assert_frame_equal(read_task_quality(conn, FIRST, last), joined, check_exact=True)
        assert conn.execute(sa.select(sa.func.count()).select_from(prompt_quality)).scalar_one() == (DAYS - 1) * 6
