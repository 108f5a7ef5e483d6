"""Engines, schema creation, reading query results as frames, and the one way partitions are written.

Every write of a partitioned table goes through ``replace_partition``: delete the partition's
rows and insert the new ones in one transaction, so a re-run (or a run after a crash) leaves the
table exactly as a single clean run would.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from perf_pipeline.warehouse import blocks
from perf_pipeline.warehouse.schema import RETIRED_INDEXES, ROW_ORDER, key_columns, metadata

SQL_PACKAGE = "perf_pipeline.sql"
INSERT_BATCH_ROWS = 5_000
# Parameters of one multi-row INSERT statement on SQLite (``insert_columns``), below its limit of
# 32,766 (999 before SQLite 3.32): a day's 45,015 project-agent rows of 12 columns were inserted in
# 0.14 s instead of 0.20 s one row a statement (the driver's executemany alone: 0.09 s instead of
# 0.135 s), most of the difference being the driver's work per statement.
STATEMENT_PARAMETERS = 2_400
PAGE_CACHE_KIB = 64 * 1024


def create_warehouse_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL journaling."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # Only takes effect on a new (empty) database: 16 KiB pages hold a dozen staged events
        # each, and bulk loads split and write far fewer pages than with the default 4 KiB.
        cursor.execute("PRAGMA page_size=16384")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A 64 MiB page cache (default 2 MiB): inserting 200,000 task scores, whose random task ids
        # spread over the whole primary-key index, took 4.9 s instead of 6.3-6.8 s.
        cursor.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def sql_root() -> Traversable:
    """The project's ``sql/`` folder: packaged as ``perf_pipeline.sql`` in a wheel, or in the checkout."""
    try:
        return resources.files(SQL_PACKAGE)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "sql"


def sql_files(folder: str) -> list[tuple[str, str]]:
    """(name, text) of the ``.sql`` files in a folder under ``sql/``, in name order."""
    root = sql_root().joinpath(folder)
    names = sorted(entry.name for entry in root.iterdir() if entry.name.endswith(".sql"))
    return [(name, root.joinpath(name).read_text(encoding="utf-8")) for name in names]


def split_statements(script: str) -> list[str]:
    """Statements of a SQL script (no procedural code in sql/, so ';' at a line end splits)."""
    without_comments = re.sub(r"--[^\n]*", "", script)
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", without_comments) if s.strip()]


