"""The alert conditions read only the rows their rules can hold on: the same conditions as from
every row of window_stats, anomalies and trends."""

from __future__ import annotations

import datetime as dt
import json
import random

import pandas as pd
import sqlalchemy as sa
import yaml

from perf_pipeline.aggregates.rollups import WINDOWED_ENTITY_TYPES
from perf_pipeline.alerts.config import Rule, load_alerts_config
from perf_pipeline.alerts.rules import held_conditions
from perf_pipeline.alerts.store import read_sources
from perf_pipeline.warehouse.db import read_frame, to_python_date, warehouse_engine
from perf_pipeline.warehouse.schema import anomalies, trends, window_stats

FIRST = dt.date(2026, 5, 1)
DAYS = [FIRST + dt.timedelta(days=k) for k in range(4)]
EXTRA_RULES = """
- {name: improving_success, severity: warning, entity_types: [agent, model], window_days: 7,
     condition: {kind: trend, metric: success_rate, direction: improving}}
- {name: any_anomaly, severity: warning, entity_types: [provider_task_type, agent],
     condition: {kind: anomaly, direction: any, metrics: [success_rate, avg_cost_per_task]}}
- {name: costly_models, severity: warning, entity_types: [model], window_days: 30,
     condition: {kind: threshold, metric: avg_cost_per_task, above: 0.5}}
"""


def _row(table: sa.Table, rng: random.Random, **given: object) -> dict[str, object]:
    """``given`` values; every other column random (floats, null in a tenth), or a filler when not nullable."""
    row = {}
    for column in table.columns:
        if column.name in given:
            row[column.name] = given[column.name]
        elif isinstance(column.type, sa.Float):
            scale = 40_000 if "time_ms" in column.name else 2 if "cost" in column.name else 1
            row[column.name] = None if column.nullable and rng.random() < 0.1 else rng.uniform(0, scale)
        elif isinstance(column.type, sa.Integer):
            row[column.name] = rng.randint(0, 60)
        elif column.nullable:
            row[column.name] = None
        else:
            row[column.name] = "x"
    return row


def plant(url: str, rng: random.Random) -> None:
    stats, found, fitted = [], [], []
    for day in [*DAYS, DAYS[0] - dt.timedelta(days=1), DAYS[-1] + dt.timedelta(days=1)]:
        for kind in WINDOWED_ENTITY_TYPES:
            for n in range(6):
                entity = f"{kind}-{n}"
                for window in (7, 30, 90):
                    stats.append(_row(window_stats, rng, entity_type=kind, entity_id=entity, as_of_date=day,
                                      window_days=window, status=rng.choice(["ok", "ok", "insufficient_data"])))
                    for metric in ("avg_overall_score", "success_rate", "avg_cost_per_task"):
                        fitted.append(_row(trends, rng, entity_type=kind, entity_id=entity, as_of_date=day,
                                           window_days=window, metric=metric, direction=rng.choice(
                                               ["improving", "stable", "declining", "insufficient_data"])))
                for metric in ("success_rate", "avg_cost_per_task", "p95_response_time_ms"):
                    found.append(_row(anomalies, rng, entity_type=kind, entity_id=entity, date=day, metric=metric,
                                      is_anomaly=rng.random() < 0.5, direction=rng.choice(["worse", "better"])))
    with warehouse_engine(url).begin() as conn:
        for table, rows in ((window_stats, stats), (anomalies, found), (trends, fitted)):
            conn.execute(table.insert(), rows)


def every_row(conn: sa.Connection, table: sa.Table, date_column: str):
    frame = read_frame(conn, sa.select(table).where(table.c[date_column].between(DAYS[0], DAYS[-1])))
    frame[date_column] = frame[date_column].map(to_python_date)
    return frame


def test_the_conditions_from_the_rules_rows_equal_those_from_every_row(warehouse_url: str) -> None:
    """The default rules and a few more (each kind, several entity types, windows and directions)."""
    rules = load_alerts_config().rules + [Rule.model_validate(rule) for rule in yaml.safe_load(EXTRA_RULES)]
    assert {type(rule.condition).__name__ for rule in rules} == {"Threshold", "Anomaly", "Trend"}
    plant(warehouse_url, random.Random(5))
    with warehouse_engine(warehouse_url).connect() as conn:
        pruned = held_conditions(rules, *read_sources(conn, DAYS[0], DAYS[-1], rules))
        full = held_conditions(rules, every_row(conn, window_stats, "as_of_date"),
                               every_row(conn, anomalies, "date"), every_row(conn, trends, "as_of_date"))
        assert read_sources(conn, DAYS[0], DAYS[-1], [])[0].empty
    assert len(full) > 100 and set(full["rule"]) == {rule.name for rule in rules}
    for held in (pruned, full):  # evidence dicts compared as text: NaN equals NaN there
        held["evidence"] = held["evidence"].map(json.dumps)
    pd.testing.assert_frame_equal(pruned, full, check_exact=True)
