"""Sensors that tell people: ``notification_sender`` delivers the outbox, ``run_failure_notifier``
puts failed runs into it.

Neither launches runs. Delivery happens in the sender's tick, so a notification leaves within one
tick of being written, and a failed post stays in the outbox to be retried, never lost with a
sensor's advanced cursor (Dagster's run-failure sensors advance theirs even when the post fails;
this one advances its cursor only after the outbox rows are committed).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from perf_pipeline.notify import blocks
from perf_pipeline.notify.errors import DeliveryError
from perf_pipeline.notify.outbox import (
    SLACK,
    WEBHOOK,
    backoff,
    claim,
    counts,
    defer,
    due,
    enqueue,
    mark_failed,
    mark_sent,
)
from perf_pipeline.notify.slack import SlackMessage
from perf_pipeline.notify.webhook import PAYLOAD_SCHEMA
from perf_pipeline.resources import AlertsResource, NotifyResource, WarehouseResource
from perf_pipeline.scoring.redact import environment_secrets, redact

# A tick starts no new delivery after this many seconds: Dagster gives a sensor tick 60 s, and one
# delivery takes at most about 25 (10 s timeouts, a 429 waited out only up to 5 s).
TICK_BUDGET_S = 25
# A claimed row is not due again for this long: an attempt is over by then, or its sender died.
LEASE_S = 120
FAILED_RUNS_PER_TICK = 50


def body_bytes(payload: dict) -> bytes:
    """The exact bytes a webhook receives (and that its signature covers): stable across retries."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_notification_sender(seconds: int):
    @sensor(name="notification_sender", minimum_interval_seconds=seconds, default_status=DefaultSensorStatus.RUNNING,
            description=("Delivers the notification outbox to Slack and the webhooks, retrying with backoff; a row "
                         "is dead-lettered after max_attempts failures, and waits while a destination is "
                         "misconfigured (bad token, unknown channel)."))
    def notification_sender(context: SensorEvaluationContext, warehouse: WarehouseResource, notify: NotifyResource,
                            alerts: AlertsResource) -> SkipReason:
        return SkipReason(deliver(context, warehouse, notify, alerts))

    return notification_sender


def deliver(context: SensorEvaluationContext, warehouse: WarehouseResource, notify: NotifyResource,
            alerts: AlertsResource) -> str:
    """Send what is due; a one-line account of what happened."""
    settings = alerts.config().delivery
    engine = warehouse.engine()
    started = time.monotonic()
    with engine.connect() as conn:
        pending = due(conn, dt.datetime.now(dt.UTC), settings.messages_per_tick)
    slack, webhooks = notify.slack_sender(), notify.webhook_sender()
    sent = failed = 0
    for delivery in pending:
        if time.monotonic() - started > TICK_BUDGET_S:  # the rest waits for the next tick
            break
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            if not claim(conn, delivery, now, LEASE_S):
                continue  # sent meanwhile, or being sent by another sender, or deferred
        try:
            receipt = _send(delivery, slack, webhooks, notify)
        except DeliveryError as exc:
            failed += 1
            now = dt.datetime.now(dt.UTC)
            wait = max(exc.retry_after or 0.0, backoff(delivery.attempts + 1, settings.backoff_seconds,
                                                          settings.max_backoff_seconds))
            with engine.begin() as conn:
                status = mark_failed(conn, delivery, now, str(exc), counts=not exc.configuration,
                                     ambiguous=exc.ambiguous, wait_seconds=wait, max_attempts=settings.max_attempts)
                if exc.configuration:  # the destination's other rows wait too, so that the others go first
                    defer(conn, delivery.channel, delivery.target, now + dt.timedelta(seconds=wait), str(exc))
            if exc.configuration:
                context.log.error(f"{exc} — the {delivery.channel} notifications wait until this is fixed")
            else:
                context.log.warning(f"{delivery.kind} notification {delivery.delivery_key}: {exc} "
                                    f"({'dead-lettered' if status == 'dead' else f'retry in {wait:.0f} s'})")
            continue
        with engine.begin() as conn:
            mark_sent(conn, delivery.delivery_key, dt.datetime.now(dt.UTC), receipt)
        sent += 1
    with engine.connect() as conn:
        found = counts(conn)
    return (f"sent {sent}, failed {failed} this tick; outbox: {found['pending']} pending, {found['sent']} sent, "
            f"{found['dead']} dead-lettered")


