"""Pipeline benchmark: the whole pipeline on a fleet's logs, stage by stage, against a DuckDB SQL reference.

    perf-pipeline benchmark pipeline --agents 1100 --days 30 [--tasks-per-day 6600] [--out results.json]
        [--warehouse-url postgresql+psycopg://USER@HOST:5432/EMPTY_DATABASE]

Synthetic logs (the project's generator, a fixed seed) are written into a temporary folder. A fresh
process then runs the pipeline as ``perf-pipeline run`` does (the judge off, a SQLite warehouse, or
the empty warehouse ``--warehouse-url`` names, its own DAGSTER_HOME in that folder, the daily
partitions starting with the first generated day):
``Launcher.run()`` ticks the landing sensor (the ingest) and follows the automation conditions
until nothing more is requested, as the daemon would. Each run
it launches is timed and counted in its stage (the ingest, or the asset groups of its assets:
events, scoring, aggregates, alerts, reports); "automation and sensors" is the rest of the time
(evaluating the conditions, ticking the sensors). The process starts with one ``Launcher.run()`` on
an empty landing folder, so its automation cursor predates the ingest, as the daemon's would.

The reference computes, in DuckDB SQL over the same JSON Lines files (task events only), what the
windows and trends compute for agents: as of every day, per agent, 7/30/90-day windows (tasks,
success rate, total and average cost, average completion time, average tokens) and Theil-Sen
slopes (the median of the pairwise slopes of the window's daily values) of the daily success rate
and cost per task. It drops what the ingest quarantines among task lines (broken JSON, missing or
mistyped fields, unknown status, timestamps without offset, completion before assignment, ratings
out of range, negative tokens, and every copy of a task id sent with different content) and keeps
one of identical copies. Its figures are compared with the pipeline's ``window_stats`` of the
agents on the last day: task counts and success rates must agree; the cost differs where a task
reported none (the pipeline prices its tokens, the reference leaves it unknown).

Reported (printed, and written as JSON): each stage's seconds, the pipeline's end to end, the
reference's (the median of ``REFERENCE_RUNS`` runs, each listed), their ratio, tasks per second, and
the peak memory: of the process tree while the pipeline ran (PSS sampled from /proc) and the
largest RSS of the pipeline process and of its workers.
``--no-reference`` times the pipeline alone: over a year of a fleet's logs the reference's trends
pair every two days of every agent's window for every day (billions of rows, more than this
machine's disk holds for DuckDB to spill them).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa

from perf_pipeline.benchmark import SAMPLE_SECONDS, _MemorySampler
from perf_pipeline.settings import redact_url
from perf_pipeline.synthetic.generator import generate_logs
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import staged_events, trends, window_stats

SEED = 7
# The fleet of the issue: 1,100 agents doing about 6 tasks a day each.
TASKS_PER_DAY = 6_600
WINDOWS = (7, 30, 90)
# Delivery off: a benchmark must not post to the user's Slack or webhooks, nor call the judge.
UNSET = ("OPENAI_API_KEY", "SLACK_BOT_TOKEN", "PERF_SLACK_CHANNEL", "PERF_WEBHOOK_URLS")


def _max_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def stage_of(timing: Any, graph: Any) -> str:
    """A run's stage: the ingest, or the asset groups of the assets it materialized (events, scoring...)."""
    if timing.job == "ingest_job":
        return "ingest"
    groups = sorted({graph.get(key).group_name for key in timing.keys}) if timing.keys else [timing.job]
    return " + ".join(groups)


