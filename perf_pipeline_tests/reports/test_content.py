"""What a report says, gathered from a warehouse the pipeline built for real from planted logs.

The logs (``planted_events``) cover 2026-03-01..15; week 2026-W11 is 03-09..15. Four agents do the
same four tasks every day: two code reviews (anthropic/claude-x at $0.010 and openai/gpt-4.1-mini at
$0.004, whose coverage is a little lower) and two bug fixes on openai/gpt-4.1 (prompt v1, rated one
point lower, and v2). agent-07's ratings fall from 5 to 1 over the fortnight and its test coverage
by 0.04 a day (declining); agent-03's ratings rise from 2 to 5 and its coverage by 0.04 a day
(improving); agent-01 and agent-02 hold steady. agent-09 has 2 self-hosted tasks of unknown cost
every third day (too few to rank); agent-10 has 2 tasks a day with nothing to judge (no scores).
Every code review or bug fix whose day + index is a multiple of 5 fails, and the fourth task of
each set misses its 10-minute SLA.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from dagster import materialize

from perf_pipeline.aggregates.assets import AGGREGATE_ASSETS
from perf_pipeline.aggregates.rollups import daily_rollups
from perf_pipeline.aggregates.store import read_rollups, read_scored_tasks
from perf_pipeline.launcher import RANGE_END_TAG, RANGE_START_TAG
from perf_pipeline.reports.content import Period, Report, _judge_costs, _period_totals, gather
from perf_pipeline.reports.render import markdown
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import (
    alerts,
    leaderboard,
    llm_judge_calls,
    provider_rankings,
    task_events,
    task_scores,
    trends,
)
from perf_pipeline_tests.events_factory import task, write_jsonl
from perf_pipeline_tests.fakes.openai_server import FakeOpenAIServer
from perf_pipeline_tests.scoring.test_scoring_assets import ingest_and_build, resources, score

FIRST, DAYS = dt.date(2026, 3, 1), 15
LAST = FIRST + dt.timedelta(days=DAYS - 1)  # Sunday 2026-03-15
WEEK = Period.weekly(dt.date(2026, 3, 9))
STEADY_RATINGS = {"agent-01": 5, "agent-02": 4}


def rating(agent: str, day: int, prompt_version: str) -> int:
    if agent == "agent-07":
        base = 5 - 4 * day // (DAYS - 1)
    elif agent == "agent-03":
        base = 2 + 3 * day // (DAYS - 1)
    else:
        base = STEADY_RATINGS[agent]
    return max(1, base - 1) if prompt_version == "v1" else base


def coverage_lost(agent: str, day: int) -> float:
    """What an agent's test coverage lacks on a day: agent-07 loses 0.04 a day, agent-03 gains it."""
    days_short = {"agent-07": day, "agent-03": DAYS - 1 - day}.get(agent, 0)
    return 0.04 * days_short


def planted_events() -> list[dict]:
    events = []
    for d in range(DAYS):
        day = FIRST + dt.timedelta(days=d)
        for agent in ("agent-01", "agent-02", "agent-03", "agent-07"):
            kinds = [("code_review", "anthropic", "claude-x", 0.010, 0.9, "v1", 600.0),
                     ("code_review", "openai", "gpt-4.1-mini", 0.004, 0.8, "v1", 900.0),
                     ("bug_fix", "openai", "gpt-4.1", 0.012 + 0.001 * (d * 7 % 5), 0.85, "v1", 800.0),
                     ("bug_fix", "openai", "gpt-4.1", 0.012 + 0.001 * (d * 3 % 4), 0.85, "v2", 800.0)]
            for n, (task_type, provider, model, cost, coverage, version, latency) in enumerate(kinds):
                events.append(task(
                    f"t-{day}-{agent}-{n}", agent_id=agent, task_type=task_type, provider=provider, model=model,
                    cost_usd=0.2 if task_type == "bug_fix" and d == 13 else cost, prompt_version=version,
                    status="failed" if (d + n) % 5 == 0 else "success", assigned_at=f"{day}T08:00:00Z",
                    started_at=f"{day}T08:01:00Z", completed_at=f"{day}T08:{20 + n}:00Z",
                    sla_seconds=600 if n == 3 else 3600, response_time_ms=latency + 10 * ((d + n) % 3),
                    user_rating=rating(agent, d, version), output=f"result {day} {agent} {n}",
                    code_review={"lint_errors": 0, "tests_passed": 9, "tests_failed": 1,
                                 "coverage": coverage - coverage_lost(agent, d)}))
        if d % 3 == 0:
            events += [task(f"t-{day}-agent-09-{n}", agent_id="agent-09", provider="vllm", model="llama-3.1-70b",
                            cost_usd=None, assigned_at=f"{day}T10:00:00Z", started_at=f"{day}T10:01:00Z",
                            completed_at=f"{day}T10:30:00Z", user_rating=3) for n in range(2)]
        events += [task(f"t-{day}-agent-10-{n}", agent_id="agent-10", output=None, assigned_at=f"{day}T11:00:00Z",
                        started_at=f"{day}T11:01:00Z", completed_at=f"{day}T11:30:00Z") for n in range(2)]
    return events


