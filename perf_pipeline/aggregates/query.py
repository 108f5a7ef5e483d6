"""Read the aggregate tables for people: ``perf-pipeline query`` and ``perf-pipeline recommend``.

Every filter is a bound parameter of a SQLAlchemy select (never text pasted into SQL), so a value
such as ``x' OR '1'='1`` is just a name that matches nothing. Without ``--from``/``--to`` a query
shows the latest day the table has, which is what a stakeholder asking "where do we stand" means.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_pipeline.aggregates.config import ProviderRankingConfig
from perf_pipeline.warehouse.schema import (
    alerts,
    anomalies,
    daily_rollups,
    leaderboard,
    provider_rankings,
    trends,
    window_stats,
)


class QueryError(ValueError):
    """A query the user can correct (a filter that does not apply, an unknown task type)."""


@dataclass(frozen=True)
class Filters:
    entity_type: str | None = None
    entity: str | None = None
    department: str | None = None
    project: str | None = None
    first: dt.date | None = None
    last: dt.date | None = None
    window: int | None = None
    metric: str | None = None
    task_type: str | None = None


@dataclass(frozen=True)
class View:
    """What a query reads: its table, date column, sort order and the columns a table print shows."""

    table: sa.Table
    date_column: str
    order: tuple[str, ...]
    brief: tuple[str, ...]
    filters: frozenset[str]


_ENTITY_FILTERS = frozenset({"entity_type", "entity", "department", "project", "window"})
VIEWS = {
    "window-stats": View(window_stats, "as_of_date", ("as_of_date", "entity_type", "entity_id", "window_days"),
                         ("as_of_date", "entity_type", "entity_id", "window_days", "status", "n_tasks",
                          "success_rate", "avg_quality_score", "avg_overall_score", "avg_cost_per_task",
                          "p95_response_time_ms"), _ENTITY_FILTERS),
    "trends": View(trends, "as_of_date", ("as_of_date", "entity_type", "entity_id", "window_days", "metric"),
                   ("as_of_date", "entity_type", "entity_id", "window_days", "metric", "n_points", "slope_per_day",
                    "slope_low", "slope_high", "mann_kendall_p", "direction"), _ENTITY_FILTERS | {"metric"}),
    "leaderboard": View(leaderboard, "as_of_date", ("as_of_date", "window_days", "rank", "agent_id"),
                        ("as_of_date", "window_days", "rank", "agent_id", "department", "status", "n_tasks",
                         "avg_overall_score", "success_rate", "avg_cost_per_task"),
                        frozenset({"entity", "department", "project", "window"})),
    "anomalies": View(anomalies, "date", ("date", "entity_id", "metric"),
                      ("date", "entity_type", "entity_id", "metric", "observed", "baseline_median", "robust_z",
                       "direction"), frozenset({"entity", "metric"})),
    "provider-rankings": View(provider_rankings, "as_of_date", ("as_of_date", "task_type", "rank", "provider",
                                                                "model"),
                              ("as_of_date", "task_type", "rank", "provider", "model", "status", "n_tasks",
                               "avg_quality_score", "avg_cost_per_task", "p50_response_time_ms", "utility"),
                              frozenset({"entity", "task_type"})),
    "alerts": View(alerts, "as_of_date", ("as_of_date", "rule", "entity_type", "entity_id"),
                   ("as_of_date", "rule", "entity_type", "entity_id", "status", "severity", "started_on", "metric",
                    "observed", "threshold", "baseline", "n_tasks", "silenced_by"),
                   frozenset({"entity_type", "entity", "metric"})),
}
_OPTION = {"entity_type": "--entity-type", "entity": "--entity", "department": "--department",
           "project": "--project", "window": "--window", "metric": "--metric", "task_type": "--task-type"}


def _members(kind: str, value: str) -> sa.Select:
    """Agents that worked for a department or project (any day), from the *_agent rollups."""
    column = daily_rollups.c.department if kind == "department" else daily_rollups.c.project_id
    return (sa.select(daily_rollups.c.agent_id).distinct()
            .where(daily_rollups.c.entity_type == f"{kind}_agent", column == value))


def build_query(name: str, filters: Filters) -> sa.Select:
    """The select of query ``name`` with ``filters``; raises QueryError for a filter that does not apply."""
    view = VIEWS[name]
    given = {field for field in _OPTION if getattr(filters, field) not in (None, "")}
    unsupported = sorted(given - view.filters)
    if unsupported:
        raise QueryError(f"{', '.join(_OPTION[f] for f in unsupported)} does not apply to {name}; "
                         f"it takes {', '.join(sorted(_OPTION[f] for f in view.filters))}, --from and --to")
    table = view.table
    columns = table.c
    query = sa.select(table)
    if filters.first is None and filters.last is None:
        query = query.where(columns[view.date_column] == sa.select(sa.func.max(columns[view.date_column]))
                            .scalar_subquery())
    if filters.first is not None:
        query = query.where(columns[view.date_column] >= filters.first)
    if filters.last is not None:
        query = query.where(columns[view.date_column] <= filters.last)
    if filters.window is not None:
        query = query.where(columns.window_days == filters.window)
    if filters.metric:
        query = query.where(columns.metric == filters.metric)
    if filters.task_type:
        query = query.where(columns.task_type == filters.task_type)
    if filters.entity_type:
        query = query.where(columns.entity_type == filters.entity_type)
    if filters.entity:
        if name == "leaderboard":
            query = query.where(columns.agent_id == filters.entity)
        elif name == "provider-rankings":
            query = query.where(sa.or_(columns.provider == filters.entity, columns.model == filters.entity))
        else:
            query = query.where(columns.entity_id == filters.entity)
    for kind in ("department", "project"):
        value = getattr(filters, kind)
        if not value:
            continue
        if name == "leaderboard":
            query = query.where(columns.department == value if kind == "department"
                                else columns.agent_id.in_(_members(kind, value)))
        else:  # the department (project) itself and its agents
            query = query.where(sa.or_(sa.and_(columns.entity_type == kind, columns.entity_id == value),
                                       sa.and_(columns.entity_type == "agent",
                                               columns.entity_id.in_(_members(kind, value)))))
    order = []
    for column in view.order:  # unranked rows last, on SQLite and PostgreSQL alike
        order += [columns.rank.is_(None), columns.rank] if column == "rank" else [columns[column]]
    return query.order_by(*order)


def run_query(conn: Connection, name: str, filters: Filters) -> list[dict]:
    return [dict(row._mapping) for row in conn.execute(build_query(name, filters))]


def _cell(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def render(rows: Sequence[dict], fmt: str, brief: Sequence[str] | None = None) -> str:
    """Rows as an aligned text table (``brief`` columns), CSV or JSON (all columns)."""
    if fmt == "json":
        return json.dumps([{k: _cell(v) for k, v in row.items()} for row in rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
        return out.getvalue().rstrip("\n")
    if not rows:
        return "(no rows)"
    columns = [c for c in (brief or list(rows[0])) if c in rows[0]]
    cells = [[_text(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _text(value: object) -> str:
    value = _cell(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def recommendation(conn: Connection, task_type: str, config: ProviderRankingConfig,
                   as_of: dt.date | None = None) -> str:
    """The provider/model to use for ``task_type``, with the evidence, from ``provider_rankings``
    (``config``: the ranking's configuration, to state the utility it used)."""
    rankings = provider_rankings.c
    day = as_of or conn.execute(sa.select(sa.func.max(rankings.as_of_date))
                                .where(rankings.task_type == task_type)).scalar()
    if day is None:
        known = conn.execute(sa.select(rankings.task_type).distinct().order_by(rankings.task_type)).scalars().all()
        raise QueryError(f"no provider rankings for task type {task_type!r}; known task types: "
                         + (", ".join(known) if known else "none yet (run the pipeline first)"))
    rows = run_query(conn, "provider-rankings", Filters(task_type=task_type, first=day, last=day))
    if not rows:
        raise QueryError(f"no provider rankings for task type {task_type!r} on {day}")
    window = rows[0]["window_days"]
    ranked = [r for r in rows if r["rank"] is not None]
    lines = [f"Task type {task_type}: {len(rows)} provider/model candidate(s) in the {window} days to {day}."]
    if not ranked:
        lines.append("No recommendation: no candidate has enough tasks with known quality, cost and latency.")
    else:
        best = ranked[0]
        lines.append(f"Recommended: {best['provider']} / {best['model']} (utility {best['utility']:.3f}; "
                     f"quality {best['avg_quality_score']:.3f} over {best['n_quality']} scored tasks, "
                     f"${best['avg_cost_per_task']:.4f} per task, median response "
                     f"{best['p50_response_time_ms']:.0f} ms, {best['n_tasks']} tasks).")
        if len(ranked) > 1:
            second = ranked[1]
            lines.append(f"Runner-up: {second['provider']} / {second['model']} (utility {second['utility']:.3f}, "
                         f"{best['utility'] - second['utility']:+.3f} behind).")
        lines.append(f"Utility = quality - {config.quality_per_cost_doubling:g} x log2(cost / median cost) - "
                     f"{config.quality_per_latency_doubling:g} x log2(latency / median latency); candidates need "
                     f"{config.min_tasks} tasks (README: provider rankings).")
    lines += ["", render(rows, "table", VIEWS["provider-rankings"].brief)]
    return "\n".join(lines)