def _run_pipeline(work: Path, generated: Path, warehouse: str) -> dict[str, Any]:
    """In a fresh process: the pipeline over the files of ``generated`` into ``warehouse``, timed
    stage by stage."""
    for name in UNSET:
        os.environ.pop(name, None)
    os.environ.update(PERF_HOME=str(work), PERF_WAREHOUSE_URL=warehouse,
                      PERF_LANDING_DIR=str(work / "landing"), PERF_REPORTS_DIR=str(work / "reports"),
                      DAGSTER_HOME=str(work / "dagster"))
    (work / "landing").mkdir(parents=True, exist_ok=True)
    from dagster import DagsterInstance

    from perf_pipeline.cli import ensure_dagster_home
    from perf_pipeline.definitions import build_definitions
    from perf_pipeline.launcher import Launched, Launcher

    ensure_dagster_home()
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    seconds: dict[str, float] = {}
    with DagsterInstance.get() as instance:
        launcher = Launcher(defs, instance, echo=lambda _: None)
        launcher.run()  # on the empty landing folder: the automation cursor starts before the ingest
        for path in sorted(generated.iterdir()):
            path.rename(work / "landing" / path.name)
        launcher.launched = Launched()
        started = time.perf_counter()
        launched = launcher.run()  # what `perf-pipeline run` does: the sensors, then the automation conditions
        total = time.perf_counter() - started
        for timing in launched.runs:
            stage = stage_of(timing, graph)
            seconds[stage] = seconds.get(stage, 0.0) + timing.seconds
        seconds["automation and sensors"] = total - sum(timing.seconds for timing in launched.runs)
        with warehouse_engine(os.environ["PERF_WAREHOUSE_URL"]).connect() as conn:
            first, last, tasks = conn.execute(sa.select(
                sa.func.min(staged_events.c.partition_date), sa.func.max(staged_events.c.partition_date),
                sa.func.count().filter(staged_events.c.event_type == "task"))).one()
        first, last = (day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])
                       for day in (first, last))
    return {"stages": seconds, "seconds": total, "tasks": tasks, "first_day": first.isoformat(),
            "last_day": last.isoformat(), "runs": len(launched.runs),
            "run_list": [f"{timing.job} {', '.join(k.to_user_string() for k in timing.keys) or 'all assets'} "
                         f"{timing.start}..{timing.end}: {timing.seconds:.1f} s" for timing in launched.runs],
            "max_rss_mib": _max_rss_mib(resource.RUSAGE_SELF),
            "workers_max_rss_mib": _max_rss_mib(resource.RUSAGE_CHILDREN)}


# Task lines as the ingest would stage them; the rest is what it quarantines (or, for identical
# copies, skips). Timestamps must carry an offset; tokens must be whole numbers, not negative.
TASKS_SQL = """
CREATE OR REPLACE TEMP TABLE lines AS
SELECT json AS line, json ->> '$.task_id' AS task_id
FROM read_json_objects($files, format = 'newline_delimited', ignore_errors = true)
WHERE json ->> '$.event_type' = 'task';

CREATE OR REPLACE TEMP TABLE tasks AS
WITH single AS (  -- a task id sent with two contents is quarantined, every copy
    SELECT task_id, any_value(line) AS line FROM lines GROUP BY task_id HAVING count(DISTINCT line) = 1
), typed AS (
    SELECT line ->> '$.agent_id' AS agent_id, line ->> '$.status' AS status,
           line ->> '$.assigned_at' AS assigned_text, line ->> '$.completed_at' AS completed_text,
           try_cast(line ->> '$.assigned_at' AS TIMESTAMPTZ) AS assigned_at,
           try_cast(line ->> '$.completed_at' AS TIMESTAMPTZ) AS completed_at,
           json_type(line, '$.input_tokens') AS input_type, json_type(line, '$.output_tokens') AS output_type,
           try_cast(line ->> '$.input_tokens' AS BIGINT) AS input_tokens,
           try_cast(line ->> '$.output_tokens' AS BIGINT) AS output_tokens,
           try_cast(line ->> '$.cost_usd' AS DOUBLE) AS cost_usd,
           try_cast(line ->> '$.user_rating' AS DOUBLE) AS user_rating
    FROM single
)
SELECT agent_id, status, cost_usd,
       CAST(timezone('UTC', completed_at) AS DATE) AS day,
       (epoch_us(completed_at) - epoch_us(assigned_at)) / 1e6 AS completion_time_s,
       input_tokens + output_tokens AS total_tokens
FROM typed
WHERE agent_id IS NOT NULL
  AND status IN ('success', 'failed', 'timeout', 'cancelled')
  AND regexp_matches(assigned_text, '(Z|[+-][0-9]{2}:?[0-9]{2})$')
  AND regexp_matches(completed_text, '(Z|[+-][0-9]{2}:?[0-9]{2})$')
  AND completed_at >= assigned_at
  AND coalesce(input_type, 'UBIGINT') IN ('UBIGINT', 'BIGINT', 'NULL')
  AND coalesce(output_type, 'UBIGINT') IN ('UBIGINT', 'BIGINT', 'NULL')
  AND coalesce(input_tokens, 0) >= 0 AND coalesce(output_tokens, 0) >= 0
  AND (user_rating IS NULL OR user_rating BETWEEN 1 AND 5);
"""

