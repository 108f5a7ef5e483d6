"""How every daily asset is declared: daily partitions, a backfill of a range as one run, the
warehouse concurrency pool, and the automation condition that rebuilds a day when a day it depends
on changed. One place, so no daily asset can miss one of them."""

from __future__ import annotations

from typing import Any

from dagster import AssetSpec, AutomationCondition, BackfillPolicy, asset, multi_asset

from perf_pipeline.automation import rebuild_when_upstream_changes
from perf_pipeline.partitions import daily_partitions
from perf_pipeline.resources import WAREHOUSE_POOL

DAILY = {"partitions_def": daily_partitions, "backfill_policy": BackfillPolicy.single_run(), "pool": WAREHOUSE_POOL}


def daily_asset(*, automation_condition: AutomationCondition | None = None, **kwargs: Any):
    """``@asset`` for a daily partitioned asset (the defaults above; ``kwargs`` as for ``@asset``)."""
    return asset(**DAILY, automation_condition=automation_condition or rebuild_when_upstream_changes(), **kwargs)


def daily_multi_asset(*, specs: list[AssetSpec], **kwargs: Any):
    """``@multi_asset`` for daily partitioned assets computed together; each spec without an
    automation condition gets the default one."""
    specs = [spec if spec.automation_condition else spec.replace_attributes(
        automation_condition=rebuild_when_upstream_changes()) for spec in specs]
    return multi_asset(**DAILY, specs=specs, **kwargs)
