"""Everything Dagster loads: assets, checks, jobs, sensors, schedules and resources
(``workspace.yaml`` and ``pyproject.toml`` both point here).

``defs`` is built when the code location loads (``@definitions``), not when this module is imported,
so the environment is read then: each resource field that comes from the environment is an
``EnvVar`` (resolved by Dagster in each run, never shown in the UI), and the sensor interval and
schedule time come from ``settings``.
"""

from __future__ import annotations

import os

from dagster import (
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    build_sensor_for_freshness_checks,
    definitions,
    in_process_executor,
)

from perf_pipeline import settings
from perf_pipeline.aggregates.assets import AGGREGATE_ASSETS
from perf_pipeline.aggregates.checks import build_freshness_checks
from perf_pipeline.alerts.assets import ALERT_ASSETS
from perf_pipeline.automation import build_automation_sensor
from perf_pipeline.events.assets import DAILY_EVENT_ASSETS, objective_templates_asset
from perf_pipeline.ingest.assets import ingest_landing_files, staged_events
from perf_pipeline.ingest.checks import ingest_conservation, quarantine_share
from perf_pipeline.ingest.sensors import build_landing_sensor
from perf_pipeline.jobs import JOBS
from perf_pipeline.notify.sensors import build_notification_sender, build_run_failure_notifier
from perf_pipeline.reports.assets import REPORT_ASSETS
from perf_pipeline.resources import (
    AggregatesResource,
    AlertsResource,
    LandingZoneResource,
    NotifyResource,
    ReportsResource,
    ScoringResource,
    WarehouseResource,
)
from perf_pipeline.schedules import build_daily_schedule, build_weekly_schedule
from perf_pipeline.scoring.assets import SCORING_ASSETS, price_table_asset
from perf_pipeline.scoring.sensors import late_feedback_sensor

ASSETS = [ingest_landing_files, staged_events, objective_templates_asset, price_table_asset, *DAILY_EVENT_ASSETS,
          *SCORING_ASSETS, *AGGREGATE_ASSETS, *ALERT_ASSETS, *REPORT_ASSETS]

# resource -> field -> the environment variable it comes from, when that is set (otherwise the
# field's default, which the resource resolves at run time).
RESOURCE_ENV = {
    "warehouse": {"url": "PERF_WAREHOUSE_URL"},
    "landing": {"path": "PERF_LANDING_DIR", "default_timezone": "PERF_DEFAULT_TIMEZONE"},
    "scoring": {"config_path": "PERF_SCORING_CONFIG", "judge_api_key": "OPENAI_API_KEY",
                "judge_base_url": "OPENAI_BASE_URL", "judge_model": "PERF_JUDGE_MODEL"},
    "aggregates": {"config_path": "PERF_AGGREGATES_CONFIG"},
    "alerts": {"config_path": "PERF_ALERTS_CONFIG"},
    "reports": {"path": "PERF_REPORTS_DIR"},
    "notify": {"slack_token": "SLACK_BOT_TOKEN", "slack_channel": "PERF_SLACK_CHANNEL",
               "escalation_channel": "PERF_SLACK_ESCALATION_CHANNEL", "slack_base_url": "PERF_SLACK_BASE_URL",
               "webhook_urls": "PERF_WEBHOOK_URLS", "webhook_secret": "PERF_WEBHOOK_SECRET"},
}
RESOURCE_TYPES = {"warehouse": WarehouseResource, "landing": LandingZoneResource, "scoring": ScoringResource,
                  "aggregates": AggregatesResource, "alerts": AlertsResource, "notify": NotifyResource,
                  "reports": ReportsResource}


def build_resources() -> dict[str, object]:
    """Resources whose environment-backed fields are ``EnvVar``s of the variables that are set.

    An ``EnvVar`` is only the variable's name until Dagster resolves it for a run; outside a run,
    use ``initialized`` (``launcher.py``)."""
    return {name: RESOURCE_TYPES[name](**{field: EnvVar(variable) for field, variable in fields.items()
                                          if os.environ.get(variable)})
            for name, fields in RESOURCE_ENV.items()}


def build_definitions() -> Definitions:
    schedule_time = settings.daily_schedule_time()
    freshness = build_freshness_checks(schedule_time)
    return Definitions(
        assets=ASSETS,
        asset_checks=[ingest_conservation, quarantine_share, *freshness],
        jobs=JOBS,
        sensors=[build_landing_sensor(settings.sensor_seconds()), late_feedback_sensor,
                 build_automation_sensor(settings.sensor_seconds()),
                 build_sensor_for_freshness_checks(freshness_checks=freshness, name="freshness_checks_sensor",
                                                   default_status=DefaultSensorStatus.RUNNING),
                 build_notification_sender(settings.sensor_seconds()),
                 build_run_failure_notifier(settings.sensor_seconds())],
        schedules=[build_daily_schedule(schedule_time), build_weekly_schedule(schedule_time)],
        resources=build_resources(),
        # Each step is a short warehouse transaction: a process per step (the default executor)
        # spends several seconds importing the project before a step of one or two, and the
        # warehouse pool lets only two steps run at once anyway.
        executor=in_process_executor,
    )


@definitions
def defs() -> Definitions:
    settings.tune_garbage_collection()  # Dagster loads the code location in the processes that run the steps
    return build_definitions()
