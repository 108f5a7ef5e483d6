"""Benchmark: the time to materialize one new day of aggregates, with a long and a short history.

    python -m perf_pipeline_tests.benchmarks.aggregate_scaling --history-days 365 120 30 --agents 1100 \\
        --tasks-per-day 6600
    python -m perf_pipeline_tests.benchmarks.aggregate_scaling --history-days 365 --agents 1100 \\
        --tasks-per-day 6600 --warehouse-url postgresql+psycopg://USER@HOST:5432/EMPTY_DATABASE

For each history length, a fresh SQLite warehouse gets synthetic scored tasks: the daily rollups,
daily metrics and node rollups of every history day, built with the pipeline's own rollup code and
written as the assets write them (``replace_partition``, day blocks included; ingesting and scoring
1.8 million tasks would measure those steps, not this one), plus the task, step and score rows of
the last 30 days (what prompt-version comparisons read). Then the
new day's tasks are written and every aggregate asset is materialized for that one partition in one
Dagster run (as the automation requests a new day's aggregates), timed as a whole and step by step,
in rounds that take each history in turn (``time_new_days``: the machine's drift then weighs on every
history alike). Each timed run finds the day new: what the run before wrote of it is deleted first,
untimed. A run of the day again (late data: its rows replaced) is timed too, and reported apart.
With ``--warehouse-url`` (one history length), the warehouse is that database instead of a SQLite
file: empty, it gets the history (then, on PostgreSQL, ``VACUUM ANALYZE``, as autovacuum would
have done by the next day); holding this history already (built by the same options), it is reused.
Windows read rollups, never tasks, so past the longest window (90 days) the new day's cost should
follow the day's work, not the history: the report gives the ratio of each total to the shortest
history's (a history shorter than 90 days has fewer points in the 90-day windows, and so costs less).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from dagster import DagsterInstance, materialize

from perf_pipeline import settings
from perf_pipeline.aggregates.assets import AGGREGATE_ASSETS
from perf_pipeline.aggregates.chunk_steps import date_column
from perf_pipeline.aggregates.rollups import WINDOWED_ENTITY_TYPES, daily_rollups
from perf_pipeline.aggregates.summaries import node_rollups
from perf_pipeline.aggregates.trends import daily_metric_values
from perf_pipeline.cli import ensure_dagster_home
from perf_pipeline.resources import AggregatesResource, LandingZoneResource, WarehouseResource
from perf_pipeline.scoring.store import prompt_quality_rows
from perf_pipeline.settings import redact_url
from perf_pipeline.warehouse.db import insert_frame, replace_partition, warehouse_engine
from perf_pipeline.warehouse.schema import (
    daily_metrics,
    day_blocks,
    metadata,
    prompt_quality,
    task_events,
    task_scores,
    task_steps,
)
from perf_pipeline.warehouse.schema import daily_rollups as rollups_table
from perf_pipeline.warehouse.schema import node_rollups as node_rollups_table

NEW_DAY = dt.date(2026, 6, 30)
RAW_DAYS = 30  # days of task rows kept besides the rollups (prompt-version comparisons read them)
PROVIDERS = {"openai": ["gpt-4.1", "gpt-4.1-mini", "o3"], "anthropic": ["claude-sonnet-4", "claude-haiku"],
             "google": ["gemini-2.5-pro", "gemini-2.5-flash"], "vllm": ["meta/llama-3.1-70b"]}
TASK_TYPES = ["bug_fix", "feature", "code_review", "research", "summarization", "data_analysis", "test_writing",
              "refactor"]
NODES = ["plan", "retrieve", "act", "verify"]
# The tables the aggregate assets write: each asset's table is named as its key.
AGGREGATE_TABLES = [metadata.tables[key.path[-1]] for asset in AGGREGATE_ASSETS for key in asset.keys]


class Population:
    """Agents with a home department, project, provider and model; tasks drawn around them."""

    def __init__(self, agents: int, seed: int = 7):
        self.rng = np.random.default_rng(seed)
        models = [(p, m) for p, ms in PROVIDERS.items() for m in ms]
        self.agents = [f"agent-{i:03d}" for i in range(agents)]
        self.department = {a: f"dept-{i % 8}" for i, a in enumerate(self.agents)}
        self.project = {a: f"proj-{i % 20:02d}" for i, a in enumerate(self.agents)}
        self.model = {a: models[i % len(models)] for i, a in enumerate(self.agents)}
        self.skill = dict(zip(self.agents, self.rng.uniform(0.4, 0.85, agents), strict=True))

    def day(self, day: dt.date, tasks: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(scored tasks, steps) of one day, with the columns the aggregates read."""
        rng = self.rng
        agent = rng.choice(self.agents, tasks)
        provider = np.array([self.model[a][0] for a in agent], dtype=object)
        model = np.array([self.model[a][1] for a in agent], dtype=object)
        elsewhere = rng.random(tasks) < 0.15  # some work on another project than the agent's own
        project = np.where(elsewhere, rng.choice(sorted(set(self.project.values())), tasks),
                           [self.project[a] for a in agent])
        status = rng.choice(["success", "failed", "timeout", "cancelled"], tasks, p=[0.85, 0.1, 0.03, 0.02])
        quality = np.clip(np.array([self.skill[a] for a in agent]) + rng.normal(0, 0.1, tasks), 0, 1)
        start = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.integers(0, 80_000, tasks), unit="s")
        seconds = rng.lognormal(5, 1, tasks)
        tokens = rng.integers(200, 20_000, tasks).astype("float64")
        tokens[rng.random(tasks) < 0.05] = np.nan
        frame = pd.DataFrame({
            "task_id": [f"{day}-{i:05d}" for i in range(tasks)], "agent_id": agent,
            "department": [self.department[a] for a in agent], "project_id": project, "provider": provider,
            "model": model, "task_type": rng.choice(TASK_TYPES, tasks),
            "prompt_version": rng.choice(["v1", "v2", "v3"], tasks), "partition_date": day, "assigned_at": start,
            "completed_at": start + pd.to_timedelta(seconds, unit="s"), "status": status,
            "completion_time_s": seconds, "total_tokens": tokens, "tool_invocations": rng.integers(0, 12, tasks),
            "revision_count": rng.integers(0, 4, tasks), "sla_seconds": 600.0,
            "response_time_ms": rng.lognormal(7.5, 0.8, tasks), "quality_score": quality,
            "overall_score": np.clip(quality * 0.8 + rng.uniform(0, 0.2, tasks), 0, 1),
            "efficiency_score": rng.uniform(0, 1, tasks), "cost_usd": tokens * 2e-6,
            "user_score": np.where(rng.random(tasks) < 0.3, rng.integers(0, 5, tasks) / 4, np.nan),
            "feedback_type": rng.choice(np.array([None, "correction", "enhancement", "approval", "innovation"],
                                                 dtype=object), tasks, p=[0.6, 0.15, 0.1, 0.1, 0.05])})
        frame["user_rating_count"] = frame["user_score"].notna().astype(int)
        steps = pd.DataFrame({
            "task_id": np.repeat(frame["task_id"].to_numpy(), 2), "step_index": np.tile([0, 1], tasks),
            "partition_date": day, "agent_id": np.repeat(agent, 2), "node": rng.choice(NODES, tasks * 2),
            "duration_s": rng.lognormal(2, 1, tasks * 2), "tokens": rng.integers(50, 5000, tasks * 2),
            "status": rng.choice(["success", "failed"], tasks * 2, p=[0.93, 0.07])})
        return frame, steps


