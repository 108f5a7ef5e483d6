"""The reference the fast SQLite inserts are held to: the rows SQLAlchemy's own insert stores."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from perf_pipeline.warehouse.db import column_objects, insert_frame


def stored_both_ways(conn: sa.Connection, fast: sa.Table, by_sqlalchemy: sa.Table, frame: pd.DataFrame,
                     columns: str = "*") -> tuple[list[tuple], list[tuple]]:
    """``frame`` inserted into ``fast`` by ``insert_frame`` and into ``by_sqlalchemy`` (the same
    columns) by SQLAlchemy's insert, its bind processors converting one value at a time; each
    table's ``columns`` read back in ``id`` order."""
    insert_frame(conn, fast, frame)
    records = [dict(zip(frame.columns, values, strict=True))
               for values in zip(*(column_objects(frame[name]) for name in frame.columns), strict=True)]
    if records:
        conn.execute(by_sqlalchemy.insert(), records)
    fast_rows, reference_rows = (conn.exec_driver_sql(f"SELECT {columns} FROM {table.name} ORDER BY id").all()
                                 for table in (fast, by_sqlalchemy))
    return fast_rows, reference_rows
