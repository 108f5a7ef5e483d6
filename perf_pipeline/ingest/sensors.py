"""The landing sensor: new or changed landing files start one ingest run.

The run key is made of the new files' content hashes, so a file is ingested once however often the
sensor ticks, and a file whose content changes (an appended log) is a new key. Which files are new
is asked of the warehouse's ledger (``ingested_files``), not remembered by the sensor, so files the
CLI ingested are not ingested again. The cursor only remembers hashes, to avoid re-reading files that
did not change. A file the sensor cannot read is logged and looked at again on the next tick.
"""

from __future__ import annotations

import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from perf_pipeline.ingest.landing import batch_key, look
from perf_pipeline.ingest.store import ingested_hashes
from perf_pipeline.jobs import ingest_job
from perf_pipeline.resources import LandingZoneResource, WarehouseResource

TRIGGER_TAG = "perf_pipeline/trigger"


def build_landing_sensor(minimum_interval_seconds: int) -> SensorDefinition:
    """The landing sensor, looking every ``minimum_interval_seconds`` (``PERF_SENSOR_SECONDS``)."""

    @sensor(name="landing_sensor", job=ingest_job, minimum_interval_seconds=minimum_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING, description=(
                "Starts an ingest run when the landing folder holds files whose content was not ingested yet; "
                "the days they touch are rebuilt by the daily assets' automation condition."))
    def landing_sensor(context: SensorEvaluationContext, landing: LandingZoneResource,
                       warehouse: WarehouseResource) -> SensorResult | SkipReason:
        folder = landing.folder()
        try:
            seen = look(folder, json.loads(context.cursor) if context.cursor else {})
        except (FileNotFoundError, NotADirectoryError) as exc:
            return SkipReason(str(exc))
        for error in seen.unreadable.values():
            context.log.warning(f"{error}; trying again on the next tick")
        with warehouse.engine().connect() as conn:
            done = ingested_hashes(conn, list(seen.hashes.values()))
        new = {path: sha for path, sha in seen.hashes.items() if sha not in done}
        cursor = json.dumps(seen.memo, sort_keys=True)
        if not new:
            unreadable = f"; {len(seen.unreadable)} unreadable, tried again next tick" if seen.unreadable else ""
            return SensorResult(cursor=cursor, skip_reason=(
                f"no new files in {folder} ({len(seen.hashes)} ingested already{unreadable})"))
        context.log.info(f"{len(new)} new file(s) in {folder}: " + ", ".join(sorted(new)[:5])
                         + (" ..." if len(new) > 5 else ""))
        return SensorResult(run_requests=[RunRequest(run_key=f"landing:{batch_key(new.values())}", tags={
            TRIGGER_TAG: "landing", "perf_pipeline/new_files": str(len(new))})], cursor=cursor)

    return landing_sensor
