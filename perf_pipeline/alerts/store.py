"""Reading and writing the alert tables: held conditions, states, the notification ledger and silences."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection

from perf_pipeline.aggregates.windows import OK
from perf_pipeline.alerts.config import Anomaly, Rule, Threshold, Trend
from perf_pipeline.alerts.lifecycle import KEY, RESOLUTION, Announcement
from perf_pipeline.alerts.rules import CONDITION_COLUMNS
from perf_pipeline.warehouse.db import insert_new_rows, read_frame, to_python_date
from perf_pipeline.warehouse.schema import (
    alert_conditions,
    alert_notifications,
    alerts,
    anomalies,
    silences,
    trends,
    window_stats,
)


class SilenceError(ValueError):
    """A silence that cannot be added or expired; the message says why."""


def read_sources(conn: Connection, first: dt.date, last: dt.date,
                 rules: list[Rule]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``window_stats``, ``anomalies`` and ``trends`` rows of [first, last] that ``rules`` can hold
    on: of the entity types, windows, metrics and directions they name, windows with enough data,
    anomalies flagged as such (``held_conditions`` selects the same rows again; a fleet's windows
    are a hundred thousand rows a month, of which the rules read a few columns of a third)."""
    def matching(table: sa.Table, date_column: str, columns: list[str] | None,
                 conditions: list[sa.ColumnElement[bool]]) -> pd.DataFrame:
        selected = [table.c[name] for name in columns] if columns else list(table.c)
        frame = read_frame(conn, sa.select(*selected).where(table.c[date_column].between(first, last),
                                                            sa.or_(sa.false(), *conditions)))
        if not frame.empty:
            frame[date_column] = frame[date_column].map(to_python_date)
        return frame

    of_kind = {kind: [r for r in rules if isinstance(r.condition, kind)] for kind in (Threshold, Anomaly, Trend)}
    w, a, t = window_stats.c, anomalies.c, trends.c
    metrics = sorted({r.condition.metric for r in of_kind[Threshold]})
    stats = matching(window_stats, "as_of_date", ["as_of_date", "entity_type", "entity_id", "window_days", "status",
                                                  "n_tasks", *metrics],
                     [sa.and_(w.entity_type.in_(r.entity_types), w.window_days == r.window_days, w.status == OK)
                      for r in of_kind[Threshold]])
    found = matching(anomalies, "date", None, [sa.and_(a.entity_type.in_(r.entity_types), a.is_anomaly)
                                               for r in of_kind[Anomaly]])
    fitted = matching(trends, "as_of_date", None,
                      [sa.and_(t.entity_type.in_(r.entity_types), t.window_days == r.window_days,
                               t.metric == r.condition.metric, t.direction == r.condition.direction)
                       for r in of_kind[Trend]])
    return stats, found, fitted


# Key of the PostgreSQL advisory lock that serializes alert evaluations (a bigint of ours: "perfalrt").
ALERTS_LOCK = 0x70657266_616C7274


