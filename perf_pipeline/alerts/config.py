"""The alert rules and their lifecycle: ``alerts.yaml`` in this package, with the user's file
(``PERF_ALERTS_CONFIG``) merged over it (``perf_pipeline.config``).

A rule has a name, a severity, the entity types it watches, a window, and one condition: a
threshold on a ``window_stats`` metric, an ``anomalies`` row, or a significant ``trends``
direction. The rules are checked against the aggregates' configuration too (``unfed_rules``): a
rule on a window or metric the aggregates do not compute would never fire, so it is left out and
reported by the ``rules_fed`` check (a warning).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from perf_pipeline.aggregates.config import AggregatesConfig
from perf_pipeline.aggregates.rollups import WINDOWED_ENTITY_TYPES
from perf_pipeline.aggregates.windows import METRICS
from perf_pipeline.config import MAX_WINDOW_DAYS, Strict, load_config

CONFIG_ENV = "PERF_ALERTS_CONFIG"
SEVERITIES = ("warning", "critical")
EntityType = Literal[tuple(WINDOWED_ENTITY_TYPES)]  # type: ignore[valid-type]
WindowMetric = Literal[tuple(METRICS)]  # type: ignore[valid-type]


class Threshold(Strict):
    """Fires when the window's metric is below or above a value (per entity where listed)."""

    kind: Literal["threshold"]
    metric: WindowMetric
    below: float | None = None
    above: float | None = None
    per_entity: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below or above")
        return self

    def limit(self, entity_id: str) -> float:
        return self.per_entity.get(entity_id, self.below if self.below is not None else self.above)

    def breached(self, value: float, entity_id: str) -> bool:
        limit = self.limit(entity_id)
        return value < limit if self.below is not None else value > limit


class Anomaly(Strict):
    """Fires on an ``anomalies`` row of the day (|robust z| beyond the threshold) in ``direction``."""

    kind: Literal["anomaly"]
    direction: Literal["worse", "better", "any"] = "worse"
    metrics: list[str] | None = None  # None: every anomaly metric


class Trend(Strict):
    """Fires when the window's trend of ``metric`` is significant in ``direction``."""

    kind: Literal["trend"]
    metric: str
    direction: Literal["declining", "improving"] = "declining"


class Rule(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    severity: Literal[SEVERITIES]  # type: ignore[valid-type]
    entity_types: list[EntityType] = Field(min_length=1)
    window_days: int | None = Field(None, ge=1, le=MAX_WINDOW_DAYS)
    condition: Annotated[Threshold | Anomaly | Trend, Field(discriminator="kind")]

    @model_validator(mode="after")
    def _window(self) -> Rule:
        needs_window = self.condition.kind != "anomaly"
        if needs_window and self.window_days is None:
            raise ValueError(f"a {self.condition.kind} rule needs window_days")
        if not needs_window and self.window_days is not None:
            raise ValueError("an anomaly rule has no window_days: anomalies use the aggregates' baseline_days")
        return self


class Lifecycle(Strict):
    resolve_after_days: int = Field(2, ge=1, le=30)
    repeat_interval_days: int = Field(3, ge=1)
    escalate_after_days: int = Field(3, ge=1)
    notify_lookback_days: int = Field(2, ge=0, le=MAX_WINDOW_DAYS)


class Delivery(Strict):
    max_attempts: int = Field(8, ge=1, le=100)
    backoff_seconds: float = Field(30, gt=0)
    max_backoff_seconds: float = Field(3600, gt=0)
    messages_per_tick: int = Field(40, ge=1, le=1000)


class AlertsConfig(Strict):
    lifecycle: Lifecycle = Lifecycle()
    delivery: Delivery = Delivery()
    owners: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsConfig:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique; repeated: {duplicates}")
        return self

    def rule(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)

    def owners_of(self, rule: str, entity_ids: list[str]) -> list[str]:
        """Who an escalation of ``rule`` about ``entity_ids`` mentions, each once, in order."""
        found: list[str] = []
        for key in (*entity_ids, rule, "*"):
            found.extend(owner for owner in self.owners.get(key, []) if owner not in found)
        return found


def load_alerts_config(path: str | Path | None = None) -> AlertsConfig:
    """``alerts.yaml`` with ``path`` (or ``$PERF_ALERTS_CONFIG``) merged over it."""
    return load_config(AlertsConfig, "perf_pipeline.alerts", "alerts.yaml", CONFIG_ENV, path)


def unfed_rules(config: AlertsConfig, aggregates: AggregatesConfig) -> dict[str, str]:
    """The rules the aggregates cannot feed, with why: a window they do not compute, a trend of a
    metric they do not fit, anomalies of metrics they do not watch. Such a rule would never fire."""
    problems: dict[str, str] = {}
    for rule in config.rules:
        if rule.window_days is not None and rule.window_days not in aggregates.windows:
            problems[rule.name] = (f"rules[{rule.name}].window_days: {rule.window_days} is not one of the "
                                   f"aggregates' windows {aggregates.windows}")
        if rule.condition.kind == "trend" and rule.condition.metric not in aggregates.trend_metrics:
            problems[rule.name] = (f"rules[{rule.name}].condition.metric: no trend of {rule.condition.metric!r} is "
                                   f"computed (trend_metrics: {aggregates.trend_metrics})")
        if rule.condition.kind == "anomaly":
            unknown = sorted(set(rule.condition.metrics or []) - set(aggregates.anomaly_metrics))
            if unknown:
                problems[rule.name] = (f"rules[{rule.name}].condition.metrics: {unknown} are not anomaly metrics "
                                       f"(anomaly_metrics: {aggregates.anomaly_metrics})")
    return problems
