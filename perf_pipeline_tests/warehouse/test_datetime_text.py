"""Timestamps that ``insert_frame`` writes to SQLite as whole columns of text are stored exactly as
SQLAlchemy's own insert stores them, value by value: any time zone, naive or aware, microseconds and
nanoseconds, missing values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.warehouse.db import column_objects, create_warehouse_engine, insert_frame, sqlite_datetime_text
from perf_pipeline_tests.warehouse.stored import stored_both_ways

METADATA = sa.MetaData()
COLUMNS = ("aware", "naive", "day")


def _table(name: str) -> sa.Table:
    return sa.Table(name, METADATA, sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("aware", sa.DateTime(timezone=True)), sa.Column("naive", sa.DateTime()),
                    sa.Column("day", sa.Date()))


FAST, BY_SQLALCHEMY = _table("stamps"), _table("stamps_by_sqlalchemy")


def _frame(seed: int, rows: int, zone: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    nanoseconds = rng.integers(-2 * 10**18, 4 * 10**18, rows)  # 1906 to 2096, to the nanosecond
    aware = pd.Series(pd.to_datetime(nanoseconds, unit="ns", utc=True)).dt.tz_convert(zone)
    missing = rng.random(rows) < 0.1
    missing[0] = False  # one value at least
    aware[missing] = pd.NaT
    return pd.DataFrame({"id": np.arange(rows), "aware": aware, "naive": aware.dt.tz_localize(None),
                         "day": aware.dt.date})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 300),
       zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]))
def test_timestamps_are_stored_as_sqlalchemy_stores_them(tmp_path_factory, seed: int, rows: int, zone: str) -> None:
    engine = create_warehouse_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('stamps')) / 'warehouse.db'}")
    METADATA.create_all(engine)
    frame = _frame(seed, rows, zone)
    with engine.begin() as conn:
        stored = stored_both_ways(conn, FAST, BY_SQLALCHEMY, frame, ", ".join(COLUMNS))
    assert stored[0] == stored[1]
    assert any(value is not None for row in stored[0] for value in row[:2])


def test_the_column_text_is_the_processors_text() -> None:
    frame = _frame(7, 2_000, "America/New_York")
    dialect = sa.dialects.sqlite.dialect()
    for name, column_type in (("aware", sa.DateTime(timezone=True)), ("naive", sa.DateTime())):
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        assert sqlite_datetime_text(frame[name]) == [None if value is None else process(value)
                                                     for value in column_objects(frame[name])]
    assert sqlite_datetime_text(pd.Series(pd.to_datetime(["2026-03-01 12:00:00.1234567"]))) == [
        "2026-03-01 12:00:00.123456"]


JSON_METADATA = sa.MetaData()
SHARED, OWN = (sa.Table(name, JSON_METADATA, sa.Column("id", sa.Integer(), primary_key=True),
                        sa.Column("weights", sa.JSON()), sa.Column("day", sa.Date()))
               for name in ("weights_shared", "weights_own"))


def test_json_values_shared_by_rows_are_stored_as_each_rows_own(tmp_path: Path) -> None:
    """A JSON column whose rows hold a few shared dicts (serialized once per dict) stores the text
    that the same rows holding a dict each store (serialized once per row)."""
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    JSON_METADATA.create_all(engine)
    patterns = [{"quality": {"judge": 0.6153846153846154, "user": 0.38461538461538464}}, {"quality": {}}, [1, "a"]]
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(patterns), 500)
    shared = pd.DataFrame({"id": np.arange(500), "weights": [patterns[k] for k in picks],
                           "day": [pd.Timestamp("2026-03-01").date()] * 500})
    own = shared.assign(weights=[json.loads(json.dumps(patterns[k])) for k in picks])
    assert len({id(w) for w in shared["weights"]}) == 3 and len({id(w) for w in own["weights"]}) == 500
    with engine.begin() as conn:
        insert_frame(conn, SHARED, shared)
        insert_frame(conn, OWN, own)
        stored = [conn.exec_driver_sql(f"SELECT id, weights, day FROM {table.name} ORDER BY id").all()
                  for table in (SHARED, OWN)]
    assert stored[0] == stored[1]
    assert stored[0][0][1] == json.dumps(patterns[picks[0]])