def build_warehouse(url: str, folder: Path) -> None:
    """Ingest, score (the judge on the loopback server, priced) and aggregate the planted logs."""
    landing = folder / "landing"
    landing.mkdir(parents=True)
    write_jsonl(landing / "tasks.jsonl", planted_events())
    ingest_and_build(url, landing, FIRST.isoformat(), LAST.isoformat())
    config = folder / "scoring.yaml"
    config.write_text(yaml.safe_dump({"judge": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}}))
    server = FakeOpenAIServer.start()
    try:
        score(url, landing, FIRST.isoformat(), LAST.isoformat(), server=server, config=str(config))
    finally:
        server.close()
    tags = {RANGE_START_TAG: FIRST.isoformat(), RANGE_END_TAG: LAST.isoformat()}
    assert materialize(AGGREGATE_ASSETS, resources=resources(url, landing), tags=tags).success


@functools.cache
def _built_sqlite(folder: Path) -> str:
    url = f"sqlite:///{folder / 'warehouse.db'}"
    build_warehouse(url, folder)
    return url


def planted_warehouse(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The planted warehouse on SQLite, built once per test process: the render and browser tests
    read it too."""
    return _built_sqlite(tmp_path_factory.getbasetemp() / "planted-warehouse")


def planted_week(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The report of week 2026-W11 of the planted warehouse."""
    with warehouse_engine(planted_warehouse(tmp_path_factory)).connect() as conn:
        return gather(conn, WEEK)


@pytest.fixture(scope="module")
def report_warehouse(tmp_path_factory: pytest.TempPathFactory) -> str:
    return planted_warehouse(tmp_path_factory)


@pytest.fixture(scope="module")
def weekly_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return planted_week(tmp_path_factory)


def test_periods_are_a_day_or_an_iso_week() -> None:
    day = Period.daily(dt.date(2026, 3, 4))
    assert (day.kind, day.first, day.last, day.label) == ("daily", dt.date(2026, 3, 4), dt.date(2026, 3, 4),
                                                          "2026-03-04")
    assert (WEEK.kind, WEEK.first, WEEK.last, WEEK.label) == ("weekly", dt.date(2026, 3, 9), dt.date(2026, 3, 15),
                                                              "2026-W11")
    # The ISO year of the week, not the calendar year of its Monday.
    assert Period.weekly(dt.date(2024, 12, 30)).label == "2025-W01"
    with pytest.raises(ValueError, match="Monday; 2026-03-10 is a Tuesday"):
        Period.weekly(dt.date(2026, 3, 10))


def test_the_planted_declining_agent_is_reported_with_its_evidence(report_warehouse: str, weekly_report) -> None:
    declining = {(t.agent_id, t.window_days): t for t in weekly_report.declining}
    assert set(declining) == {("agent-07", 7), ("agent-07", 30)}
    week = declining["agent-07", 7]
    trend = trends.c
    with warehouse_engine(report_warehouse).connect() as conn:
        stored = conn.execute(sa.select(trend.slope_per_day, trend.slope_low, trend.slope_high, trend.n_points).where(
            trend.entity_type == "agent", trend.entity_id == "agent-07", trend.as_of_date == LAST,
            trend.window_days == 7, trend.metric == "avg_overall_score")).one()
    assert (week.slope_per_day, week.slope_low, week.slope_high, week.n_points) == tuple(stored)
    assert week.slope_high < 0 and week.n_points == 7 and week.n_tasks == 28  # 4 tasks a day for 7 days

    first = weekly_report.recommendations[0]
    assert first.kind == "declining_agent" and first.evidence["agent_id"] == "agent-07"
    assert first.evidence["window_days"] == 7 and first.evidence["slope_per_day"] == stored.slope_per_day
    assert first.text.startswith(f"agent-07's overall score fell {abs(stored.slope_per_day):.2g}/day over 7 days "
                                 f"(95 % interval {stored.slope_low:.2g} to {stored.slope_high:.2g} per day), "
                                 "n = 7 days with scores, 28 tasks")

    assert [(t.agent_id, t.window_days) for t in weekly_report.improving] == [("agent-03", 7), ("agent-03", 30)]
    best = {m.window_days: m.agent_id for m in weekly_report.most_improved}
    assert best == {7: "agent-03", 30: "agent-03"}
    charted = {s.agent_id: s.role for s in weekly_report.score_history}
    assert charted == {"agent-01": "rank 1", "agent-02": "rank 2", "agent-03": "rank 3", "agent-07": "declining"}
    assert all(len(s.points) == DAYS for s in weekly_report.score_history)


def test_the_leaderboard_is_the_leaderboard_table(report_warehouse: str, weekly_report) -> None:
    board = leaderboard.c
    with warehouse_engine(report_warehouse).connect() as conn:
        stored = conn.execute(sa.select(board.agent_id, board.rank, board.status, board.n_tasks,
                                        board.avg_overall_score)
                              .where(board.as_of_date == LAST, board.window_days == 7)).all()
    reported = [(e.agent_id, e.rank, e.status, e.n_tasks, e.avg_overall_score) for e in weekly_report.leaderboard]
    assert sorted(reported, key=str) == sorted(map(tuple, stored), key=str)
    assert [e.agent_id for e in weekly_report.ranked] == ["agent-01", "agent-02", "agent-03", "agent-07"]
    assert [e.rank for e in weekly_report.ranked] == [1, 2, 3, 4]
    assert {e.agent_id: e.status for e in weekly_report.unranked} == {"agent-09": "insufficient_data",
                                                                      "agent-10": "no_scores"}


def test_the_period_totals_are_the_sums_of_its_tasks(report_warehouse: str, weekly_report) -> None:
    tasks, scores, calls = task_events.c, task_scores.c, llm_judge_calls.c
    in_week = tasks.partition_date.between(WEEK.first, WEEK.last)
    with warehouse_engine(report_warehouse).connect() as conn:
        statuses = dict(conn.execute(sa.select(tasks.status, sa.func.count()).where(in_week)
                                     .group_by(tasks.status)).all())
        costs = conn.execute(sa.select(scores.cost_usd).join(task_events, tasks.task_id == scores.task_id)
                             .where(in_week)).scalars().all()
        sla = conn.execute(sa.select(tasks.completion_time_s, tasks.sla_seconds).where(in_week)).all()
        judge = conn.execute(sa.select(calls.cost_usd).join(task_events, tasks.task_id == calls.task_id)
                             .where(in_week)).scalars().all()
        providers = dict(conn.execute(sa.select(tasks.provider, sa.func.count()).where(in_week)
                                      .group_by(tasks.provider)).all())
    totals = weekly_report.totals
    # 4 agents x 4 tasks x 7 days, agent-10's 2 a day, agent-09's 2 on 03-10 and on 03-13.
    assert totals.n_tasks == sum(statuses.values()) == 4 * 4 * 7 + 2 * 7 + 4
    assert totals.tasks_completed == statuses["success"] and totals.tasks_failed == statuses["failed"]
    assert totals.success_rate == pytest.approx(statuses["success"] / totals.n_tasks)
    known = [c for c in costs if c is not None]
    assert totals.n_cost == len(known) and totals.tasks_cost_unknown == 4  # agent-09's self-hosted tasks
    assert totals.total_cost_usd == pytest.approx(math.fsum(known))
    met = [elapsed <= limit for elapsed, limit in sla if elapsed is not None and limit is not None]
    assert totals.n_sla == len(met) and totals.sla_compliance_rate == pytest.approx(sum(met) / len(met))
    assert totals.judge_calls == len(judge) == 4 * 4 * 7 + 4  # every task with an output, judged once
    assert totals.evaluation_cost_usd == pytest.approx(math.fsum(judge)) and totals.evaluation_cost_usd > 0
    by_provider = {c.provider: c for c in weekly_report.provider_costs}
    assert {p: c.n_tasks for p, c in by_provider.items()} == providers
    assert by_provider["vllm"].avg_cost_per_task is None and by_provider["vllm"].total_cost_usd is None
    assert by_provider["anthropic"].avg_cost_per_task == pytest.approx(0.010)


def test_the_period_totals_from_stored_rollups_equal_those_of_the_period_tasks(report_warehouse: str) -> None:
    """The totals and provider costs are computed from the providers' stored daily rollups; computed
    as they were before, from rollups made of the period's scored tasks, they are exactly the same."""
    periods = [WEEK, *(Period.daily(WEEK.first + dt.timedelta(days=n)) for n in range(7)),
               Period.daily(dt.date(2026, 4, 1))]  # a day without tasks
    with warehouse_engine(report_warehouse).connect() as conn:
        for period in periods:
            judge = _judge_costs(conn, period)
            tasks = read_scored_tasks(conn, period.first, period.last)
            from_tasks = _period_totals(daily_rollups(tasks, pd.DataFrame(), entity_types=["provider"]), judge)
            stored = _period_totals(read_rollups(conn, period.first, period.last, entity_types=["provider"]), judge)
            assert stored == from_tasks, period.label
            assert stored[0].n_tasks == len(tasks)


def test_recommendations_carry_the_rankings_numbers(report_warehouse: str, weekly_report) -> None:
    ranking = provider_rankings.c
    with warehouse_engine(report_warehouse).connect() as conn:
        rows = {(r.provider, r.model): r for r in conn.execute(sa.select(provider_rankings).where(
            ranking.as_of_date == LAST, ranking.task_type == "code_review"))}
    mini, claude = rows["openai", "gpt-4.1-mini"], rows["anthropic", "claude-x"]
    by_kind: dict[str, list] = {}
    for rec in weekly_report.recommendations:
        by_kind.setdefault(rec.kind, []).append(rec)
    assert list(by_kind) == ["declining_agent", "cheaper_provider", "prompt_version", "best_provider"]
    (cheaper,) = by_kind["cheaper_provider"]
    assert (cheaper.evidence["candidate"], cheaper.evidence["reference"]) == ("openai/gpt-4.1-mini",
                                                                              "anthropic/claude-x")
    assert cheaper.evidence["quality"] == mini.avg_quality_score
    assert cheaper.evidence["reference_quality"] == claude.avg_quality_score
    assert cheaper.evidence["cost_share"] == pytest.approx(0.4)
    assert cheaper.text == (f"On code_review, openai/gpt-4.1-mini matches anthropic/claude-x's quality "
                            f"({mini.avg_quality_score:.2f} vs {claude.avg_quality_score:.2f}) at 40 % of the cost "
                            "($0.004 vs $0.01 per task) over 30 days (n = 60 and 60).")
    (prompt,) = by_kind["prompt_version"]
    assert [prompt.evidence[k] for k in ("better", "worse", "task_type")] == ["v2", "v1", "bug_fix"]
    assert prompt.evidence["p_value_holm"] < 0.05
    assert [rec.evidence["candidate"] for rec in by_kind["best_provider"]] == ["openai/gpt-4.1", "openai/gpt-4.1-mini"]
    # The self-hosted model is listed, unranked, with its reason; nothing makes its cost a zero.
    vllm = [r for r in weekly_report.provider_rankings if r.provider == "vllm"]
    assert [(r.rank, r.status, r.avg_cost_per_task) for r in vllm] == [(None, "unknown_cost", None)]


def test_an_anomaly_of_the_week_is_listed(weekly_report) -> None:
    cost = [a for a in weekly_report.anomalies if a.metric == "avg_cost_per_task"]
    # The planted $0.20 bug fixes of 2026-03-14.
    assert [(a.date, a.entity_id, a.direction) for a in cost] == [(dt.date(2026, 3, 14), "openai/bug_fix", "worse")]
    assert all(WEEK.first <= a.date <= WEEK.last for a in weekly_report.anomalies)


def test_a_day_without_tasks_says_so(report_warehouse: str) -> None:
    day = Period.daily(dt.date(2026, 4, 1))
    with warehouse_engine(report_warehouse).connect() as conn:
        report = gather(conn, day)
    assert report.totals.n_tasks == 0 and report.totals.success_rate is None and report.totals.total_cost_usd is None
    assert report.totals.evaluation_cost_usd is None and report.totals.judge_calls == 0
    assert (report.leaderboard, report.declining, report.recommendations, report.score_history) == ((), (), (), ())
    text = markdown(report)
    assert "No tasks were completed on 2026-04-01." in text
    assert "No leaderboard for 2026-04-01" in text and "No recommendation as of 2026-04-01" in text


def test_an_empty_warehouse_gives_an_empty_report(warehouse_url: str) -> None:
    with warehouse_engine(warehouse_url).connect() as conn:
        report = gather(conn, WEEK)
    assert report.totals.n_tasks == 0 and report.totals.judge_calls == 0
    assert all(value == () for name, value in vars(report).items() if name not in ("period", "window_days", "totals"))
    assert "No tasks were completed in week 2026-W11." in markdown(report)


def _alert(day: str, rule: str, entity_id: str, status: str, started_on: str, resolved_on: str | None = None,
           **fields) -> dict:
    return {"as_of_date": dt.date.fromisoformat(day), "rule": rule, "entity_type": "agent", "entity_id": entity_id,
            "status": status, "started_on": dt.date.fromisoformat(started_on), "last_held_on":
            dt.date.fromisoformat(resolved_on or day) - dt.timedelta(days=1 if resolved_on else 0),
            "resolved_on": dt.date.fromisoformat(resolved_on) if resolved_on else None, "resolution_final": False,
            "escalated": False, "silenced_by": None, "severity": "warning", "kind": "threshold",
            "metric": "success_rate", "window_days": 7, "observed": 0.5, "threshold": 0.8, "baseline": None,
            "n_tasks": 20, "evidence": None, **fields}


def test_alerts_firing_in_the_week_and_resolved_in_it(warehouse_url: str) -> None:
    rows = [
        # Still firing at the end of the week: listed once, as of its latest evaluation.
        *[_alert(f"2026-03-{d:02d}", "low_success_rate", "agent-1", "firing", "2026-03-08", observed=0.4 + d / 100)
          for d in range(8, 16)],
        # Fired on Tuesday, resolved from Thursday: resolved in the week.
        _alert("2026-03-10", "sla_breaches", "agent-2", "firing", "2026-03-10", severity="critical"),
        _alert("2026-03-12", "sla_breaches", "agent-2", "resolved", "2026-03-10", "2026-03-12", severity="critical"),
        # Resolved the week before (still within its resolve-after days on Monday): not of this week.
        _alert("2026-03-09", "low_success_rate", "agent-3", "resolved", "2026-03-01", "2026-03-08"),
        # Firing, but silenced.
        _alert("2026-03-15", "slow_responses", "agent-4", "firing", "2026-03-15", silenced_by=3),
        # Next week's: not listed.
        _alert("2026-03-16", "low_success_rate", "agent-5", "firing", "2026-03-16"),
    ]
    engine = warehouse_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(alerts.insert(), rows)
    with engine.connect() as conn:
        report = gather(conn, WEEK)
    firing = [(a.rule, a.entity_id, a.as_of_date, a.silenced_by) for a in report.alerts_firing]
    assert firing == [("low_success_rate", "agent-1", dt.date(2026, 3, 15), None),
                      ("slow_responses", "agent-4", dt.date(2026, 3, 15), 3)]
    assert report.alerts_firing[0].observed == pytest.approx(0.55)
    assert [(a.rule, a.entity_id, a.severity, a.resolved_on) for a in report.alerts_resolved] == [
        ("sla_breaches", "agent-2", "critical", dt.date(2026, 3, 12))]


@pytest.mark.postgres
def test_the_same_report_on_postgresql(postgres_url: str, tmp_path: Path, weekly_report) -> None:
    build_warehouse(postgres_url, tmp_path)
    with warehouse_engine(postgres_url).connect() as conn:
        report = gather(conn, WEEK)
    assert markdown(report) == markdown(weekly_report)
    assert dataclasses.replace(report, totals=weekly_report.totals) == weekly_report
    assert report.totals.total_cost_usd == pytest.approx(weekly_report.totals.total_cost_usd)