def begin_evaluation(conn: Connection, first: dt.date, last: dt.date) -> None:
    """Serialize the evaluations of alerts, first thing in the transaction: two runs at once (the
    schedule's and the automation's) would both read the ledger before either wrote it, and announce
    the same alert twice. PostgreSQL: an advisory lock held to the end of the transaction; SQLite:
    the write lock, taken by deleting the days' states (which the evaluation replaces anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ALERTS_LOCK})
    conn.execute(alerts.delete().where(alerts.c.as_of_date.between(first, last)))


def read_conditions(conn: Connection, first: dt.date, last: dt.date) -> pd.DataFrame:
    frame = read_frame(conn, sa.select(*[alert_conditions.c[c] for c in CONDITION_COLUMNS])
                       .where(alert_conditions.c.as_of_date.between(first, last)))
    if frame.empty:
        return pd.DataFrame(columns=CONDITION_COLUMNS)
    frame["as_of_date"] = frame["as_of_date"].map(to_python_date)
    return frame


def ledger_entries(conn: Connection, alerts: pd.DataFrame) -> list[dict[str, Any]]:
    """The ledger's entries of the rules and entities in ``alerts``, of every start (an alert firing
    for longer than the 90 days a state sees started before its ``started_on``)."""
    if alerts.empty:
        return []
    t = alert_notifications
    wanted = {(r["rule"], r["entity_type"], r["entity_id"]) for r in alerts.to_dict("records")}
    entries = []
    for row in conn.execute(sa.select(t).where(t.c.rule.in_(sorted({w[0] for w in wanted})))).mappings():
        entry = dict(row)
        if (entry["rule"], entry["entity_type"], entry["entity_id"]) in wanted:
            entry["started_on"] = to_python_date(entry["started_on"])
            entry["as_of_date"] = to_python_date(entry["as_of_date"])
            entries.append(entry)
    return entries


def open_alerts(conn: Connection) -> list[dict[str, Any]]:
    """The alerts whose firing was announced and whose resolution was not, each as its last stored
    state (``started_on`` the ledger's: the state's may be clipped to its 90 days)."""
    t = alert_notifications
    kinds = sa.func.max(sa.case((t.c.kind == RESOLUTION, 1), else_=0))
    opened = conn.execute(sa.select(t.c.rule, t.c.entity_type, t.c.entity_id, t.c.started_on)
                          .group_by(t.c.rule, t.c.entity_type, t.c.entity_id, t.c.started_on)
                          .having(kinds == 0)).all()
    found = []
    for rule, entity_type, entity_id, started_on in opened:
        last = conn.execute(sa.select(alerts).where(alerts.c.rule == rule, alerts.c.entity_type == entity_type,
                                                    alerts.c.entity_id == entity_id)
                            .order_by(alerts.c.as_of_date.desc()).limit(1)).mappings().first()
        if last is not None:
            state = dict(last)
            for column in ("as_of_date", "started_on", "last_held_on", "resolved_on"):
                state[column] = to_python_date(state[column]) if state[column] is not None else None
            found.append({**state, "started_on": to_python_date(started_on)})
    return found


def record_announcements(conn: Connection, found: Iterable[tuple[Announcement, str]], now: dt.datetime) -> None:
    """Add each (announcement, message key) to the ledger, one entry per key it carries."""
    rows = []
    for announcement, message_key in found:
        state = announcement.state
        for kind, key in announcement.entries:
            rows.append({"notification_key": key, **{c: state[c] for c in KEY}, "started_on": state["started_on"],
                         "kind": kind, "as_of_date": announcement.as_of_date, "message_key": message_key,
                         "created_at": now})
    insert_new_rows(conn, alert_notifications, rows)


def active_silences(conn: Connection, now: dt.datetime) -> list[dict[str, Any]]:
    t = silences
    query = (sa.select(t).where(t.c.starts_at <= now, t.c.ends_at > now, t.c.expired_at.is_(None))
             .order_by(t.c.silence_id))
    return [dict(row) for row in conn.execute(query).mappings()]


def silence_matcher(active: list[dict[str, Any]]):
    """A function (rule, entity_id) -> the id of the first active silence that matches, or None."""
    def match(rule: str, entity_id: str) -> int | None:
        for silence in active:
            if silence["rule"] == rule and silence["entity_id"] in (None, entity_id):
                return int(silence["silence_id"])
        return None

    return match


def add_silence(conn: Connection, rule: str, entity_id: str | None, until: dt.datetime, reason: str,
                now: dt.datetime, created_by: str | None) -> int:
    if until <= now:
        raise SilenceError(f"--until {until.isoformat()} is not in the future (now {now.isoformat()})")
    if not reason.strip():
        raise SilenceError("--reason must say why the alert is silenced")
    result = conn.execute(silences.insert().values(rule=rule, entity_id=entity_id, starts_at=now, ends_at=until,
                                                   reason=reason.strip(), created_by=created_by, expired_at=None))
    return int(result.inserted_primary_key[0])


def list_silences(conn: Connection, now: dt.datetime, include_ended: bool) -> list[dict[str, Any]]:
    t = silences
    query = sa.select(t).order_by(t.c.silence_id)
    if not include_ended:
        query = query.where(t.c.ends_at > now, t.c.expired_at.is_(None))
    return [dict(row) for row in conn.execute(query).mappings()]


def expire_silence(conn: Connection, silence_id: int, now: dt.datetime) -> None:
    t = silences
    row = conn.execute(sa.select(t.c.ends_at, t.c.expired_at).where(t.c.silence_id == silence_id)).first()
    if row is None:
        raise SilenceError(f"no silence {silence_id} (perf-pipeline silence list --all shows them)")
    if row.expired_at is not None:
        raise SilenceError(f"silence {silence_id} was already expired at {row.expired_at}")
    conn.execute(t.update().where(t.c.silence_id == silence_id).values(expired_at=now))
