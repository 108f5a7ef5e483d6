"""Alert assets: ``alert_conditions`` (which rules hold as of each day) and ``alerts`` (each alert's
state, and the notifications it sends, written to the outbox in the same transaction).

Both are daily partitioned like the aggregates they read, so a backfill recomputes their history;
only the days within ``notify_lookback_days`` of today announce anything, so a backfill of old days
sends nothing (README: Alerts).
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
from dagster import AssetDep, AssetExecutionContext, MaterializeResult

from perf_pipeline.alerts.checks import delivery_check, delivery_check_spec, rules_check, rules_check_spec
from perf_pipeline.alerts.config import unfed_rules
from perf_pipeline.alerts.lifecycle import (
    ESCALATION,
    FIRING,
    KEY,
    RESOLVED,
    alert_states,
    announcements,
    group_messages,
    overdue_resolutions,
)
from perf_pipeline.alerts.messages import slack_payload, webhook_payload
from perf_pipeline.alerts.rules import held_conditions
from perf_pipeline.alerts.store import (
    active_silences,
    begin_evaluation,
    ledger_entries,
    open_alerts,
    read_conditions,
    read_sources,
    record_announcements,
    silence_matcher,
)
from perf_pipeline.config import MAX_WINDOW_DAYS
from perf_pipeline.daily import daily_asset, day_chunks, partition_days, range_metadata, record_days
from perf_pipeline.jobs import ALERTS
from perf_pipeline.notify.outbox import SLACK, WEBHOOK, enqueue
from perf_pipeline.partitions import days_between, trailing_days
from perf_pipeline.resources import AggregatesResource, AlertsResource, NotifyResource, WarehouseResource
from perf_pipeline.warehouse.db import insert_frame, replace_partition
from perf_pipeline.warehouse.schema import alert_conditions
from perf_pipeline.warehouse.schema import alerts as alerts_table


@daily_asset(name="alert_conditions", group_name=ALERTS, deps=["window_stats", "anomalies", "trends"],
             check_specs=[rules_check_spec()],
             description=("As of each day, per rule and entity: the rules that hold (a window_stats threshold, an "
                          "anomaly, a significant trend) with their evidence. Never on insufficient data or a null "
                          "metric."))
def alert_conditions_asset(context: AssetExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource,
                           aggregates: AggregatesResource) -> Iterator[Any]:
    first, last = partition_days(context)
    config = alerts.config()
    unfed = unfed_rules(config, aggregates.config())
    for why in unfed.values():
        context.log.warning(f"alert rule left out, it would never fire: {why}")
    rules = [rule for rule in config.rules if rule.name not in unfed]
    rows = 0
    with warehouse.engine().begin() as conn:
        for start, end in day_chunks(first, last, as_of=True):  # each day's conditions are of its own rows
            held = held_conditions(rules, *read_sources(conn, start, end, rules))
            rows += replace_partition(conn, alert_conditions, start, end, held, date_column="as_of_date")
            record_days(context, "alert_conditions", held, "as_of_date", _by_rule, days=(start, end))
    yield MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": rows, "rules": len(rules)}))
    yield rules_check(unfed, len(config.rules))


def _by_rule(_day: dt.date, rows: pd.DataFrame) -> dict[str, Any]:
    return {"rows": len(rows), **{f"held_{rule}": int(n) for rule, n in rows.groupby("rule").size().items()}}


def _state_figures(_day: dt.date, rows: pd.DataFrame) -> dict[str, Any]:
    status = rows["status"] if not rows.empty else pd.Series(dtype=str)
    return {"firing": int((status == FIRING).sum()), "resolved": int((status == RESOLVED).sum()),
            "silenced": int(rows["silenced_by"].notna().sum()) if not rows.empty else 0}


@daily_asset(name="alerts", group_name=ALERTS,
             deps=[AssetDep("alert_conditions", partition_mapping=trailing_days(MAX_WINDOW_DAYS))],
             check_specs=[delivery_check_spec()],
             description=("Each alert (rule + entity) as of each day: firing, or resolved, since when, escalated, "
                          "silenced, with its evidence. Days within notify_lookback_days of today write their "
                          "notifications (first firing, repeat, escalation, resolved) to the outbox, grouped by "
                          "rule; the notification_sender sensor delivers them."))
def alerts_asset(context: AssetExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource,
                 notify: NotifyResource) -> Iterator[Any]:
    first, last = partition_days(context)
    config = alerts.config()
    now = alerts.now()
    today = now.date()
    recent = today - dt.timedelta(days=config.lifecycle.notify_lookback_days)
    with warehouse.engine().begin() as conn:
        begin_evaluation(conn, first, last)
        held = read_conditions(conn, first - dt.timedelta(days=MAX_WINDOW_DAYS - 1), last)
        states = alert_states(held, days_between(first, last), config.lifecycle)
        recent_days = (states["as_of_date"] >= recent) & (states["as_of_date"] <= today)
        match = silence_matcher(active_silences(conn, now))
        # The days that may notify show the silences that hold them back (older days: none, whatever
        # silences there are now).
        states["silenced_by"] = [match(rule, entity) if is_recent else None for rule, entity, is_recent
                                 in zip(states["rule"], states["entity_id"], recent_days, strict=True)]
        eligible = states[recent_days]
        found, _ = announcements(eligible, ledger_entries(conn, eligible), config.lifecycle, match)
        evaluated = [day for day in days_between(first, last) if recent <= day <= today]
        if evaluated:  # the latest day also closes the alerts that ended unannounced
            present = {(r, t, e) for r, t, e in eligible.loc[eligible["as_of_date"] == evaluated[-1], KEY]
                       .itertuples(index=False)} | {tuple(a.state[k] for k in KEY) for a in found}
            found += overdue_resolutions(open_alerts(conn), present, evaluated[-1], match)
        rows = insert_frame(conn, alerts_table, states)
        messages = group_messages(found)
        undeliverable = 0
        for message in messages:
            destinations = notify.destinations(escalation=message.kind == ESCALATION)
            if not destinations:
                undeliverable += len(message.announcements)
                continue  # not recorded: announced once a destination is configured
            mentions = (config.owners_of(message.rule, [a.state["entity_id"] for a in message.announcements])
                        if message.kind == ESCALATION else [])
            enqueue(conn, message.message_key, message.kind, destinations,
                    {SLACK: slack_payload(message, mentions), WEBHOOK: webhook_payload(message)}, now)
            record_announcements(conn, [(a, message.message_key) for a in message.announcements], now)
        check = delivery_check(conn)
    if undeliverable:
        context.log.warning(f"{undeliverable} alert notification(s) not sent: no destination is configured "
                            "(set PERF_SLACK_CHANNEL and SLACK_BOT_TOKEN, or PERF_WEBHOOK_URLS); they will be "
                            "announced by the first evaluation after one is")
    record_days(context, "alerts", states, "as_of_date", _state_figures)
    yield MaterializeResult(metadata=range_metadata(context, {
        "partition_range": f"{first}..{last}", "rows": rows,
        "firing": int((states["status"] == FIRING).sum()) if not states.empty else 0,
        "notifications": sum(len(m.announcements) for m in messages) - undeliverable,
        "messages": len(messages), "silenced": int(states["silenced_by"].notna().sum()) if not states.empty else 0,
        "without_destination": undeliverable,
        "notify_from": recent.isoformat()}))
    yield check


ALERT_ASSETS = [alert_conditions_asset, alerts_asset]
