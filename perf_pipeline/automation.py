"""The one rule that keeps the daily assets up to date: a partition is rebuilt when a partition it
depends on changed. Which partitions depend on which is said by each asset's partition mappings
(``partitions.py``), so a change to an old day flows to the later days whose windows, baselines or
leniency hold it, and no further.

Dagster's ``eager()`` is not used: it only considers the latest partition, waits while any upstream
partition is missing (a 90-day window is never complete in a deployment's first 89 days) and ignores
an upstream update made by a run that also targeted the asset, which would leave the days after a
backfilled range stale. The condition here is evaluated by the daemon's automation sensor and, in
process, by ``perf-pipeline run``.
"""

from __future__ import annotations

from dagster import AssetSelection, AutomationCondition, AutomationConditionSensorDefinition, DefaultSensorStatus

# Unpartitioned reference tables: every day depends on them, so their refresh (each ingest run) must
# not rebuild all of history. A changed price or template reaches history by a backfill.
REFERENCE_ASSETS = AssetSelection.assets("price_table", "objective_templates")


def rebuild_when_upstream_changes(ignore: AssetSelection | None = None) -> AutomationCondition:
    """True for a partition once a partition it depends on was updated (or is requested on the same
    evaluation), until it is requested or rebuilt; held while it or an upstream partition is in
    progress (the reference tables excepted: an ingest refreshes them after recording the changed
    days, and holding on them would split one file's rebuild into several backfills).
    ``ignore``: upstream assets whose updates another mechanism handles."""
    upstream_changed = AutomationCondition.any_deps_match(
        AutomationCondition.newly_updated() | AutomationCondition.will_be_requested())
    condition = (upstream_changed.ignore(REFERENCE_ASSETS | ignore if ignore else REFERENCE_ASSETS)
                 .since_last_handled()
                 & ~AutomationCondition.any_deps_in_progress().ignore(REFERENCE_ASSETS)
                 & ~AutomationCondition.in_progress())
    return condition.with_label("rebuild when an upstream partition changes")


def build_automation_sensor(minimum_interval_seconds: int) -> AutomationConditionSensorDefinition:
    """The sensor that evaluates the conditions, running from the start (no click in the UI needed),
    every ``minimum_interval_seconds`` (``PERF_SENSOR_SECONDS``)."""
    return AutomationConditionSensorDefinition(
        "daily_assets_automation", target=AssetSelection.all(), default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=minimum_interval_seconds,
        # Dagster runs what this sensor requests as backfills of its own asset job, not of a named
        # job: the tag says, in the UI's run list, that the automation condition launched them.
        run_tags={"perf_pipeline/trigger": "automation"}, description=(
            "Evaluates every daily asset's automation condition: partitions whose upstream partitions changed "
            "are requested, as one backfill per evaluation."))
