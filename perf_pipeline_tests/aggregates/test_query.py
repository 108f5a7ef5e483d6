"""``perf-pipeline query`` and ``recommend`` over hand-written aggregate rows, on each warehouse."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from perf_pipeline import cli
from perf_pipeline.aggregates.config import ProviderRankingConfig
from perf_pipeline.aggregates.query import Filters, QueryError, recommendation, render, run_query
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import daily_rollups, leaderboard, provider_rankings, window_stats

D1, D2 = dt.date(2026, 3, 30), dt.date(2026, 3, 31)


def _window_row(day: dt.date, entity_type: str, entity_id: str, window: int, n: int) -> dict:
    row = {c.name: None for c in window_stats.columns}
    row.update({c.name: 0 for c in window_stats.columns if not c.nullable})
    row.update(entity_type=entity_type, entity_id=entity_id, as_of_date=day, window_days=window, n_tasks=n,
               status="ok" if n >= 5 else "insufficient_data", success_rate=0.5 if n >= 5 else None)
    return row


def _membership(kind: str, group: str, agent: str) -> dict:
    row = {c.name: None for c in daily_rollups.columns}
    row.update({c.name: 0 for c in daily_rollups.columns if not c.nullable})
    column = "department" if kind == "department" else "project_id"
    row.update(entity_type=f"{kind}_agent", entity_id=f"{group}/{agent}", date=D1, agent_id=agent, **{column: group},
               first_task_at=dt.datetime(2026, 3, 30, 8, tzinfo=dt.UTC),
               last_task_at=dt.datetime(2026, 3, 30, 9, tzinfo=dt.UTC), response_time_histogram={})
    return row


def _ranking(model: str, rank: int | None, utility: float | None, status: str = "ranked") -> dict:
    return {"as_of_date": D2, "task_type": "bug_fix", "provider": "openai", "model": model, "window_days": 30,
            "rank": rank, "status": status, "n_tasks": 12, "n_quality": 10, "n_cost": 12, "avg_quality_score": 0.8,
            "avg_cost_per_task": 0.01, "p50_response_time_ms": 900.0, "success_rate": 0.9, "utility": utility}


@pytest.fixture
def filled(warehouse_url: str) -> str:
    engine = warehouse_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(window_stats.insert(), [
            _window_row(day, kind, entity, window, n)
            for day in (D1, D2) for window in (7, 30)
            for kind, entity, n in [("agent", "a1", 9), ("agent", "a2", 3), ("agent", "b1", 6),
                                    ("department", "eng", 12), ("department", "ops", 6)]])
        conn.execute(daily_rollups.insert(), [_membership("department", "eng", "a1"),
                                              _membership("department", "eng", "a2"),
                                              _membership("department", "ops", "b1"),
                                              _membership("project", "p1", "b1")])
        conn.execute(leaderboard.insert(), [
            {"as_of_date": D2, "window_days": 7, "agent_id": a, "rank": r, "status": s, "department": d,
             "n_tasks": n, "n_overall": n, "avg_overall_score": score}
            for a, r, s, d, n, score in [("a1", 2, "ranked", "eng", 9, 0.6), ("b1", 1, "ranked", "ops", 6, 0.7),
                                         ("a2", None, "insufficient_data", "eng", 3, None)]])
        conn.execute(provider_rankings.insert(), [_ranking("gpt-4.1", 2, 0.71), _ranking("gpt-4.1-mini", 1, 0.74),
                                                  _ranking("o3", None, None, "insufficient_data")])
    return warehouse_url


def query(url: str, name: str, **filters) -> list[dict]:
    with warehouse_engine(url).connect() as conn:
        return run_query(conn, name, Filters(**filters))


def test_without_dates_the_latest_day_is_shown(filled: str) -> None:
    rows = query(filled, "window-stats", entity_type="agent", window=7)
    assert [(r["as_of_date"], r["entity_id"]) for r in rows] == [(D2, "a1"), (D2, "a2"), (D2, "b1")]
    assert len(query(filled, "window-stats", first=D1, last=D2, entity="a1")) == 4  # 2 days x 2 windows


def test_a_department_is_itself_and_its_agents(filled: str) -> None:
    rows = query(filled, "window-stats", department="eng", window=30)
    assert sorted((r["entity_type"], r["entity_id"]) for r in rows) == [
        ("agent", "a1"), ("agent", "a2"), ("department", "eng")]
    assert [r["agent_id"] for r in query(filled, "leaderboard", project="p1")] == ["b1"]


def test_the_leaderboard_lists_ranked_agents_first(filled: str) -> None:
    assert [(r["agent_id"], r["rank"]) for r in query(filled, "leaderboard")] == [
        ("b1", 1), ("a1", 2), ("a2", None)]
    assert [r["agent_id"] for r in query(filled, "leaderboard", department="eng")] == ["a1", "a2"]


def test_filters_are_bound_parameters(filled: str) -> None:
    assert query(filled, "window-stats", entity="a1' OR '1'='1") == []
    assert query(filled, "leaderboard", department="eng'; DROP TABLE leaderboard; --") == []
    assert len(query(filled, "leaderboard")) == 3  # still there


def test_a_filter_that_does_not_apply_is_an_error(filled: str) -> None:
    with pytest.raises(QueryError, match="--department does not apply to provider-rankings"):
        query(filled, "provider-rankings", department="eng")


def test_formats(filled: str) -> None:
    rows = query(filled, "leaderboard")
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert [r["agent_id"] for r in parsed] == ["b1", "a1", "a2"] and parsed[2]["rank"] == ""
    records = json.loads(render(rows, "json"))
    assert records[0]["as_of_date"] == "2026-03-31" and records[2]["avg_overall_score"] is None
    table = render(rows, "table", ["agent_id", "rank"]).splitlines()
    assert table[0].split() == ["agent_id", "rank"] and table[-1].split() == ["a2", "-"]


def test_recommend_names_the_best_candidate_with_its_evidence(filled: str) -> None:
    with warehouse_engine(filled).connect() as conn:
        text = recommendation(conn, "bug_fix", ProviderRankingConfig())
        with pytest.raises(QueryError, match="known task types: bug_fix"):
            recommendation(conn, "poetry", ProviderRankingConfig())
    assert "Recommended: openai / gpt-4.1-mini (utility 0.740" in text
    assert "Runner-up: openai / gpt-4.1 (utility 0.710, +0.030 behind)" in text
    assert "insufficient_data" in text  # the unranked candidate is shown too


def test_the_cli_prints_and_explains_errors(filled: str, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PERF_WAREHOUSE_URL", filled)
    assert cli.main(["query", "leaderboard", "--format", "json"]) == 0
    assert [r["agent_id"] for r in json.loads(capsys.readouterr().out)] == ["b1", "a1", "a2"]
    assert cli.main(["query", "anomalies", "--project", "p1"]) == 1
    assert "--project does not apply to anomalies" in capsys.readouterr().err
    assert cli.main(["recommend", "--task-type", "bug_fix"]) == 0
    assert "gpt-4.1-mini" in capsys.readouterr().out


def test_querying_a_missing_warehouse_says_what_to_do(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PERF_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    assert cli.main(["query", "trends"]) == 1
    assert "run `perf-pipeline run`" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
