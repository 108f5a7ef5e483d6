"""``insert_frame`` on SQLite puts many rows in each INSERT statement (``insert_columns``): the rows
stored are those SQLAlchemy's own insert stores one at a time, however their number falls against
the rows of a statement, with every kind of value the warehouse holds, and within the driver's
limit of parameters however low it is set."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from perf_pipeline.warehouse import db
from perf_pipeline_tests.warehouse.stored import stored_both_ways

METADATA = sa.MetaData()


def _table(name: str) -> sa.Table:
    return sa.Table(name, METADATA, sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("count", sa.BigInteger()), sa.Column("share", sa.Float()),
                    sa.Column("label", sa.Text()), sa.Column("day", sa.Date()),
                    sa.Column("at", sa.DateTime(timezone=True)), sa.Column("weights", sa.JSON()))


FAST, BY_SQLALCHEMY = _table("rows_fast"), _table("rows_by_sqlalchemy")
PER_STATEMENT = db.STATEMENT_PARAMETERS // len(FAST.columns)


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    share = rng.normal(size=rows) * 10.0 ** rng.integers(-300, 300, rows)
    share[rng.random(rows) < 0.1] = np.nan
    at = pd.Series(pd.to_datetime(rng.integers(0, 4 * 10**18, rows), unit="ns", utc=True))
    at[rng.random(rows) < 0.1] = pd.NaT
    return pd.DataFrame({
        "id": np.arange(rows), "count": rng.integers(-(2**62), 2**62, rows), "share": share,
        "label": rng.choice(np.array(["a", "é", None, "agent-007"], dtype=object), rows),
        "day": [None if gone else dt.date(2026, 1, 1) + dt.timedelta(days=int(k))
                for k, gone in zip(rng.integers(0, 400, rows), rng.random(rows) < 0.1, strict=True)],
        "at": at, "weights": rng.choice(np.array([{"quality": 0.5}, None, [1, "x"]], dtype=object), rows)})


def _stored(engine: sa.Engine, frame: pd.DataFrame) -> tuple[list[tuple], list[tuple]]:
    with engine.begin() as conn:
        return stored_both_ways(conn, FAST, BY_SQLALCHEMY, frame)


@pytest.mark.parametrize("rows", [1, PER_STATEMENT - 1, PER_STATEMENT, PER_STATEMENT + 1, 3 * PER_STATEMENT + 7,
                                  db.INSERT_BATCH_ROWS + PER_STATEMENT + 3])
def test_rows_are_stored_as_sqlalchemy_stores_them(tmp_path: Path, rows: int) -> None:
    engine = db.create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    METADATA.create_all(engine)
    fast, by_sqlalchemy = _stored(engine, _frame(rows))
    assert len(fast) == rows
    assert fast == by_sqlalchemy


def test_statements_stay_within_the_drivers_limit_of_parameters(tmp_path: Path) -> None:
    """With the limit set to 20 parameters (SQLite before 3.32 allowed 999), 7 columns go 2 rows a
    statement, the odd row one."""
    engine = db.create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    METADATA.create_all(engine)

    @sa.event.listens_for(engine, "connect")
    def _low_limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)

    parameters: list[int] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement: str, _parameters, _context, _executemany) -> None:
        if statement.startswith(f"INSERT INTO {FAST.name} "):
            parameters.append(statement.count("?"))

    engine.dispose()  # connections made from here on have the limit
    fast, by_sqlalchemy = _stored(engine, _frame(11))
    assert len(fast) == 11
    assert fast == by_sqlalchemy
    assert parameters == [14, 7]


def test_values_converted_one_by_one_are_stored_as_sqlalchemy_stores_them(tmp_path: Path) -> None:
    """Dates are converted once per run of equal days; a column of other values (datetimes in a date
    column, which SQLAlchemy stores as their day) or of JSON rows sharing no object is converted
    value by value, and stored the same. A value that only compares equal to a date (a NumPy
    datetime64 after the same day) is refused as SQLAlchemy refuses it, and columns of different
    lengths are refused."""
    engine = db.create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    METADATA.create_all(engine)
    frame = _frame(PER_STATEMENT + 5)
    frame["day"] = [dt.datetime(2026, 3, 1, k % 24) if k % 3 else dt.date(2026, 3, 1) + dt.timedelta(days=k % 7)
                    for k in range(len(frame))]
    frame["weights"] = [{"quality": k / 7} for k in range(len(frame))]
    fast, by_sqlalchemy = _stored(engine, frame)
    assert len(fast) == len(frame)
    assert fast == by_sqlalchemy
    with engine.begin() as conn, pytest.raises(TypeError, match="date objects"):
        db.insert_many(conn, FAST, ["id", "day"], [(1, dt.date(2026, 3, 1)), (2, np.datetime64("2026-03-01"))])
    with engine.begin() as conn, pytest.raises(ValueError, match="columns of"):
        db.insert_columns(conn, FAST, ["id", "label"], [[1, 2, 3], ["only"]])
