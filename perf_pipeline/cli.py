"""The ``perf-pipeline`` command: generate sample logs, run the pipeline through Dagster, open the UI.

``run`` launches, in process, what the Dagster daemon would launch (``launcher.py``): the landing
sensor's ingest run, then the runs the daily assets' automation conditions request, as runs of the
project's named jobs on the local Dagster instance (``$PERF_HOME/dagster``), so they appear in the
UI's run history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perf_pipeline import settings
from perf_pipeline.settings import SettingError

PROJECT_ROOT = Path(__file__).resolve().parents[1]

EPILOG_GENERATE = """examples:
  perf-pipeline generate --out .perf/landing --days 14
  perf-pipeline generate --out /tmp/logs --start 2026-01-01 --days 50 --tasks-per-day 20000 --format jsonl.gz
"""
EPILOG_RUN = """examples:
  perf-pipeline run                                 # ingest new files, build the days they touched
  perf-pipeline run --landing /data/agent-logs
  perf-pipeline run --start 2026-01-01 --end 2026-01-31   # rebuild a range (a backfill)
environment: PERF_HOME, PERF_WAREHOUSE_URL, PERF_LANDING_DIR, PERF_DEFAULT_TIMEZONE,
PERF_PARTITION_START, PERF_SCORING_CONFIG, PERF_AGGREGATES_CONFIG, OPENAI_API_KEY (see README)
"""
EPILOG_SILENCE = """examples:
  perf-pipeline silence add --rule low_success_rate --entity agent-07 --until 3d --reason "retraining, known"
  perf-pipeline silence add --rule provider_anomaly --until 2026-12-01T09:00 --reason "provider incident"
  perf-pipeline silence list --all
  perf-pipeline silence expire 3
"""
EPILOG_REPORT = """examples:
  perf-pipeline report send --kind weekly --period 2026-W40
  perf-pipeline report send --kind daily --period 2026-10-02 --again
"""
EPILOG_DEMO = """examples:
  perf-pipeline demo                  # 14 days of logs for 12 agents, then the full run
  perf-pipeline demo --days 30 --agents 24
"""
EPILOG_QUERY = """examples:
  perf-pipeline query leaderboard --window 30                 # the latest day's 30-day leaderboard
  perf-pipeline query window-stats --entity-type agent --entity agent-07 --from 2026-01-01 --to 2026-01-31
  perf-pipeline query window-stats --department engineering --window 7 --format csv > eng.csv
  perf-pipeline query trends --entity-type provider --metric avg_cost_per_task --format json
  perf-pipeline query anomalies --from 2026-01-01
  perf-pipeline query provider-rankings --task-type bug_fix
without --from/--to: the latest day in the table. --department/--project: the department or project
itself and its agents. A table shows the main columns; csv and json show all of them.
"""
EPILOG_BENCHMARK = """examples:
  perf-pipeline benchmark ingest --events 1000000     # the same as: perf-pipeline benchmark --events 1000000
  perf-pipeline benchmark pipeline --agents 1100 --days 30 --out results.json
