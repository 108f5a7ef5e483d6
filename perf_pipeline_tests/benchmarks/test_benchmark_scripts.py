"""The benchmark scripts the README documents, run as documented (``python -m ...``) at a tiny size:
each finishes and reports its figures."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.slow

# The README runs them from the checkout's root, where perf_pipeline_tests is importable.
ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str, home: Path) -> str:
    env = {**os.environ, "PERF_HOME": str(home / "home")}
    for name in ("OPENAI_API_KEY", "SLACK_BOT_TOKEN", "PERF_SLACK_CHANNEL", "PERF_WEBHOOK_URLS"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", f"perf_pipeline_tests.benchmarks.{module}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_aggregate_scaling_times_each_aggregate_of_a_new_day(tmp_path: Path) -> None:
    out = run_module("aggregate_scaling", "--history-days", "4", "2", "--agents", "6", "--tasks-per-day", "30",
                     "--repeats", "1", "--folder", str(tmp_path / "histories"), home=tmp_path)
    totals = re.findall(r"^ {4}total \(the run\) +(\d+\.\d\d) s$", out, re.MULTILINE)
    assert len(totals) == 2 and all(float(total) > 0 for total in totals), out
    steps = re.findall(r"^ {4}(\w+) +\d+\.\d\d s$", out, re.MULTILINE)
    assert {"daily_rollups", "window_stats", "trends", "node_performance"} <= set(steps), out
    assert re.search(r"one new day with 4 days of history / with 2 days: \d+\.\d\dx", out), out
    assert len(re.findall(r"^  the same day again, its rows replaced \(late data\), median of 1: \d+\.\d\d s$",
                          out, re.MULTILINE)) == 2, out
    assert len(list((tmp_path / "histories").glob("history-*.db"))) == 2  # kept for a re-run to reuse


@pytest.mark.postgres
def test_aggregate_scaling_builds_and_reuses_a_history_in_the_warehouse_it_is_given(
        tmp_path: Path, postgres_url: str) -> None:
    """``--warehouse-url``: an empty database gets the history, then a run with the same options reuses
    it; a history of another length is refused, as is a URL with several history lengths."""
    args = ["--agents", "4", "--tasks-per-day", "20", "--repeats", "1", "--warehouse-url", postgres_url]
    built = run_module("aggregate_scaling", "--history-days", "3", *args, home=tmp_path)
    assert "3 days of history, 4 agents, 20 tasks a day, postgresql:" in built
    assert re.search(r"history built in \d+ s", built), built
    assert re.search(r"^ {4}total \(the run\) +\d+\.\d\d s$", built, re.MULTILINE), built
    reused = run_module("aggregate_scaling", "--history-days", "3", *args, home=tmp_path)
    assert "  reusing postgresql" in reused and "history built" not in reused, reused
    for history_days, expected in ((["2"], "holds something else than 2 days of this history"),
                                   (["3", "2"], "--warehouse-url holds one history: give one --history-days")):
        done = subprocess.run([sys.executable, "-m", "perf_pipeline_tests.benchmarks.aggregate_scaling",
                               "--history-days", *history_days, *args], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PERF_HOME": str(tmp_path / "home")}, timeout=600)
        assert done.returncode == 2 and expected in done.stderr, done.stdout + done.stderr


def test_the_histories_are_timed_in_rounds_each_taking_every_history_in_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's speed moves from minute to minute: each round times one run with every history,
    one untimed round first, so that a drift weighs on every history alike."""
    from perf_pipeline_tests.benchmarks import aggregate_scaling as bench

    urls = {days: f"sqlite:///{tmp_path / f'history-{days}.db'}" for days in (3, 2)}
    for days, url in urls.items():
        bench.build_history(url, days, agents=4, tasks_per_day=20)
    runs = []
    materialize = bench.materialize

    def recorded(*args: object, resources: dict[str, object], **kwargs: object) -> object:
        runs.append(resources["warehouse"].url)
        return materialize(*args, resources=resources, **kwargs)

    monkeypatch.setattr(bench, "materialize", recorded)
    timed = bench.time_new_days(urls, tmp_path, repeats=2)
    assert runs == [urls[3], urls[2]] * 3
    assert set(timed) == {3, 2}
    assert all(total > 0 and {"trends", "window_stats"} <= set(steps) for total, steps in timed.values())