def write_raw(conn, tasks: pd.DataFrame, steps: pd.DataFrame) -> None:
    """Task, step and score rows of a day (the columns the aggregates read, and the required ones),
    and the day's prompt_quality rows with their day block, as scoring writes them."""
    events = tasks[[c.name for c in task_events.columns if c.name in tasks]].assign(
        step_count=2, task_type_source="reported", content_hash=tasks["task_id"], source_file="benchmark",
        line_number=np.arange(len(tasks)))
    scores = tasks[[c.name for c in task_scores.columns if c.name in tasks]].assign(
        cost_source="reported", judge_status="skipped_no_key", peer_review_count=0, feedback_count=0,
        components_used=1, weights_used=[{"quality": 1.0}] * len(tasks))
    steps = steps.assign(started_at=None, completed_at=None)
    for table, frame in ((task_events, events), (task_scores, scores), (task_steps, steps)):
        insert_frame(conn, table, frame)
    day = tasks["partition_date"].iloc[0]
    replace_partition(conn, prompt_quality, day, day, prompt_quality_rows(tasks, scores), date_column="date")


def build_history(url: str, days: int, agents: int, tasks_per_day: int) -> float:
    """Warehouse with ``days`` days of history before NEW_DAY and NEW_DAY's raw tasks; seconds taken."""
    started = time.perf_counter()
    population = Population(agents)
    engine = warehouse_engine(url)
    empty_collaboration = pd.DataFrame(columns=["agent_id", "date", "collaboration_score"])
    for k in range(days, -1, -1):
        day = NEW_DAY - dt.timedelta(days=k)
        tasks, steps = population.day(day, tasks_per_day)
        with engine.begin() as conn:
            if k < RAW_DAYS or k == 0:
                write_raw(conn, tasks, steps)
            if k > 0:  # the new day's rollups are what the benchmark materializes
                rollups = daily_rollups(tasks, empty_collaboration)
                windowed = rollups[rollups["entity_type"].isin(WINDOWED_ENTITY_TYPES)]
                for table, frame in ((rollups_table, rollups), (daily_metrics, daily_metric_values(windowed)),
                                     (node_rollups_table, node_rollups(steps))):
                    replace_partition(conn, table, day, day, frame, date_column="date")  # with its day blocks
        if k % 30 == 0:
            print(f"  history: {days - k}/{days} days ({time.perf_counter() - started:.0f} s)", flush=True)
    if engine.dialect.name == "postgresql":
        # What autovacuum (on by default) does to a server's tables after a day's writes: statistics,
        # and the visibility map that lets the blocks' row counts be read from the keys' index alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


