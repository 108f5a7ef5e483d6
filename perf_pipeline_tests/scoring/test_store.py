"""The scoring store's reads: the panel reviews a run judged take the place of the stored ones."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from perf_pipeline.scoring.store import read_reviews
from perf_pipeline.warehouse.db import insert_frame, warehouse_engine
from perf_pipeline.warehouse.schema import panel_reviews

FIRST = dt.date(2026, 3, 1)


def panel_rows(days: range, grade: float, persona: str) -> pd.DataFrame:
    """A panel review by ``persona`` of two tasks a day, every dimension ``grade``."""
    rows = []
    for d in days:
        day = FIRST + dt.timedelta(days=d)
        for n in (2, 1):  # ids not in day order within a day: the read orders them
            rows.append({"evaluation_id": f"panel:{persona}:t-{d}-{n}", "task_id": f"t-{d}-{n}", "partition_date": day,
                         "evaluator_agent_id": f"panel:{persona}", "evaluated_agent_id": f"agent-{n}",
                         "accuracy": grade, "relevance": grade, "completeness": grade, "comment": "Graded.",
                         "created_at": pd.Timestamp(day, tz="UTC"), "judge_model": "m", "rubric_version": "v"})
    return pd.DataFrame(rows)


def test_judged_panel_reviews_replace_the_stored_ones_from_their_first_day(warehouse_url: str) -> None:
    engine = warehouse_engine(warehouse_url)
    with engine.begin() as conn:  # days 0-5 stored by an earlier run of another panel
        insert_frame(conn, panel_reviews, panel_rows(range(6), 0.2, "old"))
    judged = panel_rows(range(2, 5), 0.9, "new")  # the run judged days 2-4, not yet written
    with engine.connect() as conn:
        reviews = read_reviews(conn, FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=4),
                               judged_panel=judged, judged_from=FIRST + dt.timedelta(days=2))
        stored = read_reviews(conn, FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=4))
    assert reviews["evaluation_id"].tolist() == sorted(
        ["panel:old:t-1-1", "panel:old:t-1-2"] + [f"panel:new:t-{d}-{n}" for d in (2, 3, 4) for n in (1, 2)])
    assert reviews["accuracy"].tolist() == [0.9] * 6 + [0.2] * 2  # "new" sorts before "old"
    assert (reviews["known_on"] == reviews["partition_date"]).all()
    # The stored days before ``judged_from`` come as a read without judged reviews gives them.
    old = reviews[reviews["evaluator_agent_id"] == "panel:old"].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, stored[stored["partition_date"] < FIRST + dt.timedelta(days=2)]
                                  .reset_index(drop=True))
    # Judged reviews read as stored ones would be, once written.
    with engine.begin() as conn:
        conn.execute(panel_reviews.delete().where(panel_reviews.c.partition_date >= FIRST + dt.timedelta(days=2)))
        insert_frame(conn, panel_reviews, judged)
    with engine.connect() as conn:
        written = read_reviews(conn, FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=4))
    pd.testing.assert_frame_equal(reviews, written)
