"""Alerts from planted windows to a Slack Web API stand-in and a webhook receiver, both real HTTP
servers on 127.0.0.1, through the real assets, the outbox and the notification_sender sensor.

The clock is the alerts resource's: each day is evaluated at noon of that day, as the daily
schedule would; the sender retries with tiny backoffs so that a test's bounded loop of ticks sees
every retry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, build_sensor_context, instance_for_test, materialize

from perf_pipeline.alerts.assets import ALERT_ASSETS
from perf_pipeline.alerts.store import add_silence, expire_silence
from perf_pipeline.launcher import RANGE_END_TAG, RANGE_START_TAG
from perf_pipeline.notify.sensors import body_bytes, build_notification_sender, build_run_failure_notifier
from perf_pipeline.notify.webhook import IDEMPOTENCY_HEADER, PAYLOAD_SCHEMA, verify
from perf_pipeline.resources import AggregatesResource, AlertsResource, NotifyResource, WarehouseResource
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import alerts, notification_outbox, window_stats
from perf_pipeline_tests.fakes.slack_server import FakeSlackServer
from perf_pipeline_tests.fakes.webhook_receiver import FakeWebhookReceiver

D0 = dt.date(2026, 3, 2)
TOKEN, SECRET = "xoxb-test-0123456789-secret", "whsec-test-signing-secret"
CHANNEL, ESCALATIONS = "C0ALERTS", "C0ONCALL"
# The one rule these tests watch (the defaults have more).
LOW_SUCCESS_RATE = """
rules:
  - name: low_success_rate
    severity: warning
    entity_types: [agent]
    window_days: 7
    condition: {kind: threshold, metric: success_rate, below: 0.8}