def time_new_days(urls: Mapping[int, str], folder: Path, repeats: int,
                  again: bool = False) -> dict[int, tuple[float, dict[str, float]]]:
    """Per history (``urls``: its days and its warehouse), the median seconds of one run materializing
    every aggregate asset for NEW_DAY, as the automation requests a new day's aggregates, and of each
    of its steps (Dagster's step statistics). Each timed run finds the day new (``forget_day``,
    untimed, before it); with ``again``, each replaces the day's rows that the run before wrote, as a
    run after late data does.

    The runs go in rounds, each round one run of every history in turn, so that the machine's speed,
    which moves from one minute to the next, weighs on every history alike: timed one history after
    the other, the same warehouses gave 1.06x and, an hour later, 1.31x between 365 and 30 days of
    history. One untimed round comes first (the process's first run loads what later runs find
    loaded, and each warehouse's first run its pages). Each history's runs have their own instance,
    the project's local one (its dagster.yaml, the event log in SQLite) in a temporary DAGSTER_HOME,
    as ``perf-pipeline run`` makes it."""
    resources = {days: {"warehouse": WarehouseResource(url=url), "landing": LandingZoneResource(path=str(folder)),
                        "aggregates": AggregatesResource()} for days, url in urls.items()}
    runs: dict[int, list[float]] = {days: [] for days in urls}
    steps: dict[int, dict[str, list[float]]] = {days: {} for days in urls}
    with contextlib.ExitStack() as stack:
        instances = {days: stack.enter_context(_local_instance(folder)) for days in urls}
        for repeat in range(repeats + 1):
            for days, url in urls.items():
                if not again:
                    forget_day(url, NEW_DAY)
                started = time.perf_counter()
                result = materialize(AGGREGATE_ASSETS, instance=instances[days], resources=resources[days],
                                     partition_key=NEW_DAY.isoformat())
                seconds = time.perf_counter() - started
                assert result.success
                if repeat == 0:
                    continue
                runs[days].append(seconds)
                for stat in instances[days].get_run_step_stats(result.run_id):
                    steps[days].setdefault(stat.step_key, []).append(stat.end_time - stat.start_time)
    return {days: (statistics.median(runs[days]),
                   {name: statistics.median(values) for name, values in steps[days].items()}) for days in urls}


@contextlib.contextmanager
def _local_instance(folder: Path) -> Iterator[DagsterInstance]:
    """The project's local Dagster instance in a temporary DAGSTER_HOME under ``folder``."""
    with tempfile.TemporaryDirectory(dir=folder) as home:
        with _dagster_home(home):
            instance = DagsterInstance.get()
        with instance:
            yield instance


