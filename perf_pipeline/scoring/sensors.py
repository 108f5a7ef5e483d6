"""Re-score days whose tasks received feedback or peer reviews after they were scored.

Stateless reconciliation instead of a cursor: each score row records how many feedback events and
reviews it was computed from, and ``stale_score_days`` compares that with what the warehouse holds
now. The run key names the day and what it is missing, so one state of staleness asks for one run;
new late feedback for the same day asks again. The days after it whose figures hold the new scores
(collaboration, rollups, windows) follow by the daily assets' automation condition.

Feedback can land any number of days after its task, so no partition mapping can say which day it
changes; this sensor is where that rule lives.
"""

from dagster import AssetKey, DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from perf_pipeline.jobs import scoring_job
from perf_pipeline.resources import WarehouseResource
from perf_pipeline.scoring.store import stale_score_days

TASK_SCORES = AssetKey("task_scores")


@sensor(name="late_feedback_sensor", job=scoring_job, minimum_interval_seconds=120,
        default_status=DefaultSensorStatus.RUNNING, description=(
            "Scores a day again (task_scores) when feedback or peer reviews of its tasks arrived after it was "
            "scored. Unchanged tasks come from the judge cache."))
def late_feedback_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    with warehouse.engine().connect() as conn:
        stale = stale_score_days(conn)
    if not stale:
        yield SkipReason("every scored day is up to date with its feedback and reviews")
        return
    for day in stale:
        context.log.info(f"{day.day}: {day.tasks} task(s) got feedback or reviews after scoring")
        yield RunRequest(run_key=f"late-feedback:{day.day.isoformat()}:{day.fingerprint}",
                         partition_key=day.day.isoformat(), asset_selection=[TASK_SCORES],
                         tags={"perf_pipeline/trigger": "late_feedback", "perf_pipeline/stale_tasks": str(day.tasks)})