def _send(delivery, slack, webhooks, notify: NotifyResource) -> str:
    if delivery.channel == SLACK:
        if slack is None:
            raise DeliveryError(f"Slack channel {delivery.target}: SLACK_BOT_TOKEN is not set", retryable=False,
                                configuration=True)
        payload = delivery.payload
        files = tuple(Path(f) for f in payload.get("files") or ())
        if delivery.ambiguous:  # the last post may have landed: look before posting again
            posted = slack.already_posted(delivery.target, delivery.delivery_key)
            if posted:
                if files:  # the post landed; its charts may not have
                    slack.upload_files(delivery.target, posted, files)
                return posted
        return slack.send(SlackMessage(channel=delivery.target, text=payload["text"], blocks=payload["blocks"],
                                       idempotency_key=delivery.delivery_key, files=files))
    if delivery.channel == WEBHOOK:
        url = notify.webhook_url(delivery.target)
        if url is None:
            raise DeliveryError(f"webhook {delivery.target} is no longer in PERF_WEBHOOK_URLS", retryable=False,
                                configuration=True)
        return str(webhooks.send(url, body_bytes(delivery.payload), delivery.delivery_key))
    raise DeliveryError(f"unknown channel {delivery.channel!r} in the outbox", retryable=False, configuration=True)


def build_run_failure_notifier(seconds: int):
    @sensor(name="run_failure_notifier", minimum_interval_seconds=seconds, default_status=DefaultSensorStatus.RUNNING,
            description=("Puts every failed run of this deployment into the notification outbox (Slack and "
                         "webhooks), once; the notification_sender sensor delivers it."))
    def run_failure_notifier(context: SensorEvaluationContext, warehouse: WarehouseResource,
                             notify: NotifyResource) -> SensorResult | SkipReason:
        now = dt.datetime.now(dt.UTC)
        if context.cursor is None:  # a new deployment does not announce the failures of its past
            return SensorResult(skip_reason=SkipReason("watching failed runs from now on"),
                                cursor=str(now.timestamp()))
        since = dt.datetime.fromtimestamp(float(context.cursor), dt.UTC)
        records = context.instance.get_run_records(
            RunsFilter(statuses=[DagsterRunStatus.FAILURE], updated_after=since),
            limit=FAILED_RUNS_PER_TICK, order_by="update_timestamp", ascending=True)
        if not records:
            return SkipReason("no failed run since the last tick")
        destinations = notify.destinations()
        with warehouse.engine().begin() as conn:
            for record in records:
                if destinations:
                    run = record.dagster_run
                    error = _failure_text(context, run.run_id, notify.secrets())
                    key = f"run_failure|{run.run_id}"
                    enqueue(conn, key, "run_failure", destinations,
                            {SLACK: _slack_failure(run.job_name, run.run_id, run.tags, error),
                             WEBHOOK: {"schema": PAYLOAD_SCHEMA, "type": "run_failure", "message_key": key,
                                       "job": run.job_name, "run_id": run.run_id, "error": error,
                                       "partition": run.tags.get("dagster/partition"),
                                       "failed_at": record.update_timestamp.isoformat()}}, now)
        if not destinations:
            context.log.warning(f"{len(records)} failed run(s) not announced: no destination is configured")
        return SensorResult(skip_reason=SkipReason(f"{len(records)} failed run(s) put in the outbox"),
                            cursor=str(records[-1].update_timestamp.timestamp()))

    return run_failure_notifier


def _failure_text(context: SensorEvaluationContext, run_id: str, secrets: list[str]) -> str:
    """The first failure message of the run, secrets masked, at most 1,000 characters."""
    for event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
        records = context.instance.get_records_for_run(run_id, of_type=event_type, limit=1).records
        if records:
            entry = records[0].event_log_entry
            event = entry.dagster_event
            failure = event.step_failure_data if event and event.is_step_failure else None
            if failure and failure.error:
                error = failure.error
                # Dagster wraps the asset's own error: say that one (not what it was raised from).
                while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
                    error = error.cause
                message = f"{event.step_key}: {error.message.strip()}"
            else:
                message = (event.message if event else None) or entry.user_message
            return redact(message or "", [*environment_secrets(), *secrets])[0][:1000]
    return "no failure message was recorded"


def _slack_failure(job: str, run_id: str, tags: dict[str, str], error: str) -> dict:
    partition = tags.get("dagster/partition") or (
        f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in tags else None)
    body = [blocks.header(f":x: Run failed: {job}"),
            blocks.section(f"*Run* `{run_id}`" + (f" · partition {partition}" if partition else "")),
            blocks.section(f"```{blocks.escape(error)}```"),
            blocks.context("perf_pipeline · open the run in the Dagster UI for its logs")]
    fitted = blocks.fit(body, "… {n} more blocks: see the run in the Dagster UI")
    return {"text": blocks.slack_text(fitted), "blocks": fitted, "files": []}