def initialize_warehouse(engine: Engine) -> None:
    """Create missing tables, give tables made by an earlier version the schema's primary key
    (``rekey_tables``), create the indexes such a warehouse lacks, and (re)create the analyst views
    of ``sql/views``."""
    metadata.create_all(engine, checkfirst=True)
    rekey_tables(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
    with engine.begin() as conn:
        for _name, script in sql_files("views"):
            for statement in split_statements(script):
                conn.execute(sa.text(statement))


# How long a process opening a SQLite warehouse waits for another one rekeying a table (copying a
# year of a fleet's trends takes minutes), instead of the engine's usual 60 s.
REKEY_WAIT_SECONDS = 1800


def rekey_tables(engine: Engine) -> list[str]:
    """Give each table read in a ``row_order`` whose primary key lists its columns in another order
    than the schema's (the aggregates' day-first keys; entity-first in warehouses made by earlier
    versions) the schema's key, keeping every row; returns the names of the tables changed.

    PostgreSQL swaps the constraint in place and drops the indexes the new key makes redundant
    (``RETIRED_INDEXES``). SQLite cannot alter a primary key: the table is copied into a new one with
    the schema's key, which then takes its name, in one transaction per table (a crash leaves the old
    table as it was; the file keeps the freed pages for later writes). Indexes other than the
    schema's and triggers on such a table are not copied. A table whose columns are not
    the schema's is left alone, so that nothing is lost. The check is repeated under the table's
    lock, so processes starting together rekey a table once."""
    with engine.connect() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        stale = [table for table in metadata.sorted_tables
                 if ROW_ORDER in table.info and table.name in existing and _needs_rekey(conn, table)]
    rekey = _rekey_sqlite if engine.dialect.name == "sqlite" else _rekey_in_place
    return [table.name for table in stale if rekey(engine, table)]


def _needs_rekey(conn: Connection, table: sa.Table) -> bool:
    inspector = sa.inspect(conn)
    return _stale_key(table, {column["name"] for column in inspector.get_columns(table.name)},
                      inspector.get_pk_constraint(table.name)["constrained_columns"])


def _stale_key(table: sa.Table, present: set[str], key: list[str]) -> bool:
    """Whether a table of columns ``present`` and primary key ``key`` is ``table`` with its key's
    columns in another order."""
    wanted = key_columns(table)
    return present == set(table.columns.keys()) and set(key) == set(wanted) and key != wanted


def _rekey_in_place(engine: Engine, table: sa.Table) -> bool:
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        conn.execute(sa.text(f"LOCK TABLE {quote(table.name)} IN ACCESS EXCLUSIVE MODE"))
        if not _needs_rekey(conn, table):
            return False
        name = sa.inspect(conn).get_pk_constraint(table.name)["name"]
        columns = ", ".join(quote(column) for column in key_columns(table))
        conn.execute(sa.text(f"ALTER TABLE {quote(table.name)} DROP CONSTRAINT {quote(name)}, "
                             f"ADD PRIMARY KEY ({columns})"))
        for index in RETIRED_INDEXES.get(table.name, []):
            conn.execute(sa.text(f"DROP INDEX IF EXISTS {quote(index)}"))
    return True


def _rekey_sqlite(engine: Engine, table: sa.Table) -> bool:
    """The copy, under SQLite's write lock (waited for up to ``REKEY_WAIT_SECONDS``); the old table's
    indexes go with it, and the schema's are made again by ``initialize_warehouse``.
    ``legacy_alter_table``: the rename must not rewrite or check views that name the table (they
    name it again once the copy has its name). The connection's settings are put back before it
    returns to the pool."""
    quote = engine.dialect.identifier_preparer.quote
    copy = table.to_metadata(sa.MetaData(), name=f"{table.name}__rekeyed")
    columns = ", ".join(quote(column.name) for column in table.columns)
    raw = engine.raw_connection()
    connection = raw.driver_connection
    isolation = connection.isolation_level
    cursor = connection.cursor()
    (wait_ms,) = cursor.execute("PRAGMA busy_timeout").fetchone()
    try:
        connection.isolation_level = None  # the statements below, as they are
        cursor.execute(f"PRAGMA busy_timeout={REKEY_WAIT_SECONDS * 1000}")
        cursor.execute("PRAGMA legacy_alter_table=ON")
        cursor.execute("BEGIN IMMEDIATE")
        described = cursor.execute(f"PRAGMA table_info({quote(table.name)})").fetchall()
        key = [row[1] for row in sorted(described, key=lambda row: row[5]) if row[5]]
        if not _stale_key(table, {row[1] for row in described}, key):
            return False
        cursor.execute(f"DROP TABLE IF EXISTS {quote(copy.name)}")
        cursor.execute(str(sa.schema.CreateTable(copy).compile(dialect=engine.dialect)))
        cursor.execute(f"INSERT INTO {quote(copy.name)} ({columns}) SELECT {columns} FROM {quote(table.name)} "
                       f"ORDER BY {', '.join(quote(column) for column in key_columns(table))}")
        cursor.execute(f"DROP TABLE {quote(table.name)}")
        cursor.execute(f"ALTER TABLE {quote(copy.name)} RENAME TO {quote(table.name)}")
        cursor.execute("COMMIT")
        return True
    finally:
        if connection.in_transaction:  # not committed: nothing to rekey, or an error
            cursor.execute("ROLLBACK")
        cursor.execute("PRAGMA legacy_alter_table=OFF")
        cursor.execute(f"PRAGMA busy_timeout={wait_ms}")
        connection.isolation_level = isolation
        raw.close()


@cache
def _initialized_engine(url: str) -> Engine:
    engine = create_warehouse_engine(url)
    initialize_warehouse(engine)
    return engine


def warehouse_engine(url: str) -> Engine:
    """A process-wide engine for ``url`` whose schema has been created once."""
    return _initialized_engine(url)


def column_objects(series: pd.Series) -> np.ndarray:
    """A column as an object array of Python values, None for every missing value (NaN, NaT, pd.NA):
    the values of ``series.astype(object).where(series.notna(), None).tolist()``, of the same types
    (as ``test_column_objects.py`` checks), made without a pass of pandas per step: a new day's 234
    columns of aggregates were converted in 0.05 s instead of 0.12 s."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":  # never missing
        return series.to_numpy().astype(object)
    if dtype == np.float64:
        values = series.to_numpy()
        missing = np.isnan(values)
        boxed = values.astype(object)
    elif (isinstance(dtype, np.dtype) and dtype.kind in "OM") or isinstance(dtype, pd.StringDtype | pd.DatetimeTZDtype):
        missing = series.isna().to_numpy()
        boxed = series.to_numpy(dtype=object, copy=True)
    else:  # other kinds (categories, nullable numbers...): their own conversion to objects
        return _objects(series.astype(object).where(series.notna(), None).tolist())
    boxed[missing] = None
    return boxed


# SQLAlchemy stores a datetime in SQLite as this text (its DATETIME type's default storage format).
_PROBE, _PROBE_TEXT = dt.datetime(2001, 2, 3, 4, 5, 6, 7), "2001-02-03 04:05:06.000007"


def sqlite_datetime_text(series: pd.Series) -> list[str | None]:
    """A datetime64 column as the text SQLAlchemy stores in SQLite for each of its values (the
    value's own wall-clock fields, to the microsecond, whatever its time zone), computed for the
    whole column at once rather than a Timestamp and a format call per value; None where missing."""
    wall = series.dt.tz_localize(None) if series.dt.tz is not None else series
    nanoseconds = wall.to_numpy(dtype="datetime64[ns]")
    missing = np.isnat(nanoseconds).tolist()
    microseconds = (nanoseconds.astype(np.int64) // 1000).astype("datetime64[us]")  # floored, as .microsecond
    text = np.datetime_as_string(microseconds, unit="us").tolist()
    return [None if gone else value.replace("T", " ", 1) for value, gone in zip(text, missing, strict=True)]


def _stored_as_datetime_text(column: sa.Column, series: pd.Series, dialect: sa.engine.Dialect) -> bool:
    """Whether ``series`` (datetime64) goes into ``column`` as SQLite's datetime text, in the format
    ``sqlite_datetime_text`` writes."""
    if dialect.name != "sqlite" or not isinstance(column.type, sa.DateTime):
        return False
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        return False
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process is not None and process(_PROBE) == _PROBE_TEXT


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Bulk insert in batches (executemany; PostgreSQL batches into multi-row VALUES)."""
    for start in range(0, len(rows), INSERT_BATCH_ROWS):
        conn.execute(table.insert(), list(rows[start : start + INSERT_BATCH_ROWS]))
    return len(rows)


def insert_new_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows whose primary key is not in the table yet; the others are left as they are
    (INSERT ... ON CONFLICT DO NOTHING, atomic against a concurrent writer)."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"insert_new_rows supports PostgreSQL and SQLite, not {dialect}")
    for start in range(0, len(rows), INSERT_BATCH_ROWS):
        conn.execute(insert(table).on_conflict_do_nothing(), list(rows[start : start + INSERT_BATCH_ROWS]))


def insert_many(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> int:
    """Bulk insert ``rows``, tuples of values in ``columns`` order (``insert_columns``)."""
    if not rows:
        return 0
    return insert_columns(conn, table, columns, [list(values) for values in zip(*rows, strict=True)])


def insert_columns(conn: Connection, table: sa.Table, names: Sequence[str], columns: Sequence[Sequence[Any]],
                   bound: Collection[str] = ()) -> int:
    """Bulk insert the rows whose values are given column by column (``columns[k]``: the values of
    column ``names[k]``, a list or an object array; those of the columns named in ``bound`` are
    already what the driver takes).

    SQLAlchemy's handling of each row's parameters is most of the cost of inserting millions of
    rows, so with a driver taking positional "?" parameters (SQLite's) the rows go straight to its
    executemany, each column converted by its type's own bind processor (where it has one): the
    stored values are the same. The columns are laid side by side in one object array, whose rows,
    many to a statement (``STATEMENT_PARAMETERS``, within the connection's limit), are each
    statement's parameters in one piece; the rest go one row to a statement. On PostgreSQL through
    psycopg (3) the rows are streamed into the table by COPY in its binary format (``_copy_rows``),
    unless a value is of another type than its column's; other drivers, and those rows, go through
    ``insert_rows``.
    """
    n_rows = len(columns[0]) if columns else 0
    if any(len(column) != n_rows for column in columns):
        raise ValueError(f"insert_columns into {table.name}: columns of {sorted({len(c) for c in columns})} values")
    if not n_rows:
        return 0
    dialect = conn.dialect
    copies = _copies(conn)
    if dialect.paramstyle != "qmark" and not copies:
        return _insert_parameters(conn, table, names, columns)
    grid = np.empty((n_rows, len(names)), dtype=object)
    for k, (name, column) in enumerate(zip(names, columns, strict=True)):
        process = None if name in bound else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        grid[:, k] = _processed(process, column, table.c[name].type) if process else _objects(column)
    if copies:
        copied = _copy_rows(conn, table, names, grid)
        return copied if copied is not None else _insert_parameters(conn, table, names, columns)
    quote = dialect.identifier_preparer.quote
    insert = f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) VALUES "
    one_row = f"({', '.join('?' * len(names))})"
    per_statement = max(1, _parameter_limit(conn) // len(names))
    whole = n_rows // per_statement * per_statement if per_statement > 1 else 0  # rows in multi-row statements
    many_rows = insert + ", ".join([one_row] * per_statement)
    # INSERT_BATCH_ROWS rows' statements at a time: their parameters are a second copy of the rows.
    batch = max(1, INSERT_BATCH_ROWS // per_statement) * per_statement
    for first in range(0, whole, batch):
        statements = grid[first:min(first + batch, whole)].reshape(-1, per_statement * len(names))
        conn.exec_driver_sql(many_rows, list(map(tuple, statements.tolist())))
    if whole < n_rows:
        conn.exec_driver_sql(insert + one_row, list(map(tuple, grid[whole:].tolist())))
    return n_rows


def _insert_parameters(conn: Connection, table: sa.Table, names: Sequence[str],
                       columns: Sequence[Sequence[Any]]) -> int:
    """The rows given column by column, inserted as parameters through SQLAlchemy (``insert_rows``)."""
    return insert_rows(conn, table, [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)])


INTEGER_BITS = {"int2": 16, "int4": 32, "int8": 64}


@cache
def binary_values() -> dict[str, set[type]]:
    """The PostgreSQL types ``_copy_rows`` writes in COPY's binary format, and the Python types of the
    values psycopg binds as each (SQLAlchemy's JSON and JSONB bind processors wrap every value in
    psycopg's Json and Jsonb). psycopg is imported here, by a process that writes to PostgreSQL."""
    from psycopg.types.json import Json, Jsonb

    return {"int2": {int}, "int4": {int}, "int8": {int}, "float8": {float}, "text": {str}, "varchar": {str},
            "bool": {bool}, "date": {dt.date}, "timestamptz": {dt.datetime, pd.Timestamp},
            "timestamp": {dt.datetime, pd.Timestamp}, "json": {Json}, "jsonb": {Jsonb}}


def _copies(conn: Connection) -> bool:
    """Whether ``insert_columns`` streams rows by COPY: on PostgreSQL through psycopg (3)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def _copy_rows(conn: Connection, table: sa.Table, names: Sequence[str], grid: np.ndarray) -> int | None:
    """The rows of ``grid`` (one column per name, each value what the driver takes as a parameter)
    streamed into ``table`` by ``COPY ... FROM STDIN`` in its binary format, in the connection's
    transaction; None (nothing written) when a value is not of a type psycopg binds as its column's
    type (``_binary_types``), for the caller to insert the rows as parameters.

    An executemany through SQLAlchemy costs 34 to 55 microseconds a row on PostgreSQL (a new day's
    45,015 project-agent rows: 1.7 to 2.5 s); COPY costs a fraction of it. Each value is written by
    psycopg's dumper of its column's type, which is the dumper psycopg binds a parameter of its type
    with: the stored values are those of an insert of parameters. Two kinds of values that a
    parameter's cast would convert are converted here as that cast does: a float going into an
    integer column (a column of whole numbers with a missing value, which pandas holds as floats)
    becomes the integer PostgreSQL's cast gives (rounded to nearest, ties to even, as ``round``), an
    integer going into a float column the float the cast gives (``float``, also rounded to nearest).
    (COPY's text format was measured too: psycopg wrote those 45,015 rows in 0.15 to 0.2 s against
    0.05 to 0.07 s in binary, and text would be parsed by the column's type, not cast: a float going
    into a text column is written 0.0 where its parameter is stored 0.)
    """
    for k, name in enumerate(names):
        kind, values = table.c[name].type, grid[:, k].tolist()
        if isinstance(kind, sa.Integer) and any(isinstance(value, float) for value in values):
            grid[:, k] = _objects([round(value) if isinstance(value, float) else value for value in values])
        elif isinstance(kind, sa.Float) and any(type(value) is int for value in values):
            grid[:, k] = _objects([float(value) if type(value) is int else value for value in values])
    types = _binary_types(conn, table, names, grid)
    if types is None:
        return None
    import psycopg
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        _identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)))
    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in grid.tolist():
                copy.write_row(row)
    except psycopg.Error as error:  # raised as SQLAlchemy raises the driver's errors (IntegrityError...)
        raise sa.exc.DBAPIError.instance(statement.as_string(None), None, error, psycopg.Error,
                                         dialect=conn.dialect) from error
    return len(grid)


def _identifier(table: sa.Table) -> Any:
    """``table``'s name (with its schema, if it has one) as an identifier of psycopg's SQL."""
    from psycopg import sql

    return sql.Identifier(*([table.schema] if table.schema else []), table.name)


def _binary_types(conn: Connection, table: sa.Table, names: Sequence[str], grid: np.ndarray) -> list[int] | None:
    """The type of each named column of ``table`` in the database (its OID), when the values of
    ``grid`` (a column per name) can go in COPY's binary format: each column's type is one of
    ``binary_values()`` and each of its values None or of the Python types psycopg binds as that type
    (timestamps with a time zone into ``timestamptz``, without into ``timestamp``; integers within
    the range of their column's type, which psycopg's binary dumpers of int2 and int4 do not check:
    a parameter out of range is refused by the server); else None."""
    qualified = _identifier(table).as_string(conn.connection.driver_connection)
    columns = {name: (oid, type_name) for name, oid, type_name in conn.exec_driver_sql(
        "SELECT a.attname, a.atttypid::int, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped", {"table": qualified}).all()}
    types = []
    for k, name in enumerate(names):
        oid, type_name = columns[name]
        allowed = binary_values().get(type_name)
        values = grid[:, k].tolist()
        if allowed is None or not {type(value) for value in values} <= allowed | {type(None)}:
            return None
        if type_name in ("timestamptz", "timestamp") and any(
                value is not None and (value.tzinfo is not None) != (type_name == "timestamptz") for value in values):
            return None
        if type_name in INTEGER_BITS:
            present = [value for value in values if value is not None]
            bound = 2 ** (INTEGER_BITS[type_name] - 1)
            if present and (min(present) < -bound or max(present) >= bound):
                return None
        types.append(oid)
    return types


def _objects(values: Sequence[Any]) -> np.ndarray:
    """``values`` as a one-dimensional object array of the same objects (a list among them stays one
    element)."""
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        return values
    return np.fromiter(values, dtype=object, count=len(values))


def _parameter_limit(conn: Connection) -> int:
    """The parameters of one statement: ``STATEMENT_PARAMETERS`` within the SQLite connection's limit;
    one row's worth (1) for another driver taking "?" parameters, whose limit is not known here."""
    driver = conn.connection.driver_connection
    if conn.dialect.name != "sqlite" or not hasattr(driver, "getlimit"):
        return 1
    return min(STATEMENT_PARAMETERS, driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


def _processed(process: Callable[[Any], Any], column: Sequence[Any], kind: sa.types.TypeEngine) -> np.ndarray:
    """``process`` (the bind processor of a column of type ``kind``) applied to each value, as an
    object array. For a column of dates (a few days over millions of rows, mostly in runs), once per
    run of equal values, which convert equally; for a JSON column whose rows share objects (a few
    patterns, such as a score's weights), once per object: each pattern's dict is serialized once,
    not once per row."""
    if isinstance(kind, sa.JSON):
        objects = {id(value): value for value in column}  # the values keep their ids alive meanwhile
        if len(objects) * 2 <= len(column):
            by_id = {key: process(value) for key, value in objects.items()}
            return _objects([by_id[id(value)] for value in column])
    elif isinstance(kind, sa.Date):
        values = _objects(column)
        if all(type(value) is dt.date or value is None for value in values.tolist()):
            # Dates and None compare equal only to their own kind: a run of equal values converts as its first.
            starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
            firsts = values[starts].tolist()
            converted = {value: process(value) for value in set(firsts)}
            return np.repeat(_objects([converted[value] for value in firsts]), np.diff(np.r_[starts, len(values)]))
    return _objects(list(map(process, column)))


def replace_partition(conn: Connection, table: sa.Table, first_day: dt.date, last_day: dt.date,
                      frame: pd.DataFrame, date_column: str = "partition_date") -> int:
    """Replace the rows of ``table`` whose ``date_column`` is in [first_day, last_day] with the rows of
    ``frame`` (its columns named as the table's), inserted in bulk (``insert_frame``).

    Runs inside the caller's transaction, so several tables can be replaced atomically; a table that
    keeps day blocks (``blocks.py``) gets those of the same days replaced in it too.
    """
    conn.execute(table.delete().where(table.c[date_column].between(first_day, last_day)))
    rows = insert_frame(conn, table, frame)
    if blocks.keeps_blocks(table):
        blocks.write(conn, table, first_day, last_day, frame, date_column)
    return rows


def insert_frame(conn: Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert the rows of ``frame`` (its columns named as the table's) in bulk (``insert_columns``).
    On SQLite a timestamp column becomes its stored text at once (``sqlite_datetime_text``). A float64
    column going into a FLOAT column is already what the driver takes (Python floats, None where
    missing: what SQLAlchemy's float conversion would give back for each)."""
    if frame.empty:
        return 0
    names = list(frame.columns)
    as_text = {name for name in names if _stored_as_datetime_text(table.c[name], frame[name], conn.dialect)}
    floats = {name for name in names if _floats_as_they_are(table.c[name], frame[name])}
    columns = [sqlite_datetime_text(frame[name]) if name in as_text else column_objects(frame[name]) for name in names]
    return insert_columns(conn, table, names, columns, bound=as_text | floats)


def _floats_as_they_are(column: sa.Column, series: pd.Series) -> bool:
    """Whether ``series`` (float64) goes into ``column`` (FLOAT, not as decimals): its objects are then
    the floats SQLAlchemy's conversion of each to float would give."""
    return series.dtype == np.float64 and isinstance(column.type, sa.Float) and not column.type.asdecimal


def run_seed(conn: Connection, name: str) -> None:
    """Run ``sql/seeds/<name>``: seeds replace their default rows and keep the user's."""
    scripts = dict(sql_files("seeds"))
    if name not in scripts:
        raise FileNotFoundError(f"sql/seeds/{name} is missing; expected one of {sorted(scripts)}")
    for statement in split_statements(scripts[name]):
        conn.execute(sa.text(statement))


def chunked(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def to_python_date(value: Any) -> dt.date:
    """A date from what a driver returns for a DATE column (SQLite may give text)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    return dt.date.fromisoformat(str(value)[:10])


def read_frame(conn: Connection, query: sa.Select) -> pd.DataFrame:
    """A query's rows as a frame; timestamps as UTC (SQLite hands them back naive) and dates as dates.

    Rows are fetched from the driver's cursor as they come and converted column by column
    (``read_columns``), not row by row through SQLAlchemy's Row objects: the same values, several
    times faster on the hundreds of thousands of rows an aggregate reads.
    """
    result = conn.execute(query)
    names = list(result.keys())
    if len(set(names)) != len(names) or len(query.selected_columns) != len(names):
        frame = pd.DataFrame(result.all(), columns=names)  # duplicate labels: the plain way
        return _typed(frame, query)
    return pd.DataFrame(read_columns(conn, query, result), columns=names)


def read_columns(conn: Connection, query: sa.Select, result: sa.CursorResult | None = None) -> dict[str, Any]:
    """A query's rows column by column, each column's values typed as ``read_frame`` types them
    (each column's SQLAlchemy result processor, once per distinct date, timestamps parsed by pandas
    in one go; numbers as arrays, other values as lists). The query's column names must be
    distinct. ``result``: the query already executed."""
    result = result if result is not None else conn.execute(query)
    names = list(result.keys())
    if len(set(names)) != len(names):
        result.close()
        raise ValueError(f"read_columns needs distinct column names, got {names}")
    description = result.cursor.description
    raw = result.cursor.fetchall()
    result.close()
    columns = list(zip(*raw, strict=True)) if raw else [() for _ in names]
    dialect = conn.dialect
    data: dict[str, Any] = {}
    for index, (name, column) in enumerate(zip(names, query.selected_columns, strict=True)):
        values = list(columns[index])
        if isinstance(column.type, sa.DateTime):
            data[name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="mixed") \
                if values else pd.Series([], dtype="datetime64[ns, UTC]")
            continue
        if isinstance(column.type, sa.Date):
            converted = {value: to_python_date(value) for value in set(values) if value is not None}
            data[name] = [converted.get(value) if value is not None else None for value in values]
            continue
        process = column.type.dialect_impl(dialect).result_processor(dialect, description[index][1])
        data[name] = list(map(process, values)) if process else numbers_or_list(values)
    return data


_INT64 = (-(2**63), 2**63 - 1)
_NUMBER_KINDS = {int, float, type(None)}


def numbers_or_list(values: list[Any]) -> np.ndarray | list[Any]:
    """The array pandas makes of the list ``values`` when it holds only numbers (and None), made by
    numpy at once; else the list itself, for pandas to type: int64 for integers, float64 for floats
    or a mix of integers, floats and None (None as NaN). An integer beyond int64 or a column of only
    None is left to pandas. A frame of hundreds of thousands of rows is built several times faster
    (pandas looks at each value of a list on its own); ``test_frame_columns.py`` compares the two."""
    kinds = set(map(type, values))
    if not kinds or not kinds <= _NUMBER_KINDS or kinds == {type(None)}:
        return values
    if int in kinds:
        ints = [value for value in values if type(value) is int] if len(kinds) > 1 else values
        if min(ints) < _INT64[0] or max(ints) > _INT64[1]:
            return values
        if kinds == {int}:
            return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


class TrailingDays:
    """The rows of [first - (days - 1), last] for the consecutive chunks of a range, read one after the
    other: a chunk reads only the days the previous one had not read, and drops those that left its
    span (a year of scores in weekly chunks reads each day of their 30-day baselines once, not 5 times).

    ``read(conn, first, last)`` gives a span's rows ordered by day first, or by ``order`` (a unique
    key); the carried rows and the new ones come back in that order too, as one read of the whole
    span would give them."""

    def __init__(self, read: Callable[[Connection, dt.date, dt.date], pd.DataFrame], days: int,
                 date_column: str, order: Sequence[str] | None = None) -> None:
        self._read = read
        self.days = days
        self.date_column = date_column
        self.order = list(order) if order else None
        self._rows: pd.DataFrame | None = None
        self._span: tuple[dt.date, dt.date] | None = None

    def read(self, conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
        """The rows of [first - (days - 1), last]."""
        start = first - dt.timedelta(days=self.days - 1)
        if self._rows is None or self._span is None or not self._span[0] <= start <= self._span[1] < last:
            rows = self._read(conn, start, last)
        else:
            kept = self._rows[self._rows[self.date_column] >= start]
            added = self._read(conn, self._span[1] + dt.timedelta(days=1), last)
            parts = [part for part in (kept, added) if not part.empty] or [added]
            rows = pd.concat(parts, ignore_index=True).infer_objects()
            if self.order:  # by day first, the carried days come first as they are
                rows = rows.sort_values(self.order, kind="stable", ignore_index=True)
        self._rows, self._span = rows, (start, last)
        return rows


def _typed(frame: pd.DataFrame, query: sa.Select) -> pd.DataFrame:
    for column in query.selected_columns:
        if column.name not in frame.columns:
            continue
        if isinstance(column.type, sa.DateTime):
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True)
        elif isinstance(column.type, sa.Date):
            frame[column.name] = frame[column.name].map(to_python_date, na_action="ignore")
    return frame
