"""sql/ddl and the code cannot drift: the committed DDL is what the code renders, and applying it
to PostgreSQL gives the tables the code creates."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from perf_pipeline.warehouse.db import split_statements
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
