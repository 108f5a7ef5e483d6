"""Checks on the ingest: conservation, recomputed from the tables rather than trusted from counters, and
the share of lines quarantined."""


import sqlalchemy as sa
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from perf_pipeline.resources import WarehouseResource
from perf_pipeline.warehouse.schema import ingested_files, quarantined_events, staged_events


def conservation_violations(conn: sa.Connection) -> list[dict]:
    """Ingested files where lines read != events staged + rows quarantined + duplicates skipped."""
    staged = (sa.select(staged_events.c.file_id, sa.func.count().label("n"))
              .group_by(staged_events.c.file_id).subquery())
    quarantined = (sa.select(quarantined_events.c.file_id, sa.func.count().label("n"))
                   .group_by(quarantined_events.c.file_id).subquery())
    loaded = sa.func.coalesce(staged.c.n, 0)
    rejected = sa.func.coalesce(quarantined.c.n, 0)
    query = (sa.select(ingested_files.c.file_id, ingested_files.c.path, ingested_files.c.lines_read,
                       loaded.label("loaded"), rejected.label("quarantined"), ingested_files.c.duplicates_skipped)
             .select_from(ingested_files.outerjoin(staged, staged.c.file_id == ingested_files.c.file_id)
                          .outerjoin(quarantined, quarantined.c.file_id == ingested_files.c.file_id))
             .where(ingested_files.c.status == "ingested",
                    ingested_files.c.lines_read != loaded + rejected + ingested_files.c.duplicates_skipped))
    return [dict(row._mapping) for row in conn.execute(query)]


@asset_check(asset="ingested_files", blocking=True, description=(
    "For every ingested file: lines read = events staged + rows quarantined + duplicates skipped, "
    "counted from the tables. Blocking: nothing flows on from an ingest that lost or invented rows."))
def ingest_conservation(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.engine().connect() as conn:
        violations = conservation_violations(conn)
        files = conn.execute(sa.select(sa.func.count()).select_from(ingested_files)
                             .where(ingested_files.c.status == "ingested")).scalar_one()
    table = "\n".join(f"- {v['path']}: {v['lines_read']} read != {v['loaded']} + {v['quarantined']} + "
                      f"{v['duplicates_skipped']}" for v in violations[:20])
    return AssetCheckResult(passed=not violations, severity=AssetCheckSeverity.ERROR, metadata={
        "files_checked": files, "files_violating": len(violations),
        **({"violations": MetadataValue.md(table)} if violations else {})})


MAX_QUARANTINE_SHARE = 0.05  # of the lines of the latest ingest run


@asset_check(asset="quarantined_events", description=(
    f"Warns when more than {MAX_QUARANTINE_SHARE:.0%} of the lines of the latest ingest run were quarantined: a "
    "producer probably changed its log format. Nothing is lost (the lines and their reasons are in "
    "quarantined_events); the check says someone should look."))
def quarantine_share(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.engine().connect() as conn:
        latest_run = conn.execute(sa.select(ingested_files.c.run_id).where(ingested_files.c.status == "ingested")
                                  .order_by(ingested_files.c.file_id.desc()).limit(1)).scalar()
        lines, quarantined = conn.execute(sa.select(
            sa.func.coalesce(sa.func.sum(ingested_files.c.lines_read), 0),
            sa.func.coalesce(sa.func.sum(ingested_files.c.quarantined), 0)).where(
            ingested_files.c.status == "ingested", ingested_files.c.run_id == latest_run)).one()
    lines, quarantined = int(lines), int(quarantined)  # PostgreSQL sums are Decimals
    share = quarantined / lines if lines else 0.0
    return AssetCheckResult(passed=share <= MAX_QUARANTINE_SHARE, severity=AssetCheckSeverity.WARN, metadata={
        "share": round(share, 4), "limit": MAX_QUARANTINE_SHARE, "lines": lines, "quarantined": quarantined,
        "run_id": latest_run or "none"})
