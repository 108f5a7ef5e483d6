"""The project's named jobs, by asset group. The CLI, the sensors and the schedule launch these, so
every run in the Dagster UI says what it was for.

Defined by selection (group names), not by importing the assets, so that sensors and schedules of any
domain can target them without depending on the other domains.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

# Groups in the order the data flows; every asset of the daily groups is daily partitioned, and
# daily_report too (weekly_report is weekly).
INGEST, REFERENCE, EVENTS, SCORING, AGGREGATES, ALERTS, REPORTS = (
    "ingest", "reference", "events", "scoring", "aggregates", "alerts", "reports")
DAILY_GROUPS = (EVENTS, SCORING, AGGREGATES, ALERTS)

# Runs tagged so are queued one at a time (dagster.yaml's tag_concurrency_limits): an ingest takes
# every new file of the landing folder, so two at once would both find the same files.
SERIAL_TAG = {"perf_pipeline/serial": "ingest"}

ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.groups(INGEST, REFERENCE),
    tags=SERIAL_TAG,
    description=("Ingest new landing files into staging and quarantine, record the days whose events changed, "
                 "and refresh the objective templates and prices. Launched by the landing sensor."))

daily_job = define_asset_job(
    "daily_job",
    selection=AssetSelection.groups(*DAILY_GROUPS) | AssetSelection.assets("daily_report"),
    description=("Every daily asset for a day (or, as one run, a range of days): event tables, scores, rollups, "
                 "windows, trends, baselines, rankings, alerts and the daily report. Launched by the daily "
                 "schedule, by perf-pipeline run and by backfills."))

scoring_job = define_asset_job(
    "scoring_job", selection=AssetSelection.groups(SCORING),
    description=("Score the tasks of a day (or range) and the agents' collaboration; judged tasks come from the "
                 "cache. Launched by the late feedback sensor."))

weekly_job = define_asset_job(
    "weekly_job", selection=AssetSelection.assets("weekly_report"),
    description="The weekly report of an ISO week. Launched by the weekly schedule on Mondays, and by backfills.")

JOBS = [ingest_job, daily_job, scoring_job, weekly_job]
