"""``insert_frame`` on SQLite puts many rows in each INSERT statement (``insert_columns``): the rows
stored are those SQLAlchemy's own insert stores one at a time, however their number falls against
the rows of a statement, with every kind of value the warehouse holds, and within the driver's
limit of parameters however low it is set. On PostgreSQL it streams the rows by COPY: the rows
stored are again SQLAlchemy's, text that COPY's format escapes and floats going into integer
columns included."""

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


def _copied(postgres_url: str, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple], list[tuple]]:
    """``frame`` stored both ways on PostgreSQL, the fast way by COPY (checked: ``_copy_rows`` ran)."""
    copies: list[int] = []
    copy_rows = db._copy_rows

    def counted(conn: sa.Connection, table: sa.Table, names, grid) -> int:
        copies.append(len(grid))
        return copy_rows(conn, table, names, grid)

    monkeypatch.setattr(db, "_copy_rows", counted)
    engine = db.create_warehouse_engine(postgres_url)
    try:
        METADATA.create_all(engine)
        fast, by_sqlalchemy = _stored(engine, frame)
    finally:
        engine.dispose()
    assert copies == [len(frame)]
    return fast, by_sqlalchemy


@pytest.mark.postgres
@pytest.mark.parametrize("rows", [1, 17, db.INSERT_BATCH_ROWS + 3])
def test_rows_copied_into_postgresql_are_stored_as_sqlalchemy_stores_them(
        postgres_url: str, rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, by_sqlalchemy = _copied(postgres_url, _frame(rows), monkeypatch)
    assert len(fast) == rows
    assert fast == by_sqlalchemy


@pytest.mark.postgres
def test_copy_escapes_text_and_rounds_floats_into_integers_as_postgresql_casts_them(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text with COPY's own delimiters and escapes (tab, newline, backslash, a literal \\N) is stored
    as it is; a float going into an integer column (whole numbers with a missing one, as pandas holds
    them) is stored as PostgreSQL's cast of the parameter stores it, ties to even; infinities, -0.0
    and extreme floats, JSON with quotes and newlines, and the dates and timestamps are stored the same."""
    texts = ["tab\there", "line\nbreak", "back\\slash", "\\N", "", "quote ' \" ,", "carriage\rreturn", "é ✓ 🙂",
             None, "end\\"]
    counts = [0.5, 1.5, 2.5, -2.5, -0.5, 3.0, np.nan, 2.0**53, -(2.0**62), 7.0]
    shares = [np.inf, -np.inf, -0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, np.nan, 1e-300, -1.5, 2.0]
    frame = pd.DataFrame({
        "id": np.arange(len(texts)), "count": counts, "share": shares, "label": texts,
        "day": [dt.date(2026, 1, 1) + dt.timedelta(days=k) for k in range(len(texts))],
        "at": pd.Series(pd.to_datetime(np.arange(len(texts)) * 10**15 + 123_456_789, unit="ns", utc=True)),
        "weights": [{"say": 'he said "no"\n\tthen left\\'}, None, [1.5, "x"], {"k": None}, {}, [],
                    {"é": "✓"}, 3, "text", {"nested": {"a": [1, 2]}}]})
    fast, by_sqlalchemy = _copied(postgres_url, frame, monkeypatch)
    assert fast == by_sqlalchemy
    assert [row[1] for row in fast] == [0, 2, 2, -2, 0, 3, None, 2**53, -(2**62), 7]
    assert [row[3] for row in fast] == texts
