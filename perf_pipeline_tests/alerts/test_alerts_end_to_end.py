"""Alerts as a user gets them: the installed ``perf-pipeline run`` on planted logs, with the Slack
and webhook variables the README documents pointing at servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from perf_pipeline.notify.webhook import verify
from perf_pipeline_tests.alerts.test_alert_delivery import LOW_SUCCESS_RATE
from perf_pipeline_tests.events_factory import task, write_jsonl
from perf_pipeline_tests.fakes.slack_server import FakeSlackServer
from perf_pipeline_tests.fakes.webhook_receiver import FakeWebhookReceiver
from perf_pipeline_tests.test_cli import perf_pipeline

TOKEN, SECRET, CHANNEL, ONCALL = "xoxb-e2e-0123456789-token", "whsec-e2e-secret", "C0ALERTS", "C0ONCALL"


def planted(days: list[dt.date]) -> list[dict]:
    """agent-falling: 6 tasks a day, all successful for a week, then half of them failed;
    agent-steady: 6 successful tasks a day; agent-sparse: one failed task every fourth day (a 7-day
    window never holds 5 tasks)."""
    events = []
    for k, day in enumerate(days):
        times = {"assigned_at": f"{day}T09:00:00Z", "started_at": f"{day}T09:01:00Z"}
        for n in range(6):
            falling = "failed" if k >= len(days) - 6 and n % 2 else "success"
            events.append(task(f"fall-{day}-{n}", agent_id="agent-falling", status=falling,
                               completed_at=f"{day}T10:{n:02d}:00Z", **times))
            events.append(task(f"steady-{day}-{n}", agent_id="agent-steady", completed_at=f"{day}T11:{n:02d}:00Z",
                               **times))
        if k % 4 == 0:
            events.append(task(f"sparse-{day}", agent_id="agent-sparse", status="failed",
                               completed_at=f"{day}T12:00:00Z", **times))
    return events


@pytest.mark.slow
def test_a_falling_success_rate_alerts_with_its_evidence_and_a_steady_agent_does_not(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=n) for n in range(13, 0, -1)]  # the 13 days before today
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "tasks.jsonl", planted(days))
    rules = tmp_path / "alerts.yaml"
    rules.write_text(LOW_SUCCESS_RATE)
    slack = FakeSlackServer.start(token=TOKEN, channels=(CHANNEL, ONCALL))
    webhook = FakeWebhookReceiver.start()
    try:
        done = perf_pipeline("run", env_home=tmp_path / "home", PERF_LANDING_DIR=str(landing),
                             PERF_PARTITION_START=str(days[0]), PERF_ALERTS_CONFIG=str(rules),
                             SLACK_BOT_TOKEN=TOKEN, PERF_SLACK_CHANNEL=CHANNEL, PERF_SLACK_BASE_URL=slack.url,
                             PERF_SLACK_ESCALATION_CHANNEL=ONCALL,
                             PERF_WEBHOOK_URLS=f"{webhook.url}/alerts", PERF_WEBHOOK_SECRET=SECRET,
                             PERF_REPORTS_DIR=str(tmp_path / "reports"))
        assert done.returncode == 0, done.stdout + done.stderr
        posted = slack.messages()
        received = list(webhook.requests)
    finally:
        slack.close()
        webhook.close()
    assert TOKEN not in done.stdout + done.stderr and SECRET not in done.stdout + done.stderr
    # The daily reports of the two days before today (over, and recent), with their HTML files, and
    # the report of the last week that is over.
    reports = [m["text"] for m in posted if m["text"].startswith("The ")]
    last_monday = today - dt.timedelta(days=today.weekday() + 7)
    year, week, _ = last_monday.isocalendar()
    assert reports == [*(f"The daily report for {today - dt.timedelta(days=n)}" for n in (2, 1)),
                       f"The weekly report for {year}-W{week:02d}"]
    assert all((tmp_path / "reports" / "daily" / str(today - dt.timedelta(days=n)) / "report.html").exists()
               for n in (2, 1))
    # One alert, announced once, though the run built several days within the notify lookback.
    messages = [m for m in posted if not m["text"].startswith("The ")]
    requests = [r for r in received if json.loads(r.body)["type"] == "alert"]
    assert len(messages) == 1 and len(requests) == 1, [m["text"] for m in messages]
    assert messages[0]["channel"] == ONCALL and all(m["channel"] == CHANNEL for m in posted if m is not messages[0])
    text = json.dumps(messages[0]["blocks"])
    assert "agent-falling" in text and "agent-steady" not in text and "agent-sparse" not in text
    document = json.loads(requests[0].body)
    [alert] = document["alerts"]
    # As of today (the run built today's partition too): the 7-day window holds 6 days of 3 successes
    # in 6 tasks. The rule first held 4 days ago (33 of 42), so the first announcement is already an
    # escalation (escalate_after_days 3), sent to the escalation channel.
    assert document["as_of_date"] == today.isoformat() and document["notification"] == "escalation"
    assert alert["entity_id"] == "agent-falling" and alert["started_on"] == str(today - dt.timedelta(days=4))
    assert alert["observed"] == 0.5 and alert["threshold"] == 0.8 and alert["n_tasks"] == 36
    assert alert["window_days"] == 7 and "success_rate 0.5 below 0.8 over 7 days (n = 36 tasks)" in text
    assert verify(SECRET, requests[0].body, requests[0].headers["x-perf-signature-256"])
