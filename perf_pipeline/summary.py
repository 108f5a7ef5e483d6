"""What ``perf-pipeline run`` prints after its runs: the ingest's figures, the days built and their
row counts, the alerts and reports, and the quarantine, read from the warehouse."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from perf_pipeline import settings
from perf_pipeline.launcher import Launched
from perf_pipeline.warehouse.schema import (
    EVENT_TABLES,
    alerts,
    anomalies,
    collaboration_scores,
    ingested_files,
    leaderboard,
    provider_rankings,
    quarantined_events,
    reports,
    task_scores,
    task_steps,
    trends,
    window_stats,
)

DAY_TABLES = [*EVENT_TABLES.values(), task_steps, task_scores, collaboration_scores]
AS_OF_TABLES = [window_stats, trends, anomalies, leaderboard, provider_rankings]


def run_summary(engine: Engine, launched: Launched) -> str:
    lines = [_ingest_line(engine, launched)]
    with engine.connect() as conn:
        event_days = launched.days("task_events")
        as_of_days = launched.days("window_stats")
        if event_days:
            lines.append(f"event tables of {_days(event_days)}: " + ", ".join(
                f"{table.name} {_count(conn, table, event_days):,}" for table in DAY_TABLES))
        if as_of_days:
            lines.append(f"aggregates as of {_days(as_of_days)}: " + ", ".join(
                f"{table.name} {_count(conn, table, as_of_days):,}" for table in AS_OF_TABLES))
        alert_days = launched.days("alerts")
        if alert_days:
            states = dict(conn.execute(sa.select(alerts.c.status, sa.func.count()).where(
                alerts.c.as_of_date == alert_days[-1]).group_by(alerts.c.status)).all())
            lines.append(f"alerts as of {alert_days[-1]}: {states.get('firing', 0):,} firing, "
                         f"{states.get('resolved', 0):,} resolved (perf-pipeline query alerts)")
        reported = launched.days("daily_report") + launched.days("weekly_report")
        if reported:
            kinds = dict(conn.execute(sa.select(reports.c.kind, sa.func.count()).group_by(reports.c.kind)).all())
            lines.append("reports: " + ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items()))
                         + f" in {settings.reports_dir()}")
        if not event_days and not as_of_days:
            lines.append("no new events: no day to build (pass --start/--end to rebuild days)")
        failures = conn.execute(sa.select(ingested_files.c.error).where(
            ingested_files.c.status == "failed", ingested_files.c.run_id.isnot(None)).order_by(
            ingested_files.c.file_id.desc()).limit(5)).scalars().all()
        lines += [f"  failed file: {error}" for error in failures]
        reasons = conn.execute(sa.select(quarantined_events.c.reason_codes, sa.func.count())
                               .group_by(quarantined_events.c.reason_codes)
                               .order_by(sa.func.count().desc()).limit(8)).all()
        if reasons:
            lines.append("quarantined (all time): " + ", ".join(f"{code} {n:,}" for code, n in reasons))
        examples = conn.execute(sa.select(quarantined_events.c.source_file, quarantined_events.c.line_number,
                                          quarantined_events.c.reasons)
                                .order_by(quarantined_events.c.quarantine_id.desc()).limit(3)).all()
        for source, line, reasons_json in examples:
            lines.append(f"  e.g. {source}:{line}: " + "; ".join(r["message"] for r in reasons_json))
    lines.append(f"{len(launched.runs)} run(s); see them in the Dagster UI (perf-pipeline ui)")
    return "\n".join(lines)


def _ingest_line(engine: Engine, launched: Launched) -> str:
    if launched.ingest is None:
        with engine.connect() as conn:
            done = conn.execute(sa.select(sa.func.count(sa.distinct(ingested_files.c.sha256))).where(
                ingested_files.c.status == "ingested")).scalar_one()
        return f"ingest: no new files ({done} already ingested)"
    m = launched.ingest
    return (f"ingest: {m['files_ingested']} new file(s), {m['files_already_ingested']} already ingested, "
            f"{m['files_failed']} failed; {m['lines_read']:,} lines at {m['events_per_second']:,.0f} lines/s; "
            "conservation " + ("holds" if m["conservation_holds"] else "VIOLATED"))


def _days(days: list[dt.date]) -> str:
    return f"{days[0]}..{days[-1]} ({len(days)} day(s))" if len(days) > 1 else str(days[0])


def _count(conn: sa.Connection, table: sa.Table, days: list[dt.date]) -> int:
    column = next(table.c[name] for name in ("partition_date", "as_of_date", "date") if name in table.c)
    return conn.execute(sa.select(sa.func.count()).select_from(table).where(column.in_(days))).scalar_one()