def history_days_held(url: str) -> int | None:
    """The days of history ``url`` holds (rollup days before NEW_DAY, ending the day before it, and
    NEW_DAY's tasks; NEW_DAY's aggregates are what the timed runs write), 0 for an empty warehouse,
    None for anything else (refused)."""
    with warehouse_engine(url).connect() as conn:
        days, last = conn.execute(sa.select(sa.func.count(sa.distinct(rollups_table.c.date)),
                                            sa.func.max(rollups_table.c.date))
                                  .where(rollups_table.c.date < NEW_DAY)).one()
        tasks = conn.execute(sa.select(sa.func.count()).select_from(task_events)
                             .where(task_events.c.partition_date == NEW_DAY)).scalar()
    if not days and not tasks:
        return 0
    last = last if isinstance(last, dt.date) or last is None else dt.date.fromisoformat(str(last)[:10])
    return days if last == NEW_DAY - dt.timedelta(days=1) and tasks else None


def forget_day(url: str, day: dt.date) -> None:
    """Delete what the aggregate assets wrote of ``day`` (their tables' rows and day blocks), so that a
    run materializes it as a new day."""
    with warehouse_engine(url).begin() as conn:
        for table in AGGREGATE_TABLES:
            conn.execute(table.delete().where(table.c[date_column(table)] == day))
        conn.execute(day_blocks.delete().where(day_blocks.c.table_name.in_([t.name for t in AGGREGATE_TABLES]),
                                               day_blocks.c.date == day))


@contextlib.contextmanager
def _dagster_home(home: str) -> Iterator[None]:
    """DAGSTER_HOME set to ``home`` holding the project's dagster.yaml, for the ``with`` block."""
    before = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = home
    try:
        ensure_dagster_home()
        yield
    finally:
        if before is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history-days", type=int, nargs="+", default=[365, 30])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--tasks-per-day", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3, help="materializations of the new day (median kept)")
    parser.add_argument("--folder", type=Path, help="keep the warehouses here, and reuse those built before "
                                                    "(same options); default: a temporary folder")
    parser.add_argument("--warehouse-url", help="the warehouse of the one history length (such as an empty "
                                                "PostgreSQL database), instead of a SQLite file")
    args = parser.parse_args()
    if args.warehouse_url and len(args.history_days) != 1:
        parser.error("--warehouse-url holds one history: give one --history-days")
    settings.tune_garbage_collection()  # as in the processes that load the code location and run the steps
    totals, urls = {}, {}
    with tempfile.TemporaryDirectory(prefix="perf-aggregates-") as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for days in args.history_days:
            path = folder / f"history-{days}-{args.agents}-{args.tasks_per_day}.db"
            url = args.warehouse_url or f"sqlite:///{path}"
            print(f"{days} days of history, {args.agents} agents, {args.tasks_per_day:,} tasks a day, "
                  f"{sa.engine.make_url(url).get_backend_name()}:", flush=True)
            held = history_days_held(url) if args.warehouse_url else (days if path.exists() else 0)
            if held == days:
                print(f"  reusing {redact_url(url)}")
            elif held == 0:
                seconds = build_history(url, days, args.agents, args.tasks_per_day)
                print(f"  history built in {seconds:.0f} s")
            else:
                parser.error(f"--warehouse-url {redact_url(url)} holds something else than {days} days of this "
                             "history: give an empty database")
            urls[days] = url
        print(f"timing {args.repeats} rounds of runs, each round one run with each history in turn", flush=True)
        new_days = time_new_days(urls, folder, args.repeats)
        late_days = time_new_days(urls, folder, args.repeats, again=True)
    for days, (total, steps) in new_days.items():
        totals[days] = total
        print(f"{days} days of history: one new day, one run of every aggregate, median of {args.repeats}:")
        for name, seconds in steps.items():
            print(f"    {name:32s} {seconds:6.2f} s")
        print(f"    {'total (the run)':32s} {total:6.2f} s")
        print(f"  the same day again, its rows replaced (late data), median of {args.repeats}: "
              f"{late_days[days][0]:.2f} s", flush=True)
    shortest = min(totals)
    for days, seconds in sorted(totals.items(), reverse=True):
        if days != shortest:
            print(f"one new day with {days} days of history / with {shortest} days: "
                  f"{seconds / totals[shortest]:.2f}x ({seconds:.2f} s / {totals[shortest]:.2f} s)")

if __name__ == "__main__":
    main()
