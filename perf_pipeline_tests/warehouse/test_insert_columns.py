"""``insert_frame`` on SQLite puts many rows in each INSERT statement (``insert_columns``): the rows
stored are those SQLAlchemy's own insert stores one at a time, however their number falls against
the rows of a statement, with every kind of value the warehouse holds, and within the driver's
limit of parameters however low it is set. On PostgreSQL it streams the rows by COPY in its binary
format: the rows stored are again SQLAlchemy's, floats going into integer columns and integers into
float columns included; values of another type than their column's go as parameters."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from perf_pipeline.warehouse import db
from perf_pipeline.warehouse.schema import JSON
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


def _copied(postgres_url: str, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch,
            binary: bool = True) -> tuple[list[tuple], list[tuple]]:
    """``frame`` stored both ways on PostgreSQL, the fast way by COPY (checked: ``_copy_rows`` found
    every value of its column's type) or, with ``binary`` False, as parameters (it did not)."""
    formats: list[str] = []
    binary_types = db._binary_types

    def noted(*args):
        types = binary_types(*args)
        formats.append("binary" if types is not None else "parameters")
        return types

    monkeypatch.setattr(db, "_binary_types", noted)
    engine = db.create_warehouse_engine(postgres_url)
    try:
        METADATA.create_all(engine)
        fast, by_sqlalchemy = _stored(engine, frame)
    finally:
        engine.dispose()
    assert formats == ["binary" if binary else "parameters"]
    return fast, by_sqlalchemy


@pytest.mark.postgres
@pytest.mark.parametrize("rows", [1, 17, db.INSERT_BATCH_ROWS + 3])
def test_rows_copied_into_postgresql_are_stored_as_sqlalchemy_stores_them(
        postgres_url: str, rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, by_sqlalchemy = _copied(postgres_url, _frame(rows), monkeypatch)
    assert len(fast) == rows
    assert fast == by_sqlalchemy


@pytest.mark.postgres
def test_copy_stores_text_and_floats_into_integers_as_parameters_are_stored(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text with the delimiters and escapes of COPY's text format (tab, newline, backslash, a literal
    \\N) is stored as it is; a float going into an integer column (whole numbers with a missing one,
    as pandas holds them) is stored as PostgreSQL's cast of the parameter stores it, ties to even;
    infinities, -0.0 and extreme floats, JSON with quotes and newlines, and the dates and timestamps
    (nanoseconds dropped, as psycopg binds them) are stored the same. A number among the texts: the
    rows go as parameters."""
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
    for binary in (True, False):
        if not binary:  # a value psycopg binds as another type than its column's: parameters
            frame["label"] = frame["label"].astype(object)
            frame.loc[9, "label"] = 12345
            texts[9] = "12345"
        fast, by_sqlalchemy = _copied(postgres_url, frame, monkeypatch, binary)
        assert fast == by_sqlalchemy
        assert [row[1] for row in fast] == [0, 2, 2, -2, 0, 3, None, 2**53, -(2**62), 7]
        assert [row[3] for row in fast] == texts
        with db.create_warehouse_engine(postgres_url).begin() as conn:
            METADATA.drop_all(conn)


@pytest.mark.postgres
@pytest.mark.parametrize("change", ["integers into a float column", "a naive timestamp", "a datetime as a date",
                                    "a text column of numbers"])
def test_values_of_another_type_than_their_column_are_copied_as_their_parameters_are_cast(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """Integers going into a float column are written as the floats PostgreSQL's cast gives (by COPY
    still); a timestamp without time zone into a timestamptz column, a datetime into a date column
    and numbers into a text column go as parameters, cast by PostgreSQL."""
    frame = _frame(40)
    if change == "integers into a float column":
        frame["share"] = [2**53 + 1, -(2**60) - 3, 7, 0] * 10  # not all exact as floats: rounded
    elif change == "a naive timestamp":  # read in the session's time zone, not UTC's
        frame["at"] = frame["at"].dt.tz_localize(None)
        url = sa.engine.make_url(postgres_url)
        postgres_url = url.update_query_dict({"options": f"{url.query['options']} -ctimezone=America/New_York"}) \
            .render_as_string(hide_password=False)
    elif change == "a datetime as a date":
        frame["day"] = [dt.datetime(2026, 3, 1, k % 24, 30) for k in range(len(frame))]
    else:
        frame["label"] = np.arange(len(frame)) * 1.5
    fast, by_sqlalchemy = _copied(postgres_url, frame, monkeypatch, binary=change == "integers into a float column")
    assert len(fast) == len(frame)
    assert fast == by_sqlalchemy


@pytest.mark.postgres
def test_the_warehouses_json_columns_are_copied_as_parameters_are_stored(postgres_url: str) -> None:
    """The warehouse's JSON columns are JSONB on PostgreSQL (``schema.JSON``), whose values SQLAlchemy
    wraps in psycopg's Jsonb: copied in binary, stored as SQLAlchemy's insert stores them (SQL NULL for
    None, as the type says)."""
    metadata = sa.MetaData()
    fast, by_sqlalchemy = (sa.Table(name, metadata, sa.Column("id", sa.Integer(), primary_key=True),
                                    sa.Column("histogram", JSON)) for name in ("jsonb_fast", "jsonb_by_sqlalchemy"))
    frame = pd.DataFrame({"id": np.arange(6), "histogram": [{"12": 3, "400": 1}, None, {}, {"é": 'a "b"\n'},
                                                            [1, 2.5, None], {"nested": {"k": [True, False]}}]})
    engine = db.create_warehouse_engine(postgres_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            assert db._binary_types(conn, fast, ["id", "histogram"], np.array(
                [[1, JSON.dialect_impl(conn.dialect).bind_processor(conn.dialect)({"a": 1})]], dtype=object))
            stored = stored_both_ways(conn, fast, by_sqlalchemy, frame, columns="id, histogram, histogram IS NULL")
    finally:
        engine.dispose()
    assert stored[0] == stored[1]
    assert [row[2] for row in stored[0]] == [False, True, False, False, False, False]


@pytest.mark.postgres
def test_integers_out_of_their_columns_range_are_refused_as_parameters_are(postgres_url: str) -> None:
    """psycopg's binary dumpers of int2 and int4 do not check the range (2**31 + 7 would be stored as
    -2147483641): rows holding such a value go as parameters, which the server refuses, with the
    error SQLAlchemy raises; within the range they are copied. A duplicate key found by COPY is
    SQLAlchemy's IntegrityError too, and the transaction's writes are rolled back."""
    metadata = sa.MetaData()
    table = sa.Table("ranges", metadata, sa.Column("id", sa.Integer(), primary_key=True),
                     sa.Column("n", sa.Integer()), sa.Column("s", sa.SmallInteger()))
    engine = db.create_warehouse_engine(postgres_url)
    try:
        metadata.create_all(engine)
        for n, s in ((2**31 + 7, 1), (-(2**31) - 1, 1), (5, 40000.0), (5, -32769), (2**32 + 5, 1)):
            with pytest.raises(sa.exc.DataError, match="out of range"), engine.begin() as conn:
                db.insert_frame(conn, table, pd.DataFrame({"id": [1, 2], "n": [1, n], "s": [1, s]}))
        edges = pd.DataFrame({"id": [1, 2], "n": [2**31 - 1, -(2**31)], "s": [32767.0, -32768]})
        with engine.begin() as conn:
            assert db._binary_types(conn, table, ["id", "n", "s"], np.array([[1, 2**31 - 1, 32767]], dtype=object))
            db.insert_frame(conn, table, edges)
        with pytest.raises(sa.exc.IntegrityError, match="duplicate key"), engine.begin() as conn:
            db.insert_frame(conn, table, pd.DataFrame({"id": [3], "n": [3], "s": [3]}))
            db.insert_frame(conn, table, edges)
        with engine.connect() as conn:
            assert conn.execute(sa.select(table.c.id, table.c.n, table.c.s).order_by(table.c.id)).all() == [
                (1, 2**31 - 1, 32767), (2, -(2**31), -32768)]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_tables_in_a_schema_or_with_odd_names_are_copied_into_themselves(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The COPY and the lookup of its columns' types name the table as SQLAlchemy's insert does: its
    schema, quotes, and a percent sign in its name."""
    metadata = sa.MetaData()
    schema = sa.engine.make_url(postgres_url).query["options"].split("=", 1)[1]  # the test's own schema
    tables = [sa.Table(name, metadata, sa.Column("id", sa.Integer(), primary_key=True), sa.Column("label", sa.Text()),
                       schema=table_schema)
              for name, table_schema in (("50% \"odd\" Name", None), ("in_schema", schema))]
    engine = db.create_warehouse_engine(postgres_url)
    copied: list[str] = []
    copy_rows = db._copy_rows
    monkeypatch.setattr(db, "_copy_rows", lambda conn, table, names, grid: copied.append(table.name)
                        or copy_rows(conn, table, names, grid))
    try:
        metadata.create_all(engine)
        for table in tables:
            with engine.begin() as conn:
                db.insert_frame(conn, table, pd.DataFrame({"id": [1, 2], "label": ["a", None]}))
            with engine.connect() as conn:
                assert conn.execute(sa.select(table).order_by(table.c.id)).all() == [(1, "a"), (2, None)]
    finally:
        engine.dispose()
    assert copied == [table.name for table in tables]