# Per agent and day, the sums a window adds up (averages skip unknown values); then, as of every day
# D, the windows (D - W, D]; and the Theil-Sen slopes: the median of (y_j - y_i) / (j - i) over the
# pairs of days i < j of the window that have a value.
WINDOWS_SQL = """
CREATE OR REPLACE TEMP TABLE daily AS
SELECT agent_id, day, count(*) AS n_tasks, count(*) FILTER (WHERE status = 'success') AS completed,
       sum(cost_usd) AS cost, count(cost_usd) AS n_cost,
       sum(completion_time_s) AS completion_time, count(completion_time_s) AS n_completion_time,
       sum(total_tokens) AS tokens, count(total_tokens) AS n_tokens,
       completed / n_tasks AS success_rate, cost / nullif(n_cost, 0) AS cost_per_task
FROM tasks GROUP BY agent_id, day;

CREATE OR REPLACE TEMP TABLE as_of AS
SELECT CAST(d AS DATE) AS as_of_date, w AS window_days
FROM range((SELECT min(day) FROM daily), (SELECT max(day) FROM daily) + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d),
     unnest($windows) u(w);

CREATE OR REPLACE TEMP TABLE reference_windows AS
SELECT agent_id, as_of_date, window_days, sum(n_tasks) AS n_tasks, sum(completed) AS tasks_completed,
       sum(completed) / sum(n_tasks) AS success_rate,
       sum(cost) AS total_cost_usd, sum(cost) / nullif(sum(n_cost), 0) AS avg_cost_per_task,
       sum(completion_time) / nullif(sum(n_completion_time), 0) AS avg_completion_time_s,
       sum(tokens) / nullif(sum(n_tokens), 0) AS avg_tokens
FROM as_of JOIN daily ON daily.day > as_of_date - window_days AND daily.day <= as_of_date
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE reference_trends AS
WITH pairs AS (
    SELECT a.agent_id, a.day AS first_day, b.day AS second_day,
           (b.success_rate - a.success_rate) / (b.day - a.day) AS success_rate_slope,
           (b.cost_per_task - a.cost_per_task) / (b.day - a.day) AS cost_per_task_slope
    FROM daily a JOIN daily b ON a.agent_id = b.agent_id AND a.day < b.day
)
SELECT agent_id, as_of_date, window_days, median(success_rate_slope) AS success_rate_slope,
       median(cost_per_task_slope) AS cost_per_task_slope
FROM as_of JOIN pairs ON first_day > as_of_date - window_days AND second_day <= as_of_date
GROUP BY ALL;
"""


# The reference's time moves by 10 % or more from run to run on a small machine; the ratio is taken to
# the median of a few runs (each from the files, in a new in-memory database), all of them reported.
REFERENCE_RUNS = 3


