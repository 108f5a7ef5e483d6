"""Checks beside the alert assets: that notifications reach their destinations."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec
from sqlalchemy import Connection

from perf_pipeline.notify.outbox import DEAD, PENDING, counts

DELIVERY_CHECK = "notifications_delivered"
RULES_CHECK = "rules_fed"


def rules_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(RULES_CHECK, asset="alert_conditions", description=(
        "Every alert rule is fed by the aggregates: its window is computed, its trend fitted, its anomaly metrics "
        "watched (aggregates.yaml). A rule that is not would never fire; it is left out until fixed."))


def rules_check(unfed: dict[str, str], rules: int) -> AssetCheckResult:
    return AssetCheckResult(check_name=RULES_CHECK, passed=not unfed, severity=AssetCheckSeverity.WARN,
                            metadata={"rules": rules, "rules_left_out": len(unfed),
                                      **({"why": "; ".join(unfed.values())} if unfed else {})})


def delivery_check_spec() -> AssetCheckSpec:
    return AssetCheckSpec(DELIVERY_CHECK, asset="alerts", description=(
        "No notification is dead-lettered: each was delivered, or is still being retried by the notification_sender "
        "sensor. A dead one is kept in notification_outbox with its last error."))


def delivery_check(conn: Connection) -> AssetCheckResult:
    found = counts(conn)
    return AssetCheckResult(check_name=DELIVERY_CHECK, passed=found[DEAD] == 0, severity=AssetCheckSeverity.WARN,
                            metadata={**{f"notifications_{status}": n for status, n in found.items()},
                                      "retrying": found[PENDING]})
