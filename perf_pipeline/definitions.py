"""Everything Dagster loads: assets, checks, jobs and resources (``workspace.yaml`` and
``pyproject.toml`` both point here)."""

from __future__ import annotations

import os

from dagster import AssetSelection, Definitions, EnvVar, define_asset_job

from perf_pipeline.events.assets import DAILY_EVENT_ASSETS, objective_templates_asset
from perf_pipeline.ingest.assets import ingest_landing_files
from perf_pipeline.ingest.checks import ingest_conservation
from perf_pipeline.resources import LandingZoneResource, WarehouseResource

ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.assets(ingest_landing_files, objective_templates_asset),
    description="Ingest new landing files into staging and quarantine; refresh the objective templates.",
)

daily_events_job = define_asset_job(
    "daily_events_job",
    selection=AssetSelection.assets(*DAILY_EVENT_ASSETS),  # daily partitions, inferred from the assets
    description="Cut the typed daily event tables for a day (or, as one run, a range of days).",
)


def build_resources() -> dict[str, object]:
    """Resources from the environment; the URL goes through EnvVar so it is never shown in the UI."""
    warehouse = (WarehouseResource(url=EnvVar("PERF_WAREHOUSE_URL")) if os.environ.get("PERF_WAREHOUSE_URL")
                 else WarehouseResource())
    return {"warehouse": warehouse, "landing": LandingZoneResource()}


defs = Definitions(
    assets=[ingest_landing_files, objective_templates_asset, *DAILY_EVENT_ASSETS],
    asset_checks=[ingest_conservation],
    jobs=[ingest_job, daily_events_job],
    resources=build_resources(),
)