def run_reference(files: list[Path]) -> tuple[duckdb.DuckDBPyConnection, float]:
    """The reference windows and trends of the JSON Lines ``files`` (an in-memory database), and its seconds."""
    conn = duckdb.connect()
    started = time.perf_counter()
    for statement in (TASKS_SQL + WINDOWS_SQL).split(";"):
        if statement.strip():
            names = [name for name in ("files", "windows") if f"${name}" in statement]
            conn.execute(statement, {name: {"files": [str(f) for f in files], "windows": list(WINDOWS)}[name]
                                     for name in names})
    return conn, time.perf_counter() - started


# Compared with the pipeline's agent windows (where it has a status ok; below 5 tasks it has no
# metrics) and trends (where it fitted one). Costs are not: the pipeline prices the tasks that
# reported none from the price table, where the reference leaves their cost unknown.
COMPARED_WINDOW_METRICS = ("success_rate", "avg_completion_time_s", "avg_tokens")
COMPARED_TRENDS = {"success_rate": "success_rate_slope"}


def _differs(pipeline: float | None, reference: float | None) -> bool:
    if pipeline is None or reference is None:
        return pipeline is not reference
    return abs(pipeline - reference) > 1e-9 * max(1.0, abs(pipeline))


def agreement(conn: duckdb.DuckDBPyConnection, warehouse: str, day: str) -> dict[str, Any]:
    """How many of the pipeline's agent windows and trends (every day, every window) the reference
    computes otherwise, and the reference's 7-day windows of the agents on ``day``."""
    columns = ", ".join(COMPARED_WINDOW_METRICS)
    reference = {(agent, as_of.isoformat(), window): values for agent, as_of, window, *values in conn.execute(
        f"SELECT agent_id, as_of_date, window_days, n_tasks, {columns} FROM reference_windows").fetchall()}
    slopes = {(agent, as_of.isoformat(), window): dict(zip(COMPARED_TRENDS, values, strict=True))
              for agent, as_of, window, *values in conn.execute(
                  f"SELECT agent_id, as_of_date, window_days, {', '.join(COMPARED_TRENDS.values())} "
                  "FROM reference_trends").fetchall()}
    differ = dict.fromkeys(["n_tasks", *COMPARED_WINDOW_METRICS, *(f"{m}_slope" for m in COMPARED_TRENDS)], 0)
    with warehouse_engine(warehouse).connect() as wh:
        windows = wh.execute(sa.select(window_stats.c.entity_id, window_stats.c.as_of_date,
                                       window_stats.c.window_days, window_stats.c.status, window_stats.c.n_tasks,
                                       *(window_stats.c[m] for m in COMPARED_WINDOW_METRICS))
                             .where(window_stats.c.entity_type == "agent")).all()
        fitted = wh.execute(sa.select(trends.c.entity_id, trends.c.as_of_date, trends.c.window_days, trends.c.metric,
                                      trends.c.slope_per_day)
                            .where(trends.c.entity_type == "agent", trends.c.metric.in_(list(COMPARED_TRENDS)),
                                   trends.c.slope_per_day.is_not(None))).all()
    for agent, as_of, window, status, n_tasks, *values in windows:
        expected = reference.get((agent, str(as_of)[:10], window), [0, *[None] * len(values)])
        differ["n_tasks"] += n_tasks != expected[0]
        if status == "ok":
            for metric, value, other in zip(COMPARED_WINDOW_METRICS, values, expected[1:], strict=True):
                differ[metric] += _differs(value, other)
    for agent, as_of, window, metric, slope in fitted:
        expected = slopes.get((agent, str(as_of)[:10], window), {}).get(metric)
        differ[f"{metric}_slope"] += _differs(slope, expected)
    last = {agent: {"n_tasks": values[0], "success_rate": values[1]}
            for (agent, as_of, window), values in sorted(reference.items()) if as_of == day and window == 7}
    return {"windows_compared": len(windows), "trends_compared": len(fitted), "differ": differ,
            "day": day, "reference_7d": last}


