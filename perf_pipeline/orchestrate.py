"""Run the pipeline in-process through Dagster: the ingest job, then the daily event tables and
scores for the days it touched, then the days whose tasks got late feedback or reviews, then the
aggregates (rollups, windows, trends, baselines, rankings) as of each of those days and of the
later days whose windows hold them.

The CLI's ``run`` and ``demo`` use this, so a command-line run executes exactly the asset code the
UI runs, is recorded on the same instance, and takes the same checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dagster import DagsterInstance, materialize

from perf_pipeline.aggregates.assets import AGGREGATE_ASSETS
from perf_pipeline.definitions import build_resources
from perf_pipeline.events.assets import DAILY_EVENT_ASSETS, objective_templates_asset
from perf_pipeline.ingest.assets import ingest_landing_files
from perf_pipeline.ingest.pipeline import discover
from perf_pipeline.partitions import PARTITION_START, days_between
from perf_pipeline.resources import LandingZoneResource
from perf_pipeline.scoring.assets import SCORING_ASSETS, price_table_asset
from perf_pipeline.scoring.config import MAX_WINDOW_DAYS
from perf_pipeline.scoring.store import stale_score_days
from perf_pipeline.warehouse.db import to_python_date
from perf_pipeline.warehouse.schema import (
    EVENT_TABLES,
    anomalies,
    collaboration_scores,
    ingested_files,
    leaderboard,
    provider_rankings,
    quarantined_events,
    task_scores,
    task_steps,
    trends,
    window_stats,
)

RANGE_DAYS_PER_RUN = 7
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# INFO shows the assets' own progress lines (files ingested, days built), not Dagster's step events.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class PipelineRunError(RuntimeError):
    """A Dagster run of the pipeline failed; the message says which run and step."""


def run_pipeline(*, landing: Path | None = None, start: dt.date | None = None, end: dt.date | None = None,
                 instance: DagsterInstance | None = None, echo: Callable[[str], Any] = print,
                 progress: Callable[[int, int], Any] | None = None,
                 resources: dict[str, object] | None = None) -> str:
    """Ingest new landing files, then build the daily event tables; returns a readable summary."""
    instance = instance or DagsterInstance.get()
    resources = dict(resources or build_resources())
    if landing is not None:
        resources["landing"] = LandingZoneResource(path=str(landing))
    folder = resources["landing"].folder()
    files, ignored = discover(folder)
    skipped = f" ({len(ignored)} other files ignored)" if ignored else ""
    echo(f"ingesting {len(files)} file(s) from {folder}{skipped}")
    ingest = _materialize([ingest_landing_files, objective_templates_asset, price_table_asset], instance, resources)
    metadata = _metadata(ingest, "ingested_files")
    affected = sorted({dt.date.fromisoformat(d) for dates in metadata["affected_partitions"].values() for d in dates})
    first = start or (affected[0] if affected else None)
    last = end or (affected[-1] if affected else None)
    if first is None or last is None:
        echo("no new events: no day to build (pass --start/--end to rebuild days)")
        return _summary(resources, metadata, None, None, 0.0)
    # All event tables first, then the scores: a day's feedback may land in the days after it. The
    # day before the first is scored again too: its requests may be answered by the new messages.
    # New tasks join the efficiency and cost baselines of the days after theirs, and new reviews the
    # leniency of the days after theirs: those days, among the days scored so far, are scored again.
    score_first = max(PARTITION_START, first - dt.timedelta(days=1))
    config = resources["scoring"].config()
    reach = {"task": max(config.efficiency.baseline_days, config.cost.baseline_days),
             "peer_evaluation": config.peer_review.leniency_days}
    score_days = set(days_between(score_first, last))
    with resources["warehouse"].engine().connect() as conn:
        score_horizon = max(last, _latest(conn, task_scores.c.partition_date) or last)
    for event_type, dates in metadata["affected_partitions"].items():
        score_days |= set(reached([dt.date.fromisoformat(d) for d in dates], reach.get(event_type, 1),
                                  score_horizon))
    steps = (last - first).days + 1 + len(score_days)
    built, started = 0, dt.datetime.now()
    for assets, ranges in ((DAILY_EVENT_ASSETS, _chunks(first, last)), (SCORING_ASSETS, _contiguous(score_days))):
        for chunk_first, chunk_last in ranges:
            _materialize_range(assets, instance, resources, chunk_first, chunk_last)
            built += (chunk_last - chunk_first).days + 1
            if progress:
                progress(built, steps)
    with resources["warehouse"].engine().connect() as conn:
        late = [stale.day for stale in stale_score_days(conn)]
    for late_first, late_last in _contiguous(late):
        _materialize_range(SCORING_ASSETS, instance, resources, late_first, late_last)
    if late:
        echo(f"scored {len(late)} earlier day(s) again for late feedback or reviews: "
             + ", ".join(day.isoformat() for day in late[:10]) + (" ..." if len(late) > 10 else ""))
    # Rollups, then windows, trends, baselines and rankings as of every day whose windows hold a
    # day that changed: up to MAX_WINDOW_DAYS - 1 days after it, among the days built so far.
    with resources["warehouse"].engine().connect() as conn:
        horizon = max(last, _latest(conn, window_stats.c.as_of_date) or last)
    aggregate_days = reached([*score_days, *late], MAX_WINDOW_DAYS, horizon)
    for chunk_first, chunk_last in _contiguous(aggregate_days):
        _materialize_range(AGGREGATE_ASSETS, instance, resources, chunk_first, chunk_last)
    rebuilt = [day for day in aggregate_days if day > last]
    if rebuilt:
        echo(f"scores or aggregates of {len(rebuilt)} day(s) after {last} rebuilt: they depend on the changed days")
    return _summary(resources, metadata, first, last, (dt.datetime.now() - started).total_seconds())


def reached(changed: Iterable[dt.date], reach_days: int, horizon: dt.date) -> list[dt.date]:
    """The days that depend on ``changed`` days: each and the ``reach_days - 1`` days after it, up
    to ``horizon`` (the last day built so far)."""
    days = {day + dt.timedelta(days=k) for day in changed for k in range(reach_days)}
    return sorted(day for day in days if day <= horizon)


def _latest(conn: sa.Connection, column: sa.Column) -> dt.date | None:
    value = conn.execute(sa.select(sa.func.max(column))).scalar()
    return to_python_date(value) if value is not None else None


def _chunks(first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date]]:
    """[first, last] cut into ranges of at most RANGE_DAYS_PER_RUN days (one run each)."""
    chunks = []
    while first <= last:
        chunk_last = min(last, first + dt.timedelta(days=RANGE_DAYS_PER_RUN - 1))
        chunks.append((first, chunk_last))
        first = chunk_last + dt.timedelta(days=1)
    return chunks


def _contiguous(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted days grouped into runs of consecutive days, each cut into chunks."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if ranges and day == ranges[-1][1] + dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return [chunk for start, end in ranges for chunk in _chunks(start, end)]


def _materialize_range(assets: list, instance: DagsterInstance, resources: dict[str, object], first: dt.date,
                       last: dt.date):
    return _materialize(assets, instance, resources, tags={RANGE_START_TAG: first.isoformat(),
                                                           RANGE_END_TAG: last.isoformat()})


def _materialize(assets: list, instance: DagsterInstance, resources: dict[str, object],
                 tags: dict[str, str] | None = None):
    result = materialize(assets, instance=instance, resources=resources, tags=tags, run_config=RUN_CONFIG,
                         raise_on_error=False)
    if not result.success:
        failures = [event for event in result.all_events if event.is_failure]
        detail = "; ".join(str(e.step_failure_data.error.message).strip() if e.step_failure_data else e.message
                           for e in failures) or "see the run in the Dagster UI"
        raise PipelineRunError(f"run {result.run_id} failed: {detail}")
    return result


def _metadata(result: Any, asset_key: str) -> dict[str, Any]:
    for materialization in result.get_asset_materialization_events():
        event = materialization.event_specific_data.materialization
        if event.asset_key.to_user_string() == asset_key:
            return {key: value.value for key, value in event.metadata.items()}
    raise PipelineRunError(f"the run did not materialize {asset_key}")


def _summary(resources: dict[str, object], metadata: dict[str, Any], first: dt.date | None,
             last: dt.date | None, seconds: float) -> str:
    engine = resources["warehouse"].engine()
    lines = [
        f"ingest: {metadata['files_ingested']} new file(s), {metadata['files_already_ingested']} already ingested, "
        f"{metadata['files_failed']} failed; {metadata['lines_read']:,} lines at "
        f"{metadata['events_per_second']:,.0f} lines/s; conservation "
        + ("holds" if metadata["conservation_holds"] else "VIOLATED"),
    ]
    with engine.connect() as conn:
        if first and last:
            counts = []
            for table in [*EVENT_TABLES.values(), task_steps, task_scores, collaboration_scores]:
                day = table.c.date if table is collaboration_scores else table.c.partition_date
                n = conn.execute(sa.select(sa.func.count()).select_from(table)
                                 .where(day.between(first, last))).scalar_one()
                counts.append(f"{table.name} {n:,}")
            lines.append(f"built {first}..{last} in {seconds:.1f}s: " + ", ".join(counts))
            aggregates = []
            for table in (window_stats, trends, anomalies, leaderboard, provider_rankings):
                n = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                    (table.c.date if table is anomalies else table.c.as_of_date).between(first, last))).scalar_one()
                aggregates.append(f"{table.name} {n:,}")
            lines.append("aggregates as of those days: " + ", ".join(aggregates))
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
            text = "; ".join(r["message"] for r in reasons_json)
            lines.append(f"  e.g. {source}:{line}: {text}")
    return "\n".join(lines)