"""
EPILOG_RECOMMEND = """examples:
  perf-pipeline recommend --task-type bug_fix
  perf-pipeline recommend --task-type research --date 2026-01-31
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except (UserError, SettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-01-31") from exc


def _until(text: str) -> dt.datetime | dt.timedelta:
    """An end time: ISO 8601 (a naive time is UTC; a date means its midnight UTC) or a duration from now."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        return dt.timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a time like 2026-12-01T09:00 (UTC unless an offset is given) nor a duration "
            "like 30m, 8h or 3d") from exc
    return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perf-pipeline", description=(
        "Measure how well AI agents do their work, from their task logs."),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_DEMO)
    commands = parser.add_subparsers(dest="command")

    generate = commands.add_parser("generate", help="write realistic synthetic task logs",
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_GENERATE)
    generate.add_argument("--out", type=Path, required=True, help="folder to write the log files to")
    _generation_options(generate)
    generate.set_defaults(handler=cmd_generate)

    run = commands.add_parser("run", help="ingest new landing files and materialize the daily assets",
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_RUN)
    run.add_argument("--landing", type=Path, help="landing folder (default PERF_LANDING_DIR or $PERF_HOME/landing)")
    run.add_argument("--start", type=_date, help="first day to (re)build; default: the first day new data touched")
    run.add_argument("--end", type=_date, help="last day to (re)build; default: the last day new data touched")
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser("demo", help="generate sample logs, run the pipeline, say where to look",
                               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_DEMO)
    _generation_options(demo, days=14, agents=12, tasks_per_day=150)
    demo.set_defaults(handler=cmd_demo)

    ui = commands.add_parser("ui", help="open the Dagster UI (dagster dev -w workspace.yaml) on this instance")
    ui.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=cmd_ui)

    schema = commands.add_parser("schema", help="print or write the warehouse DDL (sql/ddl) from the code")
    schema.add_argument("--write", action="store_true", help="rewrite sql/ddl/*.sql")
    schema.set_defaults(handler=cmd_schema)

    silence = commands.add_parser("silence", help="silence alerts of a rule (and entity) for a while; list, expire",
                                  formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_SILENCE)
    silences = silence.add_subparsers(dest="action", required=True)
    add = silences.add_parser("add", help="silence a rule, or one entity of it, until a time")
    add.add_argument("--rule", required=True, help="the rule's name (alerts.yaml)")
    add.add_argument("--entity", help="one entity id (an agent id, provider/task_type, ...); default: all")
    add.add_argument("--until", required=True, type=_until,
                     help="end of the silence: an ISO time (UTC unless it has an offset), a date, or 30m, 8h, 3d")
    add.add_argument("--reason", required=True, help="why (shown with the silenced alerts)")
    add.set_defaults(handler=cmd_silence_add)
    listing = silences.add_parser("list", help="the active silences (--all: ended and expired ones too)")
    listing.add_argument("--all", action="store_true", dest="include_ended")
    listing.set_defaults(handler=cmd_silence_list)
    expire = silences.add_parser("expire", help="end a silence now")
    expire.add_argument("silence_id", type=_positive, metavar="ID")
    expire.set_defaults(handler=cmd_silence_expire)

    report = commands.add_parser("report", help="post a stored daily or weekly report (one a backfill did not post)",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_REPORT)
    reports = report.add_subparsers(dest="action", required=True)
    send = reports.add_parser("send", help="post a report to Slack and the webhooks (once, unless --again)")
    send.add_argument("--kind", required=True, choices=["daily", "weekly"])
    send.add_argument("--period", required=True, help="the day (2026-03-04) or the ISO week (2026-W10)")
    send.add_argument("--again", action="store_true", help="post another copy of a report already posted")
    send.set_defaults(handler=cmd_report_send)

    query = commands.add_parser("query", help="print window stats, trends, leaderboards, anomalies, rankings or alerts",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_QUERY)
    query.add_argument("what", choices=["window-stats", "trends", "leaderboard", "anomalies", "provider-rankings",
                                        "alerts"])
    query.add_argument("--entity-type", help="agent, department, project, provider, model, task_type, "
                                             "provider_task_type or prompt_version")
    query.add_argument("--entity", help="entity id (an agent id, provider/task_type, ...)")
    query.add_argument("--department")
    query.add_argument("--project")
    query.add_argument("--from", dest="first", type=_date, help="first day (as-of date)")
    query.add_argument("--to", dest="last", type=_date, help="last day (as-of date)")
    query.add_argument("--window", type=int, choices=[7, 30, 90])
    query.add_argument("--metric", help="trends and anomalies: one metric, e.g. avg_quality_score")
    query.add_argument("--task-type", help="provider-rankings: one task type")
    query.add_argument("--format", dest="fmt", choices=["table", "csv", "json"], default="table")
    query.set_defaults(handler=cmd_query)

    recommend = commands.add_parser("recommend", help="the provider/model to use for a task type, with evidence",
                                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_RECOMMEND)
    recommend.add_argument("--task-type", required=True)
    recommend.add_argument("--date", type=_date, help="as of this day (default: the latest ranked day)")
    recommend.set_defaults(handler=cmd_recommend)

    bench = commands.add_parser("benchmark", help="measure the ingest, or the whole pipeline against a SQL reference",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_BENCHMARK)
    _ingest_benchmark_options(bench)  # `benchmark --events N` is `benchmark ingest --events N`
    benchmarks = bench.add_subparsers(dest="benchmark")
    _ingest_benchmark_options(benchmarks.add_parser(
        "ingest", help="ingest + validation throughput and peak memory"))
    pipeline = benchmarks.add_parser("pipeline", help="every stage of the pipeline on a fleet's logs, timed, "
                                     "against a DuckDB SQL reference (needs pip install -e '.[test]')",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_BENCHMARK)
    pipeline.add_argument("--agents", type=_positive, default=1100, help="agents (default 1100)")
    pipeline.add_argument("--days", type=_positive, default=30, help="days of logs (default 30)")
    pipeline.add_argument("--tasks-per-day", type=_positive, default=6600, help="tasks a day (default 6600)")
    pipeline.add_argument("--out", type=Path, default=Path("benchmark-pipeline.json"),
                          help="JSON file of the figures (default benchmark-pipeline.json)")
    pipeline.add_argument("--keep", dest="keep_dir", type=Path, metavar="DIR",
                          help="run in DIR (new or empty) and keep it: logs, warehouse, Dagster instance")
    pipeline.add_argument("--no-reference", dest="reference", action="store_false",
                          help="time the pipeline alone, without the DuckDB reference (whose trends of a year of "
                               "logs pair every two days of every agent: billions of rows)")
    pipeline.add_argument("--warehouse-url", help="an empty warehouse to run the pipeline into, such as a new "
                                                  "PostgreSQL database (default: a SQLite file in the run's folder)")
    pipeline.set_defaults(handler=cmd_benchmark_pipeline)
    return parser


def _ingest_benchmark_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=_positive, default=1_000_000, help="task events to generate (default 1M)")
    parser.add_argument("--warehouse-url", help="warehouse to load into (default: a fresh SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files and warehouse")
    parser.set_defaults(handler=cmd_benchmark)


def _generation_options(parser: argparse.ArgumentParser, days: int = 14, agents: int = 24,
                        tasks_per_day: int = 200) -> None:
    parser.add_argument("--start", type=_date, help=f"first day (default: {days} days ago, UTC)")
    parser.add_argument("--days", type=_positive, default=days, help=f"number of days (default {days})")
    parser.add_argument("--agents", type=_positive, default=agents, help=f"number of agents (default {agents})")
    parser.add_argument("--tasks-per-day", type=_positive, default=tasks_per_day,
                        help=f"tasks per day (default {tasks_per_day})")
    parser.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same files")
    parser.add_argument("--format", dest="file_format", default="jsonl",
                        choices=["jsonl", "jsonl.gz", "csv", "parquet"], help="file format of task events")


def _progress_bar(label: str):
    started = time.perf_counter()

    def show(done: int, total: int, *extra: Any) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        rate = f"{done / (time.perf_counter() - started):,.1f}/s"
        end = "\n" if done >= total else "\r"
        print(f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate}", end=end, flush=True)

    return show


def cmd_generate(args: argparse.Namespace) -> int:
    from perf_pipeline.synthetic.generator import generate_logs

    start = args.start or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.days))
    summary = generate_logs(args.out, start=start, days=args.days, agents=args.agents,
                            tasks_per_day=args.tasks_per_day, seed=args.seed, file_format=args.file_format,
                            progress=_progress_bar("generating days"))
    events = ", ".join(f"{n:,} {kind}" for kind, n in summary.events.items())
    print(f"wrote {len(summary.files)} files to {args.out}: {events}; deliberately bad lines: "
          f"{summary.malformed_lines} malformed, {summary.duplicate_lines} duplicates, "
          f"{summary.conflicting_lines} conflicting")
    return 0


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME: as set, or $PERF_HOME/dagster holding a copy of the project's dagster.yaml with
    the event log's storage added (``instance_storage.instance_config``)."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
    else:
        home = settings.perf_home() / "dagster"
        os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    project_config = PROJECT_ROOT / "dagster.yaml"
    if project_config.exists() and project_config.resolve() != (home / "dagster.yaml").resolve():
        from perf_pipeline.instance_storage import instance_config

        (home / "dagster.yaml").write_text(project_config.read_text(encoding="utf-8") + instance_config(home),
                                           encoding="utf-8")
    return home


def cmd_run(args: argparse.Namespace) -> int:
    if args.start and args.end and args.start > args.end:
        raise UserError(f"--start {args.start} is after --end {args.end}")
    if bool(args.start) != bool(args.end):
        raise UserError("--start and --end go together: the first and last day to rebuild")
    if args.landing:
        os.environ["PERF_LANDING_DIR"] = str(args.landing.resolve())
    ensure_dagster_home()
    from dagster import DagsterInstance

    from perf_pipeline.definitions import build_definitions
    from perf_pipeline.ingest.pipeline import discover
    from perf_pipeline.launcher import Launcher, PipelineRunError, initialized
    from perf_pipeline.summary import run_summary

    defs = build_definitions()
    if args.start and args.start < settings.partition_start():
        raise UserError(f"--start {args.start} is before the first partition {settings.partition_start()} "
                        "(PERF_PARTITION_START)")
    folder = initialized(defs.resources["landing"]).folder()
    try:
        files, ignored = discover(folder)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise UserError(str(exc)) from exc
    print(f"landing folder {folder}: {len(files)} file(s)" + (f", {len(ignored)} other file(s) ignored"
                                                               if ignored else ""))
    with DagsterInstance.get() as instance:
        try:
            launched = Launcher(defs, instance).run(args.start, args.end)
        except PipelineRunError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(run_summary(initialized(defs.resources["warehouse"]).engine(), launched))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    landing = settings.landing_dir()
    cmd_generate(argparse.Namespace(**{**vars(args), "out": landing}))
    code = cmd_run(argparse.Namespace(landing=landing, start=None, end=None))
    url = settings.redact_url(settings.warehouse_url())
    query = "select reason_codes, count(*) from quarantined_events group by 1"
    if url.startswith("sqlite:///"):
        database = url.removeprefix("sqlite:///")
        script = f"import sqlite3; print(sqlite3.connect('{database}').execute('{query}').fetchall())"
        peek = f'{sys.executable} -c "{script}"'
    else:
        peek = f"psql -c '{query}'  (on the warehouse database)"
    print(textwrap.dedent(f"""
        Where to look next:
          warehouse   {url}
                      tables: task_events, task_steps, feedback_events, peer_evaluations,
                      collaboration_messages, quarantined_events, ingested_files,
                      task_scores, collaboration_scores, llm_judgements, price_table,
                      daily_rollups, window_stats, trends, baselines, anomalies, leaderboard,
                      provider_rankings, prompt_version_comparisons, project_summaries, node_performance,
                      alert_conditions, alerts, notification_outbox, reports
                      views:  v_ingest_health, v_quarantine_summary, v_judge_cost, v_orphan_events,
                              v_latest_agent_stats, v_latest_trends, v_provider_recommendations,
                              v_recent_anomalies
          leaderboard perf-pipeline query leaderboard --window 7
          providers   perf-pipeline recommend --task-type bug_fix
          alerts      perf-pipeline query alerts
          reports     {settings.reports_dir()}/daily/<day>/report.html and weekly/<week>/
          Slack       set SLACK_BOT_TOKEN and PERF_SLACK_CHANNEL (a channel ID) for alerts and reports
          LLM judge   set OPENAI_API_KEY (and OPENAI_BASE_URL, PERF_JUDGE_MODEL) to judge quality
          Dagster UI  perf-pipeline ui      (then open http://127.0.0.1:3000)
          run again   perf-pipeline demo    (same seed, same files: nothing new is ingested)
          quarantine  (the next line, copied into a shell)
        """).rstrip())
    print(f"  {peek}")
    return code


# `dagster dev` warns that `dg dev` (a separate package) supersedes it; it is still Dagster's local
# webserver-plus-daemon, and this project's documented way to run it.
QUIET_DEV = "ignore:Function `dev_command` is superseded"


def cmd_ui(args: argparse.Namespace) -> int:
    home = ensure_dagster_home()
    workspace = PROJECT_ROOT / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "perf_pipeline.definitions"]
    dagster = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "dev", *target, "-h", args.host, "-p", str(args.port)]
    print(f"DAGSTER_HOME={home} {' '.join(command)}\nopen http://{args.host}:{args.port}", flush=True)
    # From DAGSTER_HOME: `dagster dev` warns about a dagster.yaml in its working folder that is not
    # DAGSTER_HOME's (the project's own, copied there by ensure_dagster_home).
    os.chdir(home)
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), QUIET_DEV]))
    os.execvp(command[0], command)
    return 0  # pragma: no cover - execvp does not return


def cmd_schema(args: argparse.Namespace) -> int:
    from perf_pipeline.warehouse.ddl import ddl_files

    files = ddl_files()
    if not args.write:
        for name, text in files.items():
            print(f"-- sql/ddl/{name}\n{text}")
        return 0
    folder = PROJECT_ROOT / "sql" / "ddl"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        print(f"wrote {folder / name}")
    return 0


def _warehouse_connection():
    """A connection to the configured warehouse, which must exist already (queries create nothing)."""
    from perf_pipeline.warehouse.db import warehouse_engine

    url = settings.warehouse_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise UserError(f"no warehouse at {settings.redact_url(url)}: run `perf-pipeline run` (or demo) first")
    return warehouse_engine(url).connect()


def _silences():
    """A transaction on the warehouse, and the alert rules (a silence must name one)."""
    from perf_pipeline.alerts.config import load_alerts_config
    from perf_pipeline.config import ConfigError
    from perf_pipeline.warehouse.db import warehouse_engine

    try:
        config = load_alerts_config()
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    return warehouse_engine(settings.warehouse_url()).begin(), config


def cmd_silence_add(args: argparse.Namespace) -> int:
    from perf_pipeline.alerts.store import SilenceError, add_silence

    transaction, config = _silences()
    if config.rule(args.rule) is None:
        raise UserError(f"--rule {args.rule!r} is not a rule; the rules are: "
                        + ", ".join(rule.name for rule in config.rules))
    now = dt.datetime.now(dt.UTC)
    until = now + args.until if isinstance(args.until, dt.timedelta) else args.until
    try:
        with transaction as conn:
            silence_id = add_silence(conn, args.rule, args.entity, until, args.reason, now,
                                     os.environ.get("USER"))
    except SilenceError as exc:
        raise UserError(str(exc)) from exc
    print(f"silence {silence_id}: {args.rule} for {args.entity or 'every entity'} until "
          f"{until.isoformat(timespec='minutes')} ({args.reason.strip()})")
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    from perf_pipeline.aggregates.query import render
    from perf_pipeline.alerts.store import list_silences

    transaction, _ = _silences()
    with transaction as conn:
        rows = list_silences(conn, dt.datetime.now(dt.UTC), args.include_ended)
    print(render(rows, "table") if rows else "no active silences" + (" or past ones" if args.include_ended else ""))
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    from perf_pipeline.alerts.store import SilenceError, expire_silence

    transaction, _ = _silences()
    try:
        with transaction as conn:
            expire_silence(conn, args.silence_id, dt.datetime.now(dt.UTC))
    except SilenceError as exc:
        raise UserError(str(exc)) from exc
    print(f"silence {args.silence_id} expired: its alerts notify again from the next evaluation")
    return 0


def cmd_report_send(args: argparse.Namespace) -> int:
    """Put the stored report in the outbox, then deliver it as the notification_sender sensor would."""
    ensure_dagster_home()
    from dagster import DagsterInstance

    from perf_pipeline.definitions import build_definitions
    from perf_pipeline.launcher import Launcher, initialized
    from perf_pipeline.reports.publish import AlreadyPosted, post, posted

    defs = build_definitions()
    notify = initialized(defs.resources["notify"])
    destinations = notify.destinations()
    if not destinations:
        raise UserError("no destination: set PERF_SLACK_CHANNEL and SLACK_BOT_TOKEN, or PERF_WEBHOOK_URLS")
    now = dt.datetime.now(dt.UTC)
    with _warehouse_connection() as conn, conn.begin():
        try:
            key = post(conn, args.kind, args.period, destinations, now,
                       copy=now.strftime("again-%Y%m%dT%H%M%S") if args.again else None)
        except (LookupError, AlreadyPosted) as exc:
            raise UserError(str(exc)) from exc
    with DagsterInstance.get() as instance:
        Launcher(defs, instance).tick("notification_sender")
    with _warehouse_connection() as conn:
        for row in posted(conn, key):
            print(f"{row['channel']} {row['target'] if row['channel'] == 'slack' else '(webhook)'}: {row['status']}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from perf_pipeline.aggregates.query import VIEWS, Filters, QueryError, render, run_query

    filters = Filters(entity_type=args.entity_type, entity=args.entity, department=args.department,
                      project=args.project, first=args.first, last=args.last, window=args.window,
                      metric=args.metric, task_type=args.task_type)
    try:
        with _warehouse_connection() as conn:
            rows = run_query(conn, args.what, filters)
    except QueryError as exc:
        raise UserError(str(exc)) from exc
    print(render(rows, args.fmt, VIEWS[args.what].brief))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from perf_pipeline.aggregates.config import load_aggregates_config
    from perf_pipeline.aggregates.query import QueryError, recommendation
    from perf_pipeline.config import ConfigError

    try:
        config = load_aggregates_config().provider_ranking  # $PERF_AGGREGATES_CONFIG over the defaults
        with _warehouse_connection() as conn:
            print(recommendation(conn, args.task_type, config, args.date))
    except (QueryError, ConfigError) as exc:
        raise UserError(str(exc)) from exc
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from perf_pipeline.benchmark import run_ingest_benchmark

    print(run_ingest_benchmark(events=args.events, warehouse_url=args.warehouse_url, keep=args.keep))
    return 0


def cmd_benchmark_pipeline(args: argparse.Namespace) -> int:
    # The benchmark and its DuckDB reference live with the tests (perf_pipeline_tests/benchmarks), which
    # a source checkout has next to the package; the pipeline itself never imports them.
    if (PROJECT_ROOT / "perf_pipeline_tests").is_dir() and str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    try:
        from perf_pipeline_tests.benchmarks.pipeline import benchmark_pipeline
    except ModuleNotFoundError as exc:
        if exc.name == "duckdb":
            raise UserError("the pipeline benchmark's reference needs DuckDB: pip install -e '.[test]'") from exc
        if exc.name and exc.name.startswith("perf_pipeline_tests"):
            raise UserError("the pipeline benchmark lives in perf_pipeline_tests/: run it from a source checkout "
                            "installed with pip install -e '.[test]'") from exc
        raise
    import sqlalchemy as sa

    if args.warehouse_url is not None:
        try:
            sa.engine.make_url(args.warehouse_url).port  # noqa: B018 (a port that is not a number is refused here)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise UserError(f"--warehouse-url: {exc}") from exc
    try:
        print(benchmark_pipeline(args.agents, args.days, args.tasks_per_day, args.out, args.keep_dir,
                                 args.reference, args.warehouse_url))
    except (FileExistsError, ConnectionError) as exc:
        raise UserError(str(exc)) from exc
    return 0
