"""sql/ddl and the code cannot drift: the committed DDL is what the code renders, and applying it
to PostgreSQL gives the tables the code creates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from perf_pipeline.scoring.store import feedback_query, reviews_query
from perf_pipeline.warehouse.db import PAGE_CACHE_KIB, create_warehouse_engine, initialize_warehouse, split_statements
from perf_pipeline.warehouse.ddl import ddl_files
from perf_pipeline.warehouse.schema import metadata

SQL_DDL = Path(__file__).resolve().parents[2] / "sql" / "ddl"


def test_committed_ddl_matches_the_table_definitions() -> None:
    expected = ddl_files()
    committed = {p.name: p.read_text(encoding="utf-8") for p in SQL_DDL.glob("*.sql")}
    assert committed == expected, "sql/ddl is stale: run `perf-pipeline schema --write`"


@pytest.mark.postgres
def test_the_ddl_files_create_the_tables_the_code_expects(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        for path in sorted(SQL_DDL.glob("*.sql")):
            for statement in split_statements(path.read_text(encoding="utf-8")):
                conn.execute(sa.text(statement))
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) == set(metadata.tables)
    for table in metadata.tables.values():
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, f"{table.name}.{column.name}"
        assert inspector.get_pk_constraint(table.name)["constrained_columns"] == [c.name for c in table.primary_key]
    engine.dispose()


def test_a_warehouse_made_before_an_index_existed_gets_it(tmp_path: Path) -> None:
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    initialize_warehouse(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_feedback_events_task_id")
    initialize_warehouse(engine)
    assert "ix_feedback_events_task_id" in {i["name"] for i in sa.inspect(engine).get_indexes("feedback_events")}
    engine.dispose()


def test_a_range_s_feedback_and_reviews_are_found_from_its_tasks(tmp_path: Path) -> None:
    """The join starts from the range's tasks (their day index) and finds their feedback and reviews by
    task id, rather than reading every feedback and review of the history for each range."""
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    initialize_warehouse(engine)
    day = dt.date(2026, 3, 1)
    with engine.connect() as conn:
        for query in (feedback_query(day, day), reviews_query(day, day)):
            sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "ix_task_events_partition_date" in plan and "_task_id (task_id=?)" in plan, plan
    engine.dispose()


def test_sqlite_warehouse_connections_journal_ahead_with_a_large_page_cache(tmp_path: Path) -> None:
    """Every connection of a SQLite warehouse: WAL journaling, NORMAL syncing, foreign keys checked,
    and a page cache of PAGE_CACHE_KIB (bulk inserts into large indexes)."""
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    with engine.connect() as conn:
        settings = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "synchronous", "foreign_keys", "cache_size")}
    assert settings == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "cache_size": -PAGE_CACHE_KIB}