"""
CONFIG = """
lifecycle: {resolve_after_days: 2, repeat_interval_days: 3, escalate_after_days: 4, notify_lookback_days: 2}
delivery: {max_attempts: 3, backoff_seconds: 0.01, max_backoff_seconds: 0.05}
owners: {agent-1: [U0OWNER]}
""" + LOW_SUCCESS_RATE
SENDER = build_notification_sender(30)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


class Deployment:
    """A warehouse, the two receivers, and the resources that point at them."""

    def __init__(self, tmp_path: Path, url: str, slack: FakeSlackServer, webhook: FakeWebhookReceiver,
                 instance: DagsterInstance) -> None:
        self.url = url
        self.config = tmp_path / "alerts.yaml"
        self.config.write_text(CONFIG)
        self.slack, self.webhook, self.instance = slack, webhook, instance
        self.notify = NotifyResource(slack_token=TOKEN, slack_channel=CHANNEL, escalation_channel=ESCALATIONS,
                                     slack_base_url=slack.url, webhook_urls=f"{webhook.url}/hooks/perf?token=abc",
                                     webhook_secret=SECRET)

    def plant(self, n: int, **success_rates: float | None) -> None:
        """The 7-day window of day ``n`` for each agent (``agent_1=0.5``); None: insufficient data."""
        rows = []
        for name, rate in success_rates.items():
            counts = {column.name: 0 for column in window_stats.columns
                      if column.name.startswith("n_") and column.name != "n_tasks"}
            rows.append({"entity_type": "agent", "entity_id": name.replace("_", "-"), "as_of_date": day(n),
                         "window_days": 7, "n_tasks": 12 if rate is not None else 3, **counts,
                         "success_rate": rate, "status": "ok" if rate is not None else "insufficient_data"})
        with warehouse_engine(self.url).begin() as conn:
            conn.execute(window_stats.delete().where(window_stats.c.as_of_date == day(n)))
            conn.execute(window_stats.insert(), rows)

    def resources(self, clock: dt.datetime, notify: NotifyResource | None = None) -> dict[str, object]:
        return {"warehouse": WarehouseResource(url=self.url), "aggregates": AggregatesResource(),
                "alerts": AlertsResource(config_path=str(self.config), clock=clock.isoformat()),
                "notify": notify or self.notify}

    def evaluate(self, n: int, last: int | None = None, now: dt.datetime | None = None):
        """Materialize the alert assets for day ``n`` (or the range n..last as one run) at noon of
        the last day, or at ``now``."""
        clock = now or dt.datetime.combine(day(last if last is not None else n), dt.time(12), dt.UTC)
        tags = {RANGE_START_TAG: day(n).isoformat(), RANGE_END_TAG: day(last).isoformat()} if last else None
        result = materialize(ALERT_ASSETS, resources=self.resources(clock), instance=self.instance, tags=tags,
                             partition_key=None if last else day(n).isoformat())
        assert result.success
        return result

    def tick(self, times: int = 1, notify: NotifyResource | None = None) -> list[str]:
        """Tick the sender ``times`` times; its skip messages."""
        said = []
        for _ in range(times):
            context = build_sensor_context(instance=self.instance, resources=self.resources(
                dt.datetime.now(dt.UTC), notify))
            said.append(SENDER.evaluate_tick(context).skip_message)
        return said

    def outbox(self) -> list[dict]:
        with warehouse_engine(self.url).connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(notification_outbox)
                                                  .order_by(notification_outbox.c.created_at)).mappings()]

    def headers(self) -> list[str]:
        """The header of every Slack message, in order, with its channel."""
        return [f"{m['channel']} {m['blocks'][0]['text']['text']}" for m in self.slack.messages()]


@pytest.fixture
def deployment(tmp_path: Path, warehouse_url: str) -> Iterator[Deployment]:
    """On SQLite and on PostgreSQL (JSONB payloads, timestamptz, ON CONFLICT, the advisory lock)."""
    slack = FakeSlackServer.start(token=TOKEN, channels=(CHANNEL, ESCALATIONS))
    webhook = FakeWebhookReceiver.start()
    try:
        with instance_for_test() as instance:
            yield Deployment(tmp_path, warehouse_url, slack, webhook, instance)
    finally:
        slack.close()
        webhook.close()


def test_one_message_per_new_alert_group_and_none_on_a_re_run(deployment: Deployment) -> None:
    deployment.plant(0, agent_1=0.5, agent_2=0.6, agent_3=0.95, agent_4=None)
    deployment.evaluate(0)
    deployment.tick()
    [message] = deployment.slack.messages()
    text = json.dumps(message["blocks"])
    assert message["channel"] == CHANNEL and "WARNING low_success_rate: 2 agents firing" in text
    assert "agent-1" in text and "agent-2" in text and "agent-3" not in text and "agent-4" not in text
    assert "success_rate 0.5 below 0.8 over 7 days (n = 12 tasks)" in text  # the evidence
    [posted] = deployment.webhook.requests
    document = json.loads(posted.body)
    assert document["schema"] == PAYLOAD_SCHEMA and document["notification"] == "firing"
    assert [(a["entity_id"], a["observed"], a["threshold"], a["n_tasks"]) for a in document["alerts"]] == [
        ("agent-1", 0.5, 0.8, 12), ("agent-2", 0.6, 0.8, 12)]
    assert verify(SECRET, posted.body, posted.headers["x-perf-signature-256"])
    assert not verify("another-secret", posted.body, posted.headers["x-perf-signature-256"])
    webhook_row = next(r for r in deployment.outbox() if r["channel"] == "webhook")
    assert posted.headers[IDEMPOTENCY_HEADER.lower()] == webhook_row["delivery_key"]
    assert body_bytes(webhook_row["payload"]) == posted.body
    deployment.evaluate(0)  # a re-run of the same day
    deployment.tick()
    assert len(deployment.slack.messages()) == 1 and len(deployment.webhook.requests) == 1
    assert all(TOKEN not in json.dumps(r["payload"]) and SECRET not in json.dumps(r["payload"])
               and "token=abc" not in json.dumps(r, default=str) for r in deployment.outbox())


def test_repeat_escalation_and_resolution_at_their_days(deployment: Deployment) -> None:
    for n in range(0, 11):
        if n <= 6:
            deployment.plant(n, agent_1=0.5)
        else:
            deployment.plant(n, agent_1=0.9)
        deployment.evaluate(n)
        deployment.tick()
    assert deployment.headers() == [
        f"{CHANNEL} :rotating_light: WARNING low_success_rate: 1 agent firing",  # day 0
        f"{ESCALATIONS} :sos: CRITICAL low_success_rate: 1 agent escalated",  # day 3: unresolved for 4 days
        f"{CHANNEL} :repeat: WARNING low_success_rate: 1 agent still firing",  # day 6: 3 days after the last
        f"{CHANNEL} :white_check_mark: WARNING low_success_rate: 1 agent resolved",  # day 8: 2 days without
    ]
    escalation = deployment.slack.messages()[1]
    assert "<@U0OWNER>" in json.dumps(escalation["blocks"])
    kinds = [json.loads(r.body)["notification"] for r in deployment.webhook.requests]
    assert kinds == ["firing", "escalation", "repeat", "resolved"]
    with warehouse_engine(deployment.url).connect() as conn:
        states = conn.execute(sa.select(alerts.c.as_of_date, alerts.c.status).order_by(alerts.c.as_of_date)).all()
    assert [s for _, s in states] == ["firing"] * 7 + ["resolved"] * 2


def test_a_flapping_entity_opens_no_new_alert(deployment: Deployment) -> None:
    for n, rate in enumerate([0.5, 0.9, 0.5, 0.9, 0.5]):  # one good day at a time: inside resolve_after
        deployment.plant(n, agent_1=rate)
        deployment.evaluate(n)
        deployment.tick()
    # No second "firing": day 4 is the same alert, unresolved for 5 days, so it escalates.
    assert [h.rsplit(": ", 1)[1] for h in deployment.headers()] == ["1 agent firing", "1 agent escalated"]


def test_an_alert_that_ended_while_nothing_was_evaluated_is_resolved_on_the_next_evaluation(
        deployment: Deployment) -> None:
    deployment.plant(0, agent_1=0.5)
    deployment.evaluate(0)
    for n in range(1, 7):  # the condition ended on day 1; no evaluation ran for days 1..5
        deployment.plant(n, agent_1=0.9)
    deployment.evaluate(6)
    deployment.tick()
    assert [h.rsplit(": ", 1)[1] for h in deployment.headers()] == ["1 agent firing", "1 agent resolved"]
    deployment.evaluate(6)
    deployment.evaluate(7)
    deployment.tick()
    assert len(deployment.slack.messages()) == 2  # resolved once


def test_a_silenced_alert_is_recorded_and_not_sent_until_its_silence_ends(deployment: Deployment) -> None:
    noon = dt.datetime.combine(day(0), dt.time(12), dt.UTC)
    with warehouse_engine(deployment.url).begin() as conn:
        silence = add_silence(conn, "low_success_rate", "agent-1", noon + dt.timedelta(days=3), "known: retraining",
                              noon - dt.timedelta(hours=1), "test")
    deployment.plant(0, agent_1=0.5)
    deployment.evaluate(0)
    deployment.tick()
    assert deployment.slack.messages() == [] and deployment.webhook.requests == []
    with warehouse_engine(deployment.url).begin() as conn:
        assert conn.execute(sa.select(alerts.c.silenced_by)).scalar_one() == silence
        expire_silence(conn, silence, noon + dt.timedelta(hours=2))
    deployment.plant(1, agent_1=0.5)
    deployment.evaluate(1)
    deployment.tick()
    assert [h.rsplit(": ", 1)[1] for h in deployment.headers()] == ["1 agent firing"]


def test_receiver_errors_and_rate_limits_are_retried_until_delivered(deployment: Deployment) -> None:
    deployment.webhook.fail_next(503, count=1)
    deployment.webhook.fail_next(429, count=1, retry_after=0)
    deployment.slack.fail_next(500, count=1, method="chat.postMessage")
    deployment.slack.fail_next(429, count=1, retry_after=1, method="chat.postMessage")  # the SDK waits 1 s
    deployment.plant(0, agent_1=0.5)
    deployment.evaluate(0)
    said = []
    for _ in range(20):
        said += deployment.tick()
        if all(r["status"] == "sent" for r in deployment.outbox()):
            break
    assert all(r["status"] == "sent" for r in deployment.outbox()), said
    assert len(deployment.slack.messages()) == 1 and len(deployment.webhook.delivered) == 1
    statuses = [r.status for r in deployment.webhook.requests]
    assert statuses == [503, 429, 200]
    slack_row = next(r for r in deployment.outbox() if r["channel"] == "slack")
    assert slack_row["attempts"] == 2  # the 500, then the post the SDK retried after its 429


def test_a_lost_response_gives_at_most_one_duplicate_with_the_same_key(deployment: Deployment) -> None:
    deployment.webhook.drop_response_next(1)  # processed, then the connection closes unanswered
    deployment.slack.drop_response_next(1, method="chat.postMessage")
    deployment.plant(0, agent_1=0.5)
    deployment.evaluate(0)
    for _ in range(10):
        deployment.tick()
        if all(r["status"] == "sent" for r in deployment.outbox()):
            break
    keys = [r.headers[IDEMPOTENCY_HEADER.lower()] for r in deployment.webhook.requests]
    assert len(keys) == 2 and len(set(keys)) == 1  # resent once, with the same key
    assert len(deployment.webhook.delivered) == 1  # which the receiver used to drop the duplicate
    assert len(deployment.slack.messages()) == 1  # the sender found its post in the channel's history


def test_a_message_that_keeps_failing_is_dead_lettered_and_counted(deployment: Deployment) -> None:
    deployment.webhook.fail_next(500, count=50)
    deployment.plant(0, agent_1=0.5)
    deployment.evaluate(0)
    said = []
    for _ in range(10):
        said += deployment.tick()
    statuses = {r["channel"]: (r["status"], r["attempts"]) for r in deployment.outbox()}
    assert statuses == {"slack": ("sent", 1), "webhook": ("dead", 3)}
    assert said[-1].endswith("1 dead-lettered")
    dead = next(r for r in deployment.outbox() if r["status"] == "dead")
    assert "500" in dead["last_error"] and "token=abc" not in dead["last_error"]
    deployment.plant(1, agent_1=0.5)
    checks = {c.check_name: c for c in deployment.evaluate(1).get_asset_check_evaluations()}
    assert checks["rules_fed"].passed  # every rule has its window
    check = checks["notifications_delivered"]
    assert not check.passed and check.metadata["notifications_dead"].value == 1


def test_a_bad_token_or_unknown_channel_keeps_the_messages_pending(deployment: Deployment) -> None:
    deployment.plant(0, agent_1=0.5)
    deployment.evaluate(0)
    wrong = NotifyResource(slack_token="xoxb-wrong-token-value", slack_channel=CHANNEL,
                           slack_base_url=deployment.slack.url)
    said = deployment.tick(3, notify=wrong)
    slack_row = next(r for r in deployment.outbox() if r["channel"] == "slack")
    assert slack_row["status"] == "pending" and slack_row["attempts"] == 0
    assert "invalid_auth" in slack_row["last_error"] and "xoxb-wrong" not in slack_row["last_error"]
    assert deployment.slack.messages() == [] and said
    deployment.tick()  # the configuration fixed
    assert len(deployment.slack.messages()) == 1


def test_a_backfill_of_sixty_old_days_sends_nothing(deployment: Deployment) -> None:
    for n in range(60):
        deployment.plant(n, agent_1=0.5 if n % 20 < 10 else 0.9)
    today = dt.datetime.combine(day(100), dt.time(12), dt.UTC)
    result = deployment.evaluate(0, 59, now=today)
    deployment.tick()
    assert deployment.outbox() == [] and deployment.slack.messages() == [] and deployment.webhook.requests == []
    with warehouse_engine(deployment.url).connect() as conn:
        firing = conn.execute(sa.select(sa.func.count()).select_from(alerts).where(alerts.c.status == "firing"))
        assert firing.scalar_one() == 30  # the state is right all the same
    metadata = result.asset_materializations_for_node("alerts")[0].metadata
    assert metadata["range_notifications"].value == 0


def test_a_failed_run_is_posted_once_through_the_outbox(deployment: Deployment, tmp_path: Path) -> None:
    notifier = build_run_failure_notifier(30)

    def tick(cursor: str | None):
        context = build_sensor_context(instance=deployment.instance, cursor=cursor,
                                       resources=deployment.resources(dt.datetime.now(dt.UTC)))
        return notifier.evaluate_tick(context)

    start = tick(None)  # a new deployment watches from now on
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: x\n    severity: loud\n")
    resources = {**deployment.resources(dt.datetime.now(dt.UTC)),
                 "alerts": AlertsResource(config_path=str(broken))}
    failed = materialize(ALERT_ASSETS, resources=resources, instance=deployment.instance,
                         partition_key=day(0).isoformat(), raise_on_error=False)
    assert not failed.success
    found = tick(start.cursor)
    assert "1 failed run(s)" in found.skip_message
    assert tick(found.cursor).skip_message == "no failed run since the last tick"
    deployment.tick()
    [message] = deployment.slack.messages()
    text = json.dumps(message["blocks"])
    assert "Run failed" in text and failed.run_id in text and "broken.yaml" in text and "line 3" in text
    [posted] = deployment.webhook.requests
    document = json.loads(posted.body)
    assert document["type"] == "run_failure" and document["run_id"] == failed.run_id


def test_a_slack_channel_name_is_refused_with_what_to_set() -> None:
    from perf_pipeline.settings import SettingError

    with pytest.raises(SettingError, match=r"PERF_SLACK_CHANNEL='#alerts' is not a Slack channel ID like C0123456789"):
        NotifyResource(slack_token=TOKEN, slack_channel="#alerts").destinations()
