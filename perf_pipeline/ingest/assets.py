"""Ingest assets: landing files -> ``ingested_files`` (ledger), ``quarantined_events``, and the days
of ``staged_events`` whose events changed.

``staged_events`` is one table holding every day, but its asset is partitioned by day: the ingest
records a materialization of each day whose staged events changed, with that day's figures. That
record is what the daily event tables' automation condition reacts to, so exactly the days a file
touched are cut again, and the days that depend on them follow through the partition mappings.
"""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from sqlalchemy.engine import Engine

from perf_pipeline.ingest.pipeline import FileResult, IngestOptions, IngestReport, ingest_landing
from perf_pipeline.ingest.store import clear_day_changes, day_figures, pending_day_changes
from perf_pipeline.partitions import PARTITION_START, daily_partitions
from perf_pipeline.resources import LandingZoneResource, WarehouseResource

GROUP = "ingest"

staged_events = AssetSpec(
    "staged_events", group_name=GROUP, partitions_def=daily_partitions, deps=["ingested_files"], description=(
        "Every validated, de-duplicated event of any type, typed, as canonical JSON; grain: one row per event "
        "id. Partitioned by the event's UTC day: the ingest records the days whose events changed, with "
        "the events staged and lines quarantined that day. The daily event tables are cut from it."))


@multi_asset(
    name="ingest_landing_files",
    group_name=GROUP,
    specs=[
        AssetSpec("ingested_files", group_name=GROUP, description=(
            "Ledger of landing files: one row per ingest attempt with sha256, lines read, events loaded, "
            "quarantined and duplicates skipped. Not partitioned: a file may hold many days.")),
        AssetSpec("quarantined_events", group_name=GROUP, description=(
            "Rows that failed parsing or Great Expectations validation, with the raw line, file, line number "
            "and every reason. Grain: one row per rejected line.")),
    ],
)
def ingest_landing_files(context: AssetExecutionContext, warehouse: WarehouseResource,
                         landing: LandingZoneResource) -> Iterator[MaterializeResult]:
    """Ingest every landing file whose content was not ingested before (one transaction per batch of
    files), then record the days whose staged events changed."""
    options = IngestOptions(partition_start=PARTITION_START, default_timezone=landing.timezone(),
                            run_id=context.run.run_id)

    def log_progress(done: int, total: int, result: FileResult) -> None:
        rate = result.lines_read / result.seconds if result.seconds else 0.0
        context.log.info(f"file {done}/{total} {result.path}: {result.status}, {result.lines_read} lines, "
                         f"{result.loaded} loaded, {result.quarantined} quarantined, {result.duplicates} duplicates"
                         + (f", {rate:,.0f} lines/s" if rate else "") + (f" - {result.error}" if result.error else ""))

    try:
        report = ingest_landing(warehouse.engine(), landing.folder(), options, progress=log_progress)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise Failure(description=str(exc), metadata={"landing": str(landing.folder())}) from exc
    days = report_changed_days(context, warehouse.engine())
    yield from _results(report, days)


def report_changed_days(context: AssetExecutionContext, engine: Engine) -> int:
    """Record a materialization of each day of ``staged_events`` whose events changed, with that
    day's figures, then forget those changes; returns the number of days. Recording comes first: a
    crash in between reports a day twice (one extra rebuild), never zero times."""
    with engine.begin() as conn:
        changes = pending_day_changes(conn)
        figures = day_figures(conn, list(changes))
        for day, event_types in changes.items():
            context.log_event(AssetMaterialization(asset_key=staged_events.key, partition=day.isoformat(), metadata={
                **figures[day], "changed_event_types": ", ".join(sorted(event_types))}))
        clear_day_changes(conn, changes)
    if changes:
        context.log.info(f"staged events changed on {len(changes)} day(s): {min(changes)}..{max(changes)}")
    return len(changes)


def _results(report: IngestReport, days_changed: int) -> Iterator[MaterializeResult]:
    ingested = [f for f in report.files if f.status == "ingested"]
    failed = [f for f in report.files if f.status == "failed"]
    lines = report.total("lines_read")
    yield MaterializeResult(asset_key="ingested_files", metadata={
        "files_ingested": len(ingested),
        "files_already_ingested": sum(f.status == "already_ingested" for f in report.files),
        "files_failed": len(failed),
        "files_ignored": len(report.ignored),
        "lines_read": lines,
        "events_per_second": round(lines / report.seconds, 1) if report.seconds else 0.0,
        "seconds": round(report.seconds, 3),
        "conservation_holds": all(f.conserved for f in ingested),
        "days_changed": days_changed,
        "events_loaded": report.total("loaded"),
        "duplicates_skipped": report.total("duplicates"),
        "conflict_evictions": report.total("evicted"),
        "files": MetadataValue.md(_files_table(report)),
        **({"failures": MetadataValue.md("\n".join(f"- {f.error}" for f in failed))} if failed else {}),
    })
    reasons: dict[str, int] = {}
    for f in ingested:
        for code, count in f.reason_counts.items():
            reasons[code] = reasons.get(code, 0) + count
    examples = [e for f in ingested for e in f.examples][:10]
    yield MaterializeResult(asset_key="quarantined_events", metadata={
        "rows_quarantined": report.total("quarantined"),
        "quarantine_rate": round(report.total("quarantined") / lines, 6) if lines else 0.0,
        **{f"reason_{code}": count for code, count in sorted(reasons.items())},
        "examples": MetadataValue.md("\n".join(f"- `{e}`" for e in examples) or "none"),
    })


def _files_table(report: IngestReport) -> str:
    header = "| file | status | lines | loaded | quarantined | duplicates |\n|---|---|---:|---:|---:|---:|\n"
    rows = [f"| {f.path} | {f.status} | {f.lines_read} | {f.loaded} | {f.quarantined} | {f.duplicates} |"
            for f in report.files[:50]]
    more = [f"\n… and {len(report.files) - 50} more files"] if len(report.files) > 50 else []
    return header + "\n".join(rows) + "".join(more)
