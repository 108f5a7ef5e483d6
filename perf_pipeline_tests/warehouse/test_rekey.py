"""Warehouses made by earlier versions, whose per-day aggregate tables had entity-first primary keys
and a day index, get the schema's day-first keys when they are opened, every row kept."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from perf_pipeline.warehouse.db import create_warehouse_engine, initialize_warehouse, rekey_tables
from perf_pipeline.warehouse.schema import (
    RETIRED_INDEXES,
    daily_metrics,
    daily_rollups,
    node_rollups,
    row_order,
    trends,
    window_stats,
)

REKEYED = (daily_rollups, daily_metrics, node_rollups, window_stats, trends)


def _earlier_schema(tables: tuple[sa.Table, ...] = REKEYED, without: str | None = None) -> sa.MetaData:
    """``tables`` as earlier versions made them: the key in ``row_order`` (entity first) and the day
    index, optionally without the column ``without``."""
    earlier = sa.MetaData()
    for table in tables:
        columns = [sa.Column(c.name, c.type, nullable=c.nullable) for c in table.columns if c.name != without]
        old = sa.Table(table.name, earlier, *columns, sa.PrimaryKeyConstraint(*row_order(table)))
        day = "as_of_date" if "as_of_date" in old.c else "date"
        sa.Index(RETIRED_INDEXES[table.name][0], *[old.c[c] for c in (day, "entity_type") if c in old.c])
    return earlier


def _value(column: sa.Column, i: int) -> object:
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return dt.datetime(2026, 3, 1, 12, i, tzinfo=dt.UTC)
    if isinstance(kind, sa.Date):
        return dt.date(2026, 3, 1) + dt.timedelta(days=i % 3)
    if isinstance(kind, sa.JSON):
        return {"17": i + 1}
    if isinstance(kind, sa.Integer):
        return i
    if isinstance(kind, sa.Float):
        return 0.1 * i + 1 / 3
    return {"entity_type": ("agent", "project")[i % 2]}.get(column.name, f"{column.name}-{i // 3}")


def _rows(table: sa.Table, n: int = 12) -> list[dict[str, object]]:
    return [{column.name: _value(column, i) for column in table.columns} for i in range(n)]


def _content(engine: sa.Engine, table: sa.Table) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(table).order_by(*[table.c[c] for c in row_order(table)]))]


def test_earlier_entity_first_keys_become_day_first_with_every_row_kept(warehouse_url: str) -> None:
    engine = create_warehouse_engine(warehouse_url)
    _earlier_schema().create_all(engine)
    with engine.begin() as conn:
        for table in REKEYED:
            conn.execute(table.insert(), _rows(table))
        conn.execute(sa.text("CREATE VIEW v_analyst AS SELECT entity_id, date, n_tasks FROM daily_rollups"))
    before = {table.name: _content(engine, table) for table in REKEYED}
    assert all(len(rows) == 12 for rows in before.values())

    initialize_warehouse(engine)

    inspector = sa.inspect(engine)
    for table in REKEYED:
        assert inspector.get_pk_constraint(table.name)["constrained_columns"] == \
            [column.name for column in table.primary_key.columns]
        assert _content(engine, table) == before[table.name]
        assert {index["name"] for index in inspector.get_indexes(table.name)} == {index.name for index in table.indexes}
    assert {index["name"] for index in inspector.get_indexes("daily_rollups")} == {"ix_daily_rollups_project_days"}
    with engine.connect() as conn:  # a view that names a rekeyed table reads it as before
        assert conn.execute(sa.text("SELECT COUNT(*), SUM(n_tasks) FROM v_analyst")).one() == (12, sum(range(12)))
    assert rekey_tables(engine) == []  # once only
    engine.dispose()


def test_a_table_whose_columns_are_not_the_schemas_keeps_its_key_and_rows(warehouse_url: str) -> None:
    engine = create_warehouse_engine(warehouse_url)
    _earlier_schema((daily_metrics,), without="avg_tokens").create_all(engine)
    rows = [{k: v for k, v in row.items() if k != "avg_tokens"} for row in _rows(daily_metrics)]
    with engine.begin() as conn:
        conn.execute(sa.table("daily_metrics", *[sa.column(name) for name in rows[0]]).insert(), rows)

    initialize_warehouse(engine)

    assert rekey_tables(engine) == []
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("daily_metrics")["constrained_columns"] == row_order(daily_metrics)
    # Its day index stays: with its former key, it still needs it.
    assert {index["name"] for index in inspector.get_indexes("daily_metrics")} == set(RETIRED_INDEXES["daily_metrics"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM daily_metrics")).scalar_one() == 12
    engine.dispose()


def test_a_rekey_that_fails_leaves_the_table_and_the_connection_as_they_were(tmp_path: Path) -> None:
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    _earlier_schema((node_rollups,)).create_all(engine)
    with engine.begin() as conn:
        conn.execute(node_rollups.insert(), _rows(node_rollups))
        # What the copy would be named is taken by a view: the copy fails.
        conn.execute(sa.text("CREATE VIEW node_rollups__rekeyed AS SELECT 1 AS one"))
    before = _content(engine, node_rollups)

    with pytest.raises(sqlite3.OperationalError, match="DROP VIEW"):
        rekey_tables(engine)

    assert sa.inspect(engine).get_pk_constraint("node_rollups")["constrained_columns"] == row_order(node_rollups)
    assert "node_rollups__rekeyed" not in sa.inspect(engine).get_table_names()
    assert _content(engine, node_rollups) == before
    with engine.connect() as conn:  # the pooled connection got its settings back
        assert conn.connection.driver_connection.isolation_level is not None
        assert conn.exec_driver_sql("PRAGMA legacy_alter_table").scalar_one() == 0
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 60_000
    with pytest.raises(RuntimeError), engine.begin() as conn:  # and its transactions are transactions again
        conn.execute(node_rollups.delete())
        raise RuntimeError("rolled back")
    assert _content(engine, node_rollups) == before
    engine.dispose()