@contextlib.contextmanager
def _environment(**variables: str) -> Iterator[None]:
    """``variables`` set in this process's environment (and so its children's) for the block."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_pipeline_benchmark(agents: int, days: int, tasks_per_day: int = TASKS_PER_DAY,
                           keep: Path | None = None, reference: bool = True,
                           warehouse_url: str | None = None) -> dict[str, Any]:
    """Generate, run the pipeline in a fresh process and (unless ``reference`` is False) the reference
    here; every figure, as a dict. Without the reference, its figures and the agreement are None.
    The warehouse is ``warehouse_url`` (which must hold no task yet), or a SQLite file in the work
    folder."""
    if warehouse_url is not None:
        _check_empty(warehouse_url)
    work = keep.resolve() if keep else Path(tempfile.mkdtemp(prefix="perf-bench-pipeline-"))
    generated = work / "generated"
    if keep and any(work.iterdir() if work.exists() else ()):
        raise FileExistsError(f"--keep {work}: the folder must be new or empty")
    warehouse = warehouse_url or f"sqlite:///{work / 'warehouse.db'}"
    try:
        start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
        started = time.perf_counter()
        summary = generate_logs(generated, start=start, days=days, agents=agents, tasks_per_day=tasks_per_day,
                                seed=SEED)
        generate_seconds = time.perf_counter() - started
        files = [work / "landing" / path.name for path in summary.files]
        # spawn, not fork: a fresh interpreter, whose peak memory is the pipeline's own. It inherits
        # the first partition from the environment: the partitions are defined when it imports them.
        with (_environment(PERF_PARTITION_START=start.isoformat()), _MemorySampler() as memory,
              ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool):
            pipeline = pool.submit(_run_pipeline, work, generated, warehouse).result()
        checked = compared = None
        if reference:
            timings = []
            for _ in range(REFERENCE_RUNS):  # the last run's tables are compared with the pipeline's
                conn, seconds = run_reference(files)
                timings.append(seconds)
            rows = conn.execute("SELECT (SELECT count(*) FROM reference_windows), (SELECT count(*) FROM "
                                "reference_trends), (SELECT count(*) FROM tasks)").fetchone()
            compared = {"seconds": statistics.median(timings), "runs_seconds": timings, "tasks": rows[2],
                        "window_rows": rows[0], "trend_rows": rows[1]}
            checked = agreement(conn, warehouse, pipeline["last_day"])
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "agents": agents, "days": days, "tasks_per_day": tasks_per_day, "seed": SEED,
        "first_day": pipeline["first_day"], "last_day": pipeline["last_day"],
        "generate": {"seconds": generate_seconds, "files": len(summary.files), "events": summary.events},
        "tasks": pipeline["tasks"],
        "stages": pipeline["stages"],
        "pipeline_seconds": pipeline["seconds"],
        "pipeline_runs": pipeline["runs"],
        "run_list": pipeline["run_list"],
        "reference": compared,
        "ratio_pipeline_to_reference": pipeline["seconds"] / compared["seconds"] if compared else None,
        "tasks_per_second": pipeline["tasks"] / pipeline["seconds"],
        "peak_memory_mib": {"process_tree_pss": memory.peak_mib or None,
                            "pipeline_process_max_rss": pipeline["max_rss_mib"],
                            "pipeline_workers_max_rss": pipeline["workers_max_rss_mib"]},
        "agreement": checked,
        "workdir": str(work) if keep else None,
        "warehouse": warehouse if keep or warehouse_url else None,
        "warehouse_backend": sa.engine.make_url(warehouse).get_backend_name(),
    }


def _check_empty(url: str) -> None:
    """Refuse a warehouse that holds tasks already (FileExistsError), or that does not answer
    (ConnectionError): the benchmark's figures are those of its own logs into an empty warehouse
    (its schema is created if missing)."""
    try:
        with warehouse_engine(url).connect() as conn:
            if conn.execute(sa.select(staged_events.c.event_id).limit(1)).first() is not None:
                raise FileExistsError(f"--warehouse-url {redact_url(url)}: the warehouse must be empty "
                                      "(a new database or schema)")
    except sa.exc.OperationalError as exc:
        raise ConnectionError(f"--warehouse-url {redact_url(url)}: cannot connect: {str(exc.orig).strip()}") from exc



def render(result: dict[str, Any]) -> str:
    stages = result["stages"]
    memory = result["peak_memory_mib"]
    checked = result["agreement"]
    tree = (f"{memory['process_tree_pss']:,.0f} MiB" if memory["process_tree_pss"] else "not measured (no /proc)")
    lines = [f"{result['agents']:,} agents, {result['days']} days, {result['tasks_per_day']:,} tasks a day "
             f"({result['first_day']}..{result['last_day']}); generated in {result['generate']['seconds']:.1f} s; "
             f"warehouse: {result['warehouse_backend']}",
             f"task events staged      {result['tasks']:,}"]
    lines += [f"{name:23s} {seconds:9.1f} s" for name, seconds in stages.items()]
    lines.append(f"pipeline end to end     {result['pipeline_seconds']:9.1f} s   ({result['pipeline_runs']} runs)")
    reference = result["reference"]
    if reference:
        lines += [
            f"reference (DuckDB)      {reference['seconds']:9.1f} s   (median of "
            f"{', '.join(f'{t:.1f}' for t in reference['runs_seconds'])} s; {reference['window_rows']:,} "
            f"window rows, {reference['trend_rows']:,} trend rows)",
            f"pipeline / reference    {result['ratio_pipeline_to_reference']:9.1f}x"]
    else:
        lines.append("reference (DuckDB)      not run (--no-reference)")
    lines += [
        f"tasks per second        {result['tasks_per_second']:9,.0f}",
        f"peak memory             {tree} (process tree, PSS sampled every {SAMPLE_SECONDS}s); max RSS "
        f"{memory['pipeline_process_max_rss']:,.0f} MiB pipeline process, "
        f"{memory['pipeline_workers_max_rss']:,.0f} MiB its largest worker (with the pages it shares)"]
    if checked:
        lines.append(f"agreement with the pipeline's agent windows ({checked['windows_compared']:,}) and trends "
                     f"({checked['trends_compared']:,}), rows that differ: "
                     + ", ".join(f"{metric} {n:,}" for metric, n in checked["differ"].items()))
    if result["workdir"]:
        lines.append(f"kept in {result['workdir']}")
    return "\n".join(lines)


def benchmark_pipeline(agents: int, days: int, tasks_per_day: int, out: Path, keep: Path | None,
                       reference: bool = True, warehouse_url: str | None = None) -> str:
    """Run the benchmark, write ``out`` (JSON) and return the printed report. The warehouse's URL is
    written with its password hidden, in the figures and in the command."""
    result = run_pipeline_benchmark(agents, days, tasks_per_day, keep, reference, warehouse_url)
    if result["warehouse"]:
        result["warehouse"] = redact_url(result["warehouse"])
    result["command"] = " ".join([Path(sys.argv[0]).name, *(
        arg.replace(warehouse_url, redact_url(warehouse_url)) if warehouse_url else arg for arg in sys.argv[1:])])
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return render(result) + f"\nwrote {out}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tasks-per-day", type=int, default=TASKS_PER_DAY)
    parser.add_argument("--out", type=Path, default=Path("benchmark-pipeline.json"))
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--warehouse-url")
    args = parser.parse_args()
    print(benchmark_pipeline(args.agents, args.days, args.tasks_per_day, args.out, args.keep, args.reference,
                             args.warehouse_url))


if __name__ == "__main__":
    main()
