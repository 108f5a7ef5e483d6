"""Dagster resources: the warehouse (the only thing that opens database connections), the landing
zone, scoring (its configuration and the LLM judge), the aggregates' and the alerts' configuration,
and where notifications go (Slack, webhooks)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field
from sqlalchemy.engine import Engine

from perf_pipeline import settings
from perf_pipeline.aggregates.config import AggregatesConfig, load_aggregates_config
from perf_pipeline.alerts.config import AlertsConfig, load_alerts_config
from perf_pipeline.notify.outbox import SLACK, WEBHOOK
from perf_pipeline.notify.slack import SlackSender
from perf_pipeline.notify.webhook import WebhookSender
from perf_pipeline.scoring.config import ScoringConfig, load_scoring_config
from perf_pipeline.scoring.judge import JudgeClient, JudgePrice, OpenAIJudgeClient
from perf_pipeline.settings import SettingError
from perf_pipeline.warehouse.db import warehouse_engine

# Dagster concurrency pool of the steps that read and write the warehouse heavily (every daily asset):
# its limit, set on the instance, keeps a backfill from opening more connections than the database takes.
WAREHOUSE_POOL = "warehouse"


class WarehouseResource(ConfigurableResource):
    """The SQL warehouse. ``url`` comes from ``EnvVar("PERF_WAREHOUSE_URL")`` when that is set;
    otherwise it is the SQLite file under ``PERF_HOME``."""

    url: str | None = Field(default=None, description="SQLAlchemy URL of the warehouse.")

    def resolved_url(self) -> str:
        return self.url or settings.warehouse_url()

    def engine(self) -> Engine:
        """A shared engine whose schema exists (tables created, views refreshed, once per process)."""
        return warehouse_engine(self.resolved_url())


class LandingZoneResource(ConfigurableResource):
    """The folder agents write their task logs to, and how to read naive timestamps."""

    path: str | None = Field(default=None,
                             description="Landing folder; default PERF_LANDING_DIR or $PERF_HOME/landing.")
    default_timezone: str | None = Field(
        default=None, description="IANA zone for timestamps without a UTC offset; unset: such rows are quarantined.")

    def folder(self) -> Path:
        return Path(self.path).resolve() if self.path else settings.landing_dir()

    def timezone(self) -> str | None:
        return self.default_timezone or settings.default_timezone()


DEFAULT_JUDGE_MODEL = "gpt-4.1-mini"


class ScoringResource(ConfigurableResource):
    """Scoring configuration and the LLM judge's connection. Built from the environment:
    ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``PERF_JUDGE_MODEL`` and ``PERF_SCORING_CONFIG``, each
    through ``EnvVar`` so that the key is never shown in the UI or logged. Without a key the
    pipeline still runs and the judge is skipped."""

    config_path: str | None = Field(default=None, description="YAML merged over the default scoring.yaml.")
    judge_api_key: str | None = Field(default=None, description="API key of the judge's server (a secret).")
    judge_base_url: str | None = Field(default=None, description="OpenAI-compatible base URL; default OpenAI's.")
    judge_model: str = Field(default=DEFAULT_JUDGE_MODEL, description="Model that judges quality.")

    def config(self) -> ScoringConfig:
        return load_scoring_config(self.config_path)

    def judge_client(self, config: ScoringConfig, price: JudgePrice | None) -> JudgeClient | None:
        """The configured judge client, or None without an API key."""
        if not self.judge_api_key:
            return None
        return JUDGE_CLIENTS[config.strategies.judge](self, config, price)


JUDGE_CLIENTS = {
    "openai": lambda resource, config, price: OpenAIJudgeClient(
        api_key=resource.judge_api_key, base_url=resource.judge_base_url, config=config.judge, price=price,
        max_usd=config.judge.budget.max_usd),
}


class AggregatesResource(ConfigurableResource):
    """The configuration of windows, trends, baselines, anomalies and rankings: ``aggregates.yaml``
    with the file ``PERF_AGGREGATES_CONFIG`` names merged over it."""

    config_path: str | None = Field(default=None, description="YAML merged over the default aggregates.yaml.")

    def config(self) -> AggregatesConfig:
        return load_aggregates_config(self.config_path)


class AlertsResource(ConfigurableResource):
    """The alert rules and lifecycle: ``alerts.yaml`` with the file ``PERF_ALERTS_CONFIG`` names
    merged over it, and the time the alerts take as now."""

    config_path: str | None = Field(default=None, description="YAML merged over the default alerts.yaml.")
    clock: str | None = Field(default=None, description=(
        "ISO 8601 time the alerts take as now (a replay, a test); unset: the real clock."))

    def config(self) -> AlertsConfig:
        return load_alerts_config(self.config_path)

    def now(self) -> dt.datetime:
        """In UTC: SQLite keeps times without their offset, so every stored time is UTC."""
        if self.clock:
            moment = dt.datetime.fromisoformat(self.clock)
            return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        return dt.datetime.now(dt.UTC)


SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")


def webhook_id(url: str) -> str:
    """How the outbox names a webhook: a hash of its URL, which may carry a secret token."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class NotifyResource(ConfigurableResource):
    """Where notifications go, from the environment (each an ``EnvVar``, never shown in the UI):
    ``SLACK_BOT_TOKEN``, ``PERF_SLACK_CHANNEL``, ``PERF_SLACK_ESCALATION_CHANNEL``,
    ``PERF_SLACK_BASE_URL``, ``PERF_WEBHOOK_URLS`` (comma-separated) and ``PERF_WEBHOOK_SECRET``."""

    slack_token: str | None = Field(default=None, description="Slack bot token (a secret).")
    slack_channel: str | None = Field(default=None, description="Channel of alerts, reports and failed runs.")
    escalation_channel: str | None = Field(default=None, description="Channel of escalations; default the channel.")
    slack_base_url: str | None = Field(default=None, description="Slack Web API base URL; default Slack's.")
    webhook_urls: str | None = Field(default=None, description="Comma-separated webhook URLs (may hold secrets).")
    webhook_secret: str | None = Field(default=None, description="Key of the bodies' HMAC-SHA256 signature.")

    def urls(self) -> list[str]:
        return [url.strip() for url in (self.webhook_urls or "").split(",") if url.strip()]

    def secrets(self) -> list[str]:
        """What must never leave in a message: the token, the signing secret, the webhook URLs."""
        return [value for value in (self.slack_token, self.webhook_secret, *self.urls()) if value and len(value) >= 8]

    def destinations(self, escalation: bool = False) -> list[tuple[str, str]]:
        """(channel, target) of each destination: the Slack channel (the escalation channel for an
        escalation) when one is set, and every webhook."""
        found = []
        for variable, value in (("PERF_SLACK_CHANNEL", self.slack_channel),
                                ("PERF_SLACK_ESCALATION_CHANNEL", self.escalation_channel)):
            if value and not SLACK_CHANNEL_ID.fullmatch(value):
                # chat.postMessage takes "#name", but uploads and history need the ID: with a name,
                # charts and the lost-response check would fail on every attempt.
                raise SettingError(f"{variable}={value!r} is not a Slack channel ID like C0123456789 (in Slack: "
                                   "the channel's details, About, Channel ID)")
        channel = (self.escalation_channel if escalation else None) or self.slack_channel
        if channel:
            found.append((SLACK, channel))
        found.extend((WEBHOOK, webhook_id(url)) for url in self.urls())
        return found

    def webhook_url(self, target: str) -> str | None:
        return next((url for url in self.urls() if webhook_id(url) == target), None)

    def slack_sender(self) -> SlackSender | None:
        return SlackSender(token=self.slack_token, base_url=self.slack_base_url) if self.slack_token else None

    def webhook_sender(self) -> WebhookSender:
        return WebhookSender(secret=self.webhook_secret)


class ReportsResource(ConfigurableResource):
    """Where the reports' files go: ``PERF_REPORTS_DIR``, default ``$PERF_HOME/reports`` (a shared
    volume in a deployment where runs have their own pods)."""

    path: str | None = Field(default=None, description="Folder of the reports' HTML, Markdown and charts.")

    def folder(self) -> Path:
        return Path(self.path).resolve() if self.path else settings.reports_dir()