def test_a_forgotten_day_is_a_new_day_to_the_aggregates(tmp_path: Path) -> None:
    """What the timed runs start from: every table's rows and day blocks of the day as before the
    aggregates first ran (the day's tasks and scores kept), and the days before untouched."""
    from dagster import materialize

    from perf_pipeline.aggregates.assets import AGGREGATE_ASSETS
    from perf_pipeline.resources import AggregatesResource, LandingZoneResource, WarehouseResource
    from perf_pipeline.warehouse.db import warehouse_engine
    from perf_pipeline.warehouse.schema import day_blocks, metadata
    from perf_pipeline_tests.benchmarks.aggregate_scaling import NEW_DAY, build_history, forget_day

    url = f"sqlite:///{tmp_path / 'history.db'}"
    build_history(url, 3, agents=4, tasks_per_day=20)
    dated = {table: next(table.c[name] for name in ("partition_date", "date", "as_of_date") if name in table.c)
             for table in metadata.sorted_tables
             if table is not day_blocks and {"partition_date", "date", "as_of_date"} & set(table.c.keys())}

    def rows_of(day: dt.date) -> dict[str, int]:
        """Every dated table's rows of ``day``, and its day blocks per table."""
        with warehouse_engine(url).connect() as conn:
            counts = {table.name: conn.execute(sa.select(sa.func.count()).select_from(table).where(column == day))
                      .scalar_one() for table, column in dated.items()}
            blocks = conn.execute(sa.select(day_blocks.c.table_name, sa.func.count()).where(day_blocks.c.date == day)
                                  .group_by(day_blocks.c.table_name)).all()
        return {**counts, **{f"blocks of {name}": n for name, n in blocks}}

    new, earlier = rows_of(NEW_DAY), rows_of(NEW_DAY - dt.timedelta(days=1))
    assert new["task_events"] and new["task_scores"] and new["blocks of prompt_quality"]
    resources = {"warehouse": WarehouseResource(url=url), "landing": LandingZoneResource(path=str(tmp_path)),
                 "aggregates": AggregatesResource()}
    assert materialize(AGGREGATE_ASSETS, resources=resources, partition_key=NEW_DAY.isoformat()).success
    built = rows_of(NEW_DAY)
    written = {name for name, n in built.items() if n != new.get(name, 0)}
    assert {"daily_rollups", "window_stats", "trends", "node_performance", "blocks of daily_rollups"} <= written
    forget_day(url, NEW_DAY)
    assert rows_of(NEW_DAY) == new
    assert rows_of(NEW_DAY - dt.timedelta(days=1)) == earlier


def test_ingest_stages_reports_the_time_per_line_of_each_stage(tmp_path: Path) -> None:
    out = run_module("ingest_stages", "--lines", "400", "--folder", str(tmp_path / "logs"), home=tmp_path)
    assert re.search(r"one unit of \d+ files, [\d,]+ lines, screened in this process", out), out
    assert len(re.findall(r"us per line$", out, re.MULTILINE)) >= 3, out


def test_judge_throughput_reports_tasks_per_second_and_the_cached_re_run(tmp_path: Path) -> None:
    out = run_module("judge_throughput", "--tasks", "40", "--concurrency", "8", "--latency-ms", "20", home=tmp_path)
    assert re.search(r"^judged 40 of 40 tasks in [\d.]+s with 8 in flight", out, re.MULTILINE), out
    assert re.search(r"^throughput: [\d,.]+ tasks/s \(ceiling 400/s\)", out, re.MULTILINE), out
    assert "judgements stored: 40;" in out and re.search(r"re-run: 40 cached, 0 calls", out), out


def test_backfill_compares_one_run_over_the_range_with_one_run_per_day(tmp_path: Path) -> None:
    out = run_module("backfill", "--days", "2", "--tasks-per-day", "12", "--agents", "3", home=tmp_path)
    assert "tables after both ways, settled:" in out, out
    assert re.search(r"^task_events +[\d,]+ rows +equal$", out.replace("    task_events", "task_events"),
                     re.MULTILINE), out
    assert re.search(r"^per-partition / single +[\d.]+x$", out, re.MULTILINE), out
    assert re.search(r"^equal +yes$", out, re.MULTILINE), out
