"""Everything Dagster loads: assets, checks, jobs and resources (``workspace.yaml`` and
``pyproject.toml`` both point here)."""

from __future__ import annotations

import os

from dagster import AssetSelection, Definitions, EnvVar, define_asset_job

from perf_pipeline.aggregates.assets import AGGREGATE_ASSETS
from perf_pipeline.events.assets import DAILY_EVENT_ASSETS, objective_templates_asset
from perf_pipeline.ingest.assets import ingest_landing_files
from perf_pipeline.ingest.checks import ingest_conservation
from perf_pipeline.resources import LandingZoneResource, ScoringResource, WarehouseResource
from perf_pipeline.scoring.assets import SCORING_ASSETS, price_table_asset
from perf_pipeline.scoring.sensors import late_feedback_sensor

ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.assets(ingest_landing_files, objective_templates_asset, price_table_asset),
    description="Ingest new landing files into staging and quarantine; refresh the objective templates and prices.",
)

daily_events_job = define_asset_job(
    "daily_events_job",
    selection=AssetSelection.assets(*DAILY_EVENT_ASSETS),  # daily partitions, inferred from the assets
    description="Cut the typed daily event tables for a day (or, as one run, a range of days).",
)

scoring_job = define_asset_job(
    "scoring_job",
    selection=AssetSelection.assets(*SCORING_ASSETS),
    description="Score the tasks of a day (or range) and the agents' collaboration; judged tasks come from the cache.",
)

aggregates_job = define_asset_job(
    "aggregates_job",
    selection=AssetSelection.assets(*AGGREGATE_ASSETS),
    description="Daily rollups, then as of each day the rolling windows, trends, baselines and anomalies.",
)

# Environment variables each resource field is read from, when set (EnvVar keeps secrets out of the UI).
SCORING_ENV = {"config_path": "PERF_SCORING_CONFIG", "judge_api_key": "OPENAI_API_KEY",
               "judge_base_url": "OPENAI_BASE_URL", "judge_model": "PERF_JUDGE_MODEL"}


def build_resources() -> dict[str, object]:
    """Resources from the environment; the URL goes through EnvVar so it is never shown in the UI."""
    warehouse = (WarehouseResource(url=EnvVar("PERF_WAREHOUSE_URL")) if os.environ.get("PERF_WAREHOUSE_URL")
                 else WarehouseResource())
    scoring = ScoringResource(**{field: EnvVar(name) for field, name in SCORING_ENV.items() if os.environ.get(name)})
    return {"warehouse": warehouse, "landing": LandingZoneResource(), "scoring": scoring}


defs = Definitions(
    assets=[ingest_landing_files, objective_templates_asset, *DAILY_EVENT_ASSETS, price_table_asset,
            *SCORING_ASSETS, *AGGREGATE_ASSETS],
    asset_checks=[ingest_conservation],
    jobs=[ingest_job, daily_events_job, scoring_job, aggregates_job],
    sensors=[late_feedback_sensor],
    resources=build_resources(),
)
