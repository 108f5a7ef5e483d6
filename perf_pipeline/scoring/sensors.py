"""Re-score days whose tasks received feedback or peer reviews after they were scored.

Stateless reconciliation instead of a cursor: each score row records how many feedback events and
reviews it was computed from, and ``stale_score_days`` compares that with what the warehouse holds
now. The run key names the day and what it is missing, so one state of staleness asks for one run;
new late feedback for the same day asks again.
"""

from dagster import AssetKey, DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from perf_pipeline.resources import WarehouseResource
from perf_pipeline.scoring.store import stale_score_days

RESCORED_ASSETS = [AssetKey("task_scores"), AssetKey("collaboration_scores")]


@sensor(name="late_feedback_sensor", asset_selection=RESCORED_ASSETS, minimum_interval_seconds=120,
        default_status=DefaultSensorStatus.RUNNING, description=(
            "Scores a day again (task_scores, then collaboration_scores) when feedback or peer reviews of its "
            "tasks arrived after it was scored. Unchanged tasks come from the judge cache."))
def late_feedback_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    with warehouse.engine().connect() as conn:
        stale = stale_score_days(conn)
    if not stale:
        yield SkipReason("every scored day is up to date with its feedback and reviews")
        return
    for day in stale:
        context.log.info(f"{day.day}: {day.tasks} task(s) got feedback or reviews after scoring")
        yield RunRequest(run_key=f"late-feedback:{day.day.isoformat()}:{day.fingerprint}",
                         partition_key=day.day.isoformat(),
                         tags={"perf_pipeline/trigger": "late_feedback", "perf_pipeline/stale_tasks": str(day.tasks)})
