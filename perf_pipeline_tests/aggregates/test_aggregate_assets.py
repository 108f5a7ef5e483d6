"""The aggregate assets materialized for real: a backfilled range equals its days run one by one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import ExecuteInProcessResult, materialize

from perf_pipeline.aggregates.assets import AGGREGATE_ASSETS
from perf_pipeline.aggregates.checks import leaderboard_check, rollups_check, windows_check
from perf_pipeline.alerts.assets import alert_conditions_asset
from perf_pipeline.daily import day_chunks
from perf_pipeline.launcher import RANGE_END_TAG, RANGE_START_TAG
from perf_pipeline.resources import AlertsResource
from perf_pipeline.warehouse.chunks import uses_workers
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import DDL_GROUPS, metadata
from perf_pipeline_tests.events_factory import task, write_jsonl
from perf_pipeline_tests.scoring.test_scoring_assets import ingest_and_build, reported, resources, rows, score

FIRST = dt.date(2026, 3, 1)
# With the alert conditions: as windowed as the aggregates they are read from.
AGGREGATE_TABLES = [*DDL_GROUPS["050_aggregates.sql"], *DDL_GROUPS["060_rankings.sql"],
                    metadata.tables["alert_conditions"]]
DAYS = 12


def many_days(landing: Path) -> None:
    events = []
    for d in range(DAYS):
        day = FIRST + dt.timedelta(days=d)
        for agent in ("agent-1", "agent-2"):
            for n in range(3):
                events.append(task(f"t-{d}-{agent}-{n}", agent_id=agent, status="failed" if (d + n) % 4 == 0
                                   else "success", assigned_at=f"{day}T08:00:00Z", started_at=f"{day}T08:01:00Z",
                                   completed_at=f"{day}T{9 + n}:{10 + d}:00Z", response_time_ms=500.0 + 40 * d + n,
                                   user_rating=1 + (d + n) % 5, input_tokens=1000 + 50 * d,
                                   prompt_version=f"v{1 + n % 2}",
                                   feedback_type=("correction", "approval", "innovation")[(d + n) % 3],
                                   steps=[{"node": "plan", "tokens": 100 + d, "status": "success",
                                           "started_at": f"{day}T08:01:00Z", "completed_at": f"{day}T08:02:00Z"},
                                          {"node": "act", "tokens": 400, "status": "failed" if n == 2 else "success",
                                           "started_at": f"{day}T08:02:00Z", "completed_at": f"{day}T08:04:30Z"}]))
    write_jsonl(landing / "tasks.jsonl", events)


def aggregate(url: str, landing: Path, first: dt.date, last: dt.date | None = None) -> ExecuteInProcessResult:
    tags = {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()} if last else None
    result = materialize([*AGGREGATE_ASSETS, alert_conditions_asset], tags=tags,
                         resources={**resources(url, landing), "alerts": AlertsResource()},
                         partition_key=None if last else first.isoformat())
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 4 and all(check.passed for check in checks)
    return result


def scored_warehouses(tmp_path: Path, landing: Path, names: tuple[str, str]) -> tuple[list[str], dt.date]:
    """Two warehouses with the same many days ingested, built and scored; and the last day."""
    many_days(landing)
    last = FIRST + dt.timedelta(days=DAYS - 1)
    urls = [f"sqlite:///{tmp_path / name}.db" for name in names]
    for url in urls:
        ingest_and_build(url, landing, FIRST.isoformat(), last.isoformat())
        score(url, landing, FIRST.isoformat(), last.isoformat())
    return urls, last


def test_a_backfilled_range_equals_its_days_one_by_one(tmp_path: Path, landing: Path) -> None:
    urls, last = scored_warehouses(tmp_path, landing, ("range", "days"))
    aggregate(urls[0], landing, FIRST, last)
    for d in range(DAYS):
        aggregate(urls[1], landing, FIRST + dt.timedelta(days=d))
    for table in AGGREGATE_TABLES:
        assert rows(urls[0], table) == rows(urls[1], table), table.name
        assert table.name == "anomalies" or len(rows(urls[0], table)) > 0, table.name


def test_a_range_built_in_chunks_equals_one_pass(tmp_path: Path, landing: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    urls, last = scored_warehouses(tmp_path, landing, ("one_pass", "chunks"))
    aggregate(urls[0], landing, FIRST, last)
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", 3)  # the range in chunks of 3 days
    monkeypatch.setattr("perf_pipeline.daily.AS_OF_CHUNK_DAYS", 5)
    aggregate(urls[1], landing, FIRST, last)
    for table in AGGREGATE_TABLES:
        assert rows(urls[0], table) == rows(urls[1], table), table.name


def test_a_range_built_by_worker_processes_equals_one_pass(tmp_path: Path, landing: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    urls, last = scored_warehouses(tmp_path, landing, ("one_pass", "workers"))
    monkeypatch.setattr("perf_pipeline.settings.usable_cpus", lambda: 1)  # every chunk in this process
    here = aggregate(urls[0], landing, FIRST, last)
    monkeypatch.setattr("perf_pipeline.settings.usable_cpus", lambda: 2)
    monkeypatch.setattr("perf_pipeline.daily.CHUNK_DAYS", 3)
    monkeypatch.setattr("perf_pipeline.daily.AS_OF_CHUNK_DAYS", 4)  # 3 chunks each: two workers do them
    assert uses_workers(urls[1], len(day_chunks(FIRST, last, as_of=True)))
    by_workers = aggregate(urls[1], landing, FIRST, last)
    for table in AGGREGATE_TABLES:
        assert rows(urls[0], table) == rows(urls[1], table), table.name
    assert reported(by_workers) == reported(here)  # every figure per day and per range, every check


def test_aggregates_on_each_warehouse(warehouse_url: str, landing: Path) -> None:
    many_days(landing)
    last = FIRST + dt.timedelta(days=DAYS - 1)
    ingest_and_build(warehouse_url, landing, FIRST.isoformat(), last.isoformat())
    score(warehouse_url, landing, FIRST.isoformat(), last.isoformat())
    aggregate(warehouse_url, landing, FIRST, last)
    agent = metadata.tables["window_stats"].c
    with warehouse_engine(warehouse_url).connect() as conn:
        row = conn.execute(sa.select(agent.n_tasks, agent.status, agent.success_rate).where(
            agent.entity_type == "agent", agent.entity_id == "agent-1", agent.as_of_date == last,
            agent.window_days == 7)).one()
    # 7 days x 3 tasks; failed when (d + n) % 4 == 0 for days d = 5..11, n = 0..2: 5 of 21
    assert (row.n_tasks, row.status) == (21, "ok") and abs(row.success_rate - 16 / 21) < 1e-9
    with warehouse_engine(warehouse_url).connect() as conn:
        latest = conn.execute(sa.text("SELECT window_days, n_tasks, as_of_date FROM v_latest_agent_stats "
                                      "WHERE agent_id = 'agent-1' ORDER BY window_days")).all()
        assert [(w, n) for w, n, _ in latest] == [(7, 21), (30, 36), (90, 36)]
        recommended = conn.execute(sa.text("SELECT task_type, provider, model FROM v_provider_recommendations")).all()
        assert recommended == [("bug_fix", "openai", "gpt-4.1")]
        assert conn.execute(sa.text("SELECT COUNT(*) FROM v_latest_trends")).scalar() > 0
        conn.execute(sa.text("SELECT * FROM v_recent_anomalies")).all()  # valid SQL on this database


def test_the_checks_catch_lost_tasks_and_inconsistent_rows(tmp_path: Path, landing: Path) -> None:
    many_days(landing)
    url = f"sqlite:///{tmp_path / 'checks.db'}"
    last = FIRST + dt.timedelta(days=DAYS - 1)
    ingest_and_build(url, landing, FIRST.isoformat(), last.isoformat())
    score(url, landing, FIRST.isoformat(), last.isoformat())
    aggregate(url, landing, FIRST, last)
    rollup, window, board = (metadata.tables[name] for name in ("daily_rollups", "window_stats", "leaderboard"))
    with warehouse_engine(url).begin() as conn:
        assert rollups_check(conn, FIRST, last).passed and windows_check(conn, FIRST, last, 5).passed
        conn.execute(rollup.delete().where(rollup.c.entity_type == "provider", rollup.c.date == last))
        conn.execute(window.update().where(window.c.entity_id == "agent-1", window.c.as_of_date == last,
                                           window.c.window_days == 7).values(status="insufficient_data"))
        conn.execute(board.update().where(board.c.rank == 1, board.c.as_of_date == last).values(rank=3))
        lost, inconsistent, ranks = (rollups_check(conn, FIRST, last), windows_check(conn, FIRST, last, 5),
                                     leaderboard_check(conn, FIRST, last))
    assert not lost.passed and "provider" in lost.metadata["entity_types_not_adding_up"].value
    assert not inconsistent.passed and inconsistent.metadata["status_disagrees_with_n_tasks"].value == 1
    assert not ranks.passed and ranks.metadata["days_with_bad_ranks"].value >= 1
