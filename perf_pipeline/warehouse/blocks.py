"""Day blocks: the rows of a day of the tables that aggregates read over trailing windows, kept a
second time as one columnar block (an Arrow IPC stream) per day and part, in ``day_blocks``.

One new day of windows reads 90 days of rollups. Fetched through the driver, a fleet's 106,000
rollup rows of 34 columns took 1.7 s (a Python object built per value, a JSON histogram parsed per
row); the same rows as 720 blocks (90 days, 8 entity types) are read in about 0.05 s. A table
says it keeps blocks, and which column splits a day into parts read on their own (the entity type),
with ``info={DAY_BLOCKS: column}`` in ``schema.py``.

Blocks are written by ``write`` in the transaction that replaces the table's rows of those days
(``db.replace_partition``, the one way partitions are written), so they hold what the table holds.
Each day has a marker holding a signature of the block format and the table's columns (and the
day's row count, for whoever inspects the table), and each block its own row count. A read checks
the days and parts it reads: a day without a marker (written by an earlier version) or with
another signature must hold no rows of those parts (of a table that earlier versions did not
have, such as ``prompt_quality``, such a day may lack rows they wrote elsewhere: its reader checks
``unwritten_days``), and each block's row count must be the table's for its day and part (rows
changed by hand, or by an earlier version after the blocks were written, are not); otherwise it
returns None and the caller reads the table instead.

A frame read from blocks equals ``db.read_frame``'s frame of the same rows (dates as
``datetime.date``, text as pandas strings, a column without any value as None objects), except
JSON histograms ({bin: count}), which come as an Arrow map column rather than a dict per row
(``aggregates/latency.py`` reads both), and the order of text keys on PostgreSQL, whose collation
may order them otherwise (the aggregates sort their rows themselves). Timestamps are stored as the
UTC instants they are (the pipeline writes UTC).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.warehouse.schema import DAY_BLOCKS, day_blocks, key_columns

MARKER = "*"  # the part of the block row that marks a day as written (its n_rows: all the day's rows)
NO_PART = ""  # the part of a table without a part column
# A block is the LZ4 frame of its uncompressed Arrow IPC stream, after 8 bytes giving the stream's
# size. 90 days of a fleet's rollup blocks (720 blocks, mostly latency histograms): 48 MB read in
# 0.05 s uncompressed, 19 MB in 0.04 s with LZ4, 12 MB in 0.08 s with Zstandard; Arrow's own
# compression of each column's buffers (25 MB) took 0.3 s, most of it spent per buffer.
CODEC = "lz4"
HISTOGRAM = pa.map_(pa.int16(), pa.int32())  # {bin (< 800): count of a day}
FORMAT = 1  # raised with any change of how blocks are encoded: older blocks are then not read


def keeps_blocks(table: sa.Table) -> bool:
    """Whether ``table`` keeps day blocks (``info={DAY_BLOCKS: ...}`` in ``schema.py``)."""
    return DAY_BLOCKS in table.info


def _signature(table: sa.Table) -> bytes:
    """What a day's marker holds: the block format and the table's columns with their Arrow types, so
    that blocks written before a column was added or a type changed are not read."""
    layout = ",".join(f"{column.name}:{_arrow_type(column)}" for column in table.columns)
    return f"{FORMAT}/{CODEC}/".encode() + hashlib.sha256(layout.encode()).hexdigest()[:16].encode()


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


def _arrow_type(column: sa.Column) -> pa.DataType:
    kind = column.type
    for sql_type, arrow_type in ((sa.JSON, HISTOGRAM), (sa.DateTime, pa.timestamp("us", tz="UTC")),
                                 (sa.Date, pa.date32()), (sa.Integer, pa.int64()), (sa.Float, pa.float64()),
                                 (sa.String, pa.string())):
        if isinstance(kind, sql_type):
            return arrow_type
    raise TypeError(f"day blocks do not store {column.table.name}.{column.name} of type {kind}")


def _arrow_column(column: sa.Column, values: pd.Series | None, n_rows: int) -> pa.Array:
    """``values`` (None: a column the frame lacks, all null) as the Arrow array whose decoding gives
    what the database returns for them."""
    kind = _arrow_type(column)
    if values is None:
        return pa.nulls(n_rows, type=kind)
    if kind == HISTOGRAM:
        return _histograms(values.tolist())
    if pa.types.is_timestamp(kind):
        return pa.array(pd.to_datetime(values, utc=True).dt.floor("us"), type=kind, from_pandas=True)
    if kind == pa.date32():
        return pa.array([None if pd.isna(v) else v for v in values], type=kind)
    if kind == pa.int64():
        return pa.array(values.to_numpy(), from_pandas=True).cast(kind)
    if kind == pa.float64():
        return pa.array(values.to_numpy(dtype="float64", na_value=np.nan), type=kind, from_pandas=True)
    # From a list, not the series: a part of an Arrow-backed column would be encoded as a slice of the
    # whole (other bytes for the same rows). None and NaN become nulls.
    return pa.array(values.tolist(), type=kind, from_pandas=True)


def _histograms(values: list[dict[str, int] | None]) -> pa.MapArray:
    """Sparse histograms ({bin: count}, None: null) as a HISTOGRAM array, made from their keys and
    counts taken all at once: the array, and its encoded bytes, of a list of (bin, count) tuples per
    row (as ``test_blocks.py`` checks), in a quarter of the time."""
    present = [{} if histogram is None else histogram for histogram in values]
    offsets = np.zeros(len(present) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, present), dtype=np.int32, count=len(present)), out=offsets[1:])
    keys = np.array(list(map(int, itertools.chain.from_iterable(present))), dtype=np.int16)
    counts = np.array(list(map(int, itertools.chain.from_iterable(h.values() for h in present))), dtype=np.int32)
    missing = np.fromiter((histogram is None for histogram in values), dtype=bool, count=len(values))
    return pa.MapArray.from_arrays(pa.array(offsets), pa.array(keys), pa.array(counts), type=HISTOGRAM,
                                   mask=pa.array(missing) if missing.any() else None)


def write(conn: Connection, table: sa.Table, first: dt.date, last: dt.date, frame: pd.DataFrame,
          date_column: str) -> None:
    """Replace ``table``'s blocks of [first, last] with those of ``frame`` (the rows just written):
    per day a marker, and per part of the day one block of its rows sorted by primary key. Each
    block is encoded from its own rows, so its bytes do not depend on the other rows written with it
    (a range stores the same blocks as its days written one by one)."""
    part_column = table.info[DAY_BLOCKS]
    conn.execute(day_blocks.delete().where(day_blocks.c.table_name == table.name,
                                           day_blocks.c.date.between(first, last)))
    keys = [date_column, *([part_column] if part_column else []),
            *[name for name in key_columns(table) if name not in (date_column, part_column)]]
    rows, counts = [], {}
    if not frame.empty:
        ordered = frame.sort_values(keys, kind="stable", ignore_index=True)
        for key, part in ordered.groupby(keys[:2] if part_column else keys[:1], sort=True):
            day, name = (key[0], key[1]) if part_column else (key[0], NO_PART)
            counts[day] = counts.get(day, 0) + len(part)
            rows.append({"table_name": table.name, "date": day, "part": name, "n_rows": len(part),
                         "payload": _ipc(pa.table({column.name: _arrow_column(column, part.get(column.name),
                                                                              len(part))
                                                   for column in table.columns}))})
    signature = _signature(table)
    rows.extend({"table_name": table.name, "date": day, "part": MARKER, "n_rows": counts.get(day, 0),
                 "payload": signature} for day in _days(first, last))
    conn.execute(day_blocks.insert(), rows)


def _ipc(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    stream = sink.getvalue()
    return stream.size.to_bytes(8, "little") + pa.Codec(CODEC).compress(stream, asbytes=True)


def _rows(payload: bytes) -> pa.Table:
    stream = pa.decompress(memoryview(payload)[8:], decompressed_size=int.from_bytes(payload[:8], "little"),
                           codec=CODEC)
    return pa.ipc.open_stream(stream).read_all()


def read(conn: Connection, table: sa.Table, first: dt.date, last: dt.date, columns: Sequence[str] | None = None,
         parts: Sequence[str] | None = None, order: Sequence[str] | None = None) -> pd.DataFrame | None:
    """``table``'s rows of [first, last] (of ``parts`` only, when given; only ``columns``, when given)
    ordered by day, part and primary key (text by code point, as SQLite's binary collation orders
    it), or by ``order``. None, for the caller to read the table, when the span has no rows of
    those parts or a (day, part) read is not as its blocks say: blocks missing (written by an
    earlier version), of another format or table layout, or a row count other than the table's
    (rows changed outside ``replace_partition``). A day neither written nor holding rows (before
    the first partition) is as it should be (for a table that earlier versions did not have, the
    caller checks ``unwritten_days`` first)."""
    selected = [MARKER, *parts] if parts is not None else None
    query = (sa.select(day_blocks.c.date, day_blocks.c.part, day_blocks.c.n_rows, day_blocks.c.payload)
             .where(day_blocks.c.table_name == table.name, day_blocks.c.date.between(first, last),
                    *([day_blocks.c.part.in_(selected)] if selected is not None else []))
             .order_by(day_blocks.c.date, day_blocks.c.part))
    found = _fetch(conn, query)
    signature = _signature(table)
    # A marker of the first version of blocks has no payload (its table was created with the column
    # nullable, and CREATE TABLE IF NOT EXISTS keeps it so): such a day is unmarked.
    marked = {day for day, part, _, payload in found
              if part == MARKER and payload is not None and bytes(payload) == signature}
    kept = {(day, part): n_rows for day, part, n_rows, _ in found if part != MARKER and day in marked}
    if _row_counts(conn, table, first, last, parts) != {key: n for key, n in kept.items() if n}:
        return None
    blocks = [_rows(payload) for day, part, _, payload in found if (day, part) in kept]
    if not blocks or not sum(block.num_rows for block in blocks):
        return None
    rows = pa.concat_tables(blocks)
    if columns is not None:
        rows = rows.select(list(dict.fromkeys(columns)))
    if order:
        rows = rows.take(_sort_indices(rows, order))
    return _frame(rows)


def _fetch(conn: Connection, query: sa.Select) -> Sequence[Sequence[object]]:
    """The rows of ``query`` (day blocks). On PostgreSQL through psycopg, in the binary format: the
    payloads come as their bytes, not as the hex text of bytea's text format, which doubles them and
    is decoded value by value (90 days of a fleet's rollup blocks, 60 MB: 0.09 s instead of 0.33 s).
    The values are those SQLAlchemy gives (dates, text, integers and bytes, none of which it
    converts on PostgreSQL)."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return conn.execute(query).all()
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    with conn.connection.driver_connection.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()


def unwritten_days(conn: Connection, table: sa.Table, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days of [first, last] without a marker of ``table``'s blocks: not written by this version."""
    query = sa.select(day_blocks.c.date).where(day_blocks.c.table_name == table.name, day_blocks.c.part == MARKER,
                                               day_blocks.c.date.between(first, last),
                                               day_blocks.c.payload == _signature(table))
    marked = set(conn.execute(query).scalars())
    return [day for day in _days(first, last) if day not in marked]


def _row_counts(conn: Connection, table: sa.Table, first: dt.date, last: dt.date,
                parts: Sequence[str] | None) -> dict[tuple[dt.date, str], int]:
    """The table's row count per (day, part) of [first, last] (part NO_PART for a table without a
    part column), of ``parts`` only when given: what the blocks of marked days must hold, and
    unmarked days must not (see ``read``). The days are listed, not given as a range, so that the
    database seeks each day (and part) in the table's index on its day instead of counting every row
    of the span: 90 days of one entity type's rollups were counted in 0.003 to 0.03 s instead of
    0.07 to 0.09 s (0.01 to 0.27 s with a range and a filter on the part)."""
    part_column = table.info[DAY_BLOCKS]
    keys = [table.c.date, *([table.c[part_column]] if part_column else [])]
    query = sa.select(*keys, sa.func.count()).where(table.c.date.in_(_days(first, last))).group_by(*keys)
    if parts is not None and part_column:
        query = query.where(table.c[part_column].in_(list(parts)))
    if part_column:
        return {(day, part): n for day, part, n in conn.execute(query).all()}
    return {(day, NO_PART): n for day, n in conn.execute(query).all()}


def _sort_indices(rows: pa.Table, order: Sequence[str]) -> np.ndarray:
    """The permutation that orders ``rows`` by ``order`` (ascending, stable), as
    ``pc.sort_indices(rows, order)`` gives it: each key column replaced by a code that orders as its
    values do (text: the rank of its value among the column's distinct values, as Arrow orders text,
    by bytes: UTF-8 code points), then one stable sort of the codes combined into one integer. A
    last key that is in order already (the day, in rows read day after day, each day's block sorted
    by the other keys) is left out: a stable sort by the others keeps its order. 90 days of a
    fleet's node rollups (367,000 rows by agent, node and day) were ordered in 0.23 s by Arrow's
    comparisons of text, in 0.05 s by a lexsort of the three keys' ranks, and in 0.02 s so."""
    columns = [rows.column(name).combine_chunks() for name in order]
    codes = None
    if not any(column.null_count or not (pa.types.is_string(column.type) or pa.types.is_date32(column.type)
                                         or pa.types.is_integer(column.type)) for column in columns):
        codes = [_order_code(column) for column in columns] if rows.num_rows else []
    if codes is None or any(code is None for code in codes):
        # Key columns are text, dates and integers without nulls, of a range that int64 codes hold;
        # anything else: Arrow's own way.
        return pc.sort_indices(rows, [(key, "ascending") for key in order]).to_numpy()
    if not rows.num_rows:
        return np.array([], dtype=np.int64)
    last = codes[-1][0]
    if len(codes) > 1 and (last[1:] >= last[:-1]).all():
        codes = codes[:-1]
    if math.prod(size for _, size in codes) < 2**62:
        combined = np.zeros(rows.num_rows, dtype=np.int64)
        for code, size in codes:
            combined = combined * size + code
        return np.argsort(combined, kind="stable")
    return np.lexsort([code for code, _ in codes][::-1])


def _order_code(column: pa.Array) -> tuple[np.ndarray, int] | None:
    """Codes (int64, from 0) ordering as ``column``'s values order (a non-empty column of text,
    dates or integers without nulls), and their number of possible values; None when the values
    span 2 ** 62 or more."""
    if pa.types.is_string(column.type):
        encoded = column.dictionary_encode()
        rank = np.empty(len(encoded.dictionary), dtype=np.int64)
        rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(len(rank))
        return rank[encoded.indices.to_numpy()], len(rank)
    values = (column.cast(pa.int32()) if pa.types.is_date32(column.type) else column).to_numpy()
    low, high = int(values.min()), int(values.max())
    if high - low >= 2**62:
        return None
    wide = np.uint64 if values.dtype.kind == "u" else np.int64  # holds every value, and their differences
    return (values.astype(wide) - wide(low)).astype(np.int64), high - low + 1


def _frame(rows: pa.Table) -> pd.DataFrame:
    """The frame ``db.read_frame`` makes of these rows (histograms aside: an Arrow map column)."""
    data: dict[str, object] = {}
    rows = rows.combine_chunks()
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        if column.null_count == len(column) and pa.types.is_timestamp(column.type):
            data[name] = pd.to_datetime(pd.Series([None] * len(column), dtype=object), utc=True, format="mixed")
        elif column.null_count == len(column):
            data[name] = pd.Series([None] * len(column), dtype=object)
        elif pa.types.is_map(column.type):
            data[name] = pd.Series(pd.arrays.ArrowExtensionArray(column))
        else:
            data[name] = column.to_pandas()
    return pd.DataFrame(data)
