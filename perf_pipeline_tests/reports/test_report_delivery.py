"""Reports posted as stakeholders get them: the report assets render into PERF_REPORTS_DIR and the
outbox, the notification_sender sensor posts to a Slack stand-in (charts uploaded in the message's
thread) and a webhook receiver; once per period, never for a backfill of old periods, and on
request with ``perf-pipeline report send``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import build_sensor_context, instance_for_test, materialize

from perf_pipeline.launcher import RANGE_END_TAG, RANGE_START_TAG
from perf_pipeline.notify.sensors import build_notification_sender
from perf_pipeline.reports.assets import REPORT_ASSETS, daily_report_asset, weekly_report_asset
from perf_pipeline.resources import AlertsResource, NotifyResource, ReportsResource, WarehouseResource
from perf_pipeline.warehouse.db import warehouse_engine
from perf_pipeline.warehouse.schema import notification_outbox, reports
from perf_pipeline_tests.benchmarks.backfill import copy_warehouse
from perf_pipeline_tests.fakes.slack_server import FakeSlackServer
from perf_pipeline_tests.fakes.webhook_receiver import FakeWebhookReceiver
from perf_pipeline_tests.reports.test_content import FIRST, LAST, planted_warehouse
from perf_pipeline_tests.test_cli import perf_pipeline

TOKEN, CHANNEL = "xoxb-report-0123456789-token", "C0REPORTS"
MONDAY_AFTER = dt.datetime(2026, 3, 16, 6, 0, tzinfo=dt.UTC)  # week 2026-W11 and day 03-15 are over


class Setup:
    def __init__(self, tmp_path: Path, source: str, slack: FakeSlackServer, webhook: FakeWebhookReceiver) -> None:
        self.db = tmp_path / "warehouse.db"
        copy_warehouse(Path(source.removeprefix("sqlite:///")), self.db)  # WAL pages included
        self.url = f"sqlite:///{self.db}"
        self.folder = tmp_path / "reports"
        self.slack, self.webhook = slack, webhook
        self.notify = NotifyResource(slack_token=TOKEN, slack_channel=CHANNEL, slack_base_url=slack.url,
                                     webhook_urls=f"{webhook.url}/reports")

    def resources(self, now: dt.datetime) -> dict[str, object]:
        return {"warehouse": WarehouseResource(url=self.url), "reports": ReportsResource(path=str(self.folder)),
                "notify": self.notify, "alerts": AlertsResource(clock=now.isoformat())}

    def build(self, asset, now: dt.datetime, partition: str | None = None, first: dt.date | None = None,
              last: dt.date | None = None):
        tags = {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()} if first else None
        result = materialize([asset], resources=self.resources(now), partition_key=partition, tags=tags)
        assert result.success
        return result

    def deliver(self) -> None:
        with instance_for_test() as instance:
            context = build_sensor_context(instance=instance, resources=self.resources(dt.datetime.now(dt.UTC)))
            build_notification_sender(30).evaluate_tick(context)

    def outbox(self) -> list[dict]:
        with warehouse_engine(self.url).connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(notification_outbox)).mappings()]


@pytest.fixture
def setup(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    slack = FakeSlackServer.start(token=TOKEN, channels=(CHANNEL,))
    webhook = FakeWebhookReceiver.start()
    try:
        yield Setup(tmp_path, planted_warehouse(tmp_path_factory), slack, webhook)
    finally:
        slack.close()
        webhook.close()


def test_a_report_is_posted_once_per_period_with_its_charts(setup: Setup) -> None:
    for _ in range(2):  # a re-run renders again and posts nothing more
        setup.build(daily_report_asset, MONDAY_AFTER, partition=LAST.isoformat())
        setup.build(weekly_report_asset, MONDAY_AFTER, partition="2026-03-09")
        setup.deliver()
    messages = setup.slack.messages(CHANNEL)
    assert [m["text"] for m in messages] == ["The daily report for 2026-03-15", "The weekly report for 2026-W11"]
    weekly = json.dumps(messages[1]["blocks"])
    assert "2026-W11" in weekly and "agent-07" in weekly  # the declining agent of the planted logs
    charts = sorted(path.name for path in (setup.folder / "weekly" / "2026-W11").glob("*.png"))
    assert charts == ["cost_per_task.png", "score_trend.png"]
    in_thread = [u for u in setup.slack.uploads if u.thread_ts == messages[1]["ts"]]
    assert sorted(u.filename for u in in_thread) == charts and all(u.data.startswith(b"\x89PNG") for u in in_thread)
    documents = [json.loads(r.body) for r in setup.webhook.requests]
    assert [(d["type"], d["kind"], d["period"]) for d in documents] == [("report", "daily", "2026-03-15"),
                                                                       ("report", "weekly", "2026-W11")]
    assert "# " in documents[1]["markdown"]
    html = (setup.folder / "weekly" / "2026-W11" / "report.html").read_text()
    assert "data:image/png;base64," in html and "2026-W11" in html


def test_a_report_of_a_day_not_over_is_rendered_and_not_posted(setup: Setup) -> None:
    setup.build(daily_report_asset, dt.datetime(2026, 3, 15, 18, 0, tzinfo=dt.UTC), partition=LAST.isoformat())
    setup.deliver()
    assert setup.outbox() == [] and setup.slack.messages() == []
    assert (setup.folder / "daily" / "2026-03-15" / "report.html").exists()


def test_a_backfill_of_old_periods_posts_nothing_until_asked(setup: Setup) -> None:
    later = dt.datetime(2026, 5, 1, 6, 0, tzinfo=dt.UTC)
    result = setup.build(daily_report_asset, later, first=FIRST, last=LAST)
    setup.build(weekly_report_asset, later, partition="2026-03-09")
    setup.deliver()
    assert setup.outbox() == [] and setup.slack.messages() == [] and setup.webhook.requests == []
    with warehouse_engine(setup.url).connect() as conn:
        stored = conn.execute(sa.select(reports.c.kind, sa.func.count()).group_by(reports.c.kind)).all()
    assert sorted(stored) == [("daily", 15), ("weekly", 1)]
    assert result.asset_materializations_for_node("daily_report")[0].metadata["range_posted"].value == 0
    env = {"PERF_WAREHOUSE_URL": setup.url, "SLACK_BOT_TOKEN": TOKEN, "PERF_SLACK_CHANNEL": CHANNEL,
           "PERF_SLACK_BASE_URL": setup.slack.url, "PERF_REPORTS_DIR": str(setup.folder)}
    home = setup.db.parent / "home"
    sent = perf_pipeline("report", "send", "--kind", "weekly", "--period", "2026-W11", env_home=home, **env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"slack {CHANNEL}: sent" in sent.stdout and TOKEN not in sent.stdout + sent.stderr
    again = perf_pipeline("report", "send", "--kind", "weekly", "--period", "2026-W11", env_home=home, **env)
    assert again.returncode == 1 and "already in the outbox of every destination (slack sent at" in again.stderr
    copy = perf_pipeline("report", "send", "--kind", "weekly", "--period", "2026-W11", "--again",
                         env_home=home, **env)
    assert copy.returncode == 0, copy.stderr
    missing = perf_pipeline("report", "send", "--kind", "daily", "--period", "2026-04-01", env_home=home, **env)
    assert missing.returncode == 1 and "no daily report for 2026-04-01" in missing.stderr
    assert [m["text"] for m in setup.slack.messages(CHANNEL)] == ["The weekly report for 2026-W11"] * 2


def test_the_report_assets_are_in_their_group_with_the_weekly_partitions() -> None:
    daily, weekly = REPORT_ASSETS
    assert daily.partitions_def.get_partition_keys()[0] == "2026-01-01"
    # Mondays, from the week that holds the first day (2026-01-01, a Thursday)
    assert weekly.partitions_def.get_partition_keys()[:2] == ["2025-12-29", "2026-01-05"]
