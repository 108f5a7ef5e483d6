"""Rendering a report to its files and table row, and putting it in the notification outbox.

A report is posted once per period and destination: its outbox key is (kind, period), and the
outbox keeps one row per destination. Only a report whose period is over, and recent, is posted by
the assets (``due``): a daily report on the days after its day, a weekly one in the week after its
week. So a report rebuilt during its own day, or a backfill of old periods, posts nothing; a user
asks for an old one with ``perf-pipeline report send``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from perf_pipeline.notify.outbox import SLACK, WEBHOOK, enqueue
from perf_pipeline.notify.webhook import PAYLOAD_SCHEMA
from perf_pipeline.reports.content import DAILY, Period, Report
from perf_pipeline.reports.render import html, markdown, slack_blocks, title
from perf_pipeline.warehouse.schema import notification_outbox, reports

# A daily report is posted while its day is at most this many days old; a weekly one, its week.
DAILY_POSTING_DAYS = 2
WEEKLY_POSTING_DAYS = 7


@dataclass(frozen=True)
class Rendered:
    period: Period
    title: str
    markdown: str
    html_path: Path
    chart_paths: tuple[Path, ...]
    blocks: list[dict[str, Any]]
    figures: dict[str, Any]


def write(report: Report, pictures: dict[str, bytes], folder: Path) -> Rendered:
    """Write ``report`` with its charts (``pictures``) under ``folder``/kind/period: report.html (self-
    contained), report.md and one PNG per chart."""
    period = report.period
    target = folder / period.kind / period.label
    target.mkdir(parents=True, exist_ok=True)
    html_path = target / "report.html"
    html_path.write_text(html(report, pictures), encoding="utf-8")
    text = markdown(report)
    (target / "report.md").write_text(text, encoding="utf-8")
    chart_paths = []
    for name, png in sorted(pictures.items()):
        path = target / f"{name}.png"
        path.write_bytes(png)
        chart_paths.append(path)
    totals = report.totals
    return Rendered(period=period, title=title(report), markdown=text, html_path=html_path,
                    chart_paths=tuple(chart_paths), blocks=slack_blocks(report, None),
                    figures={"tasks": totals.n_tasks, "success_rate": totals.success_rate,
                             "total_cost_usd": totals.total_cost_usd,
                             "evaluation_cost_usd": totals.evaluation_cost_usd,
                             "sla_compliance_rate": totals.sla_compliance_rate,
                             "alerts_firing": len(report.alerts_firing), "anomalies": len(report.anomalies),
                             "recommendations": [r.text for r in report.recommendations]})


def save(conn: Connection, rendered: Rendered, now: dt.datetime) -> None:
    period = rendered.period
    conn.execute(reports.delete().where(reports.c.kind == period.kind, reports.c.period == period.label))
    conn.execute(reports.insert().values(
        kind=period.kind, period=period.label, first_day=period.first, last_day=period.last,
        markdown=rendered.markdown, html_path=str(rendered.html_path),
        chart_paths=[str(p) for p in rendered.chart_paths], slack_blocks=rendered.blocks, created_at=now))


def due(period: Period, today: dt.date) -> bool:
    """Whether the assets post this period's report: it is over, and recent."""
    days = DAILY_POSTING_DAYS if period.kind == DAILY else WEEKLY_POSTING_DAYS
    return period.last < today and period.last >= today - dt.timedelta(days=days)


class AlreadyPosted(Exception):
    """Every destination has the report already; the message says when."""


def post(conn: Connection, kind: str, label: str, destinations: list[tuple[str, str]], now: dt.datetime,
         copy: str | None = None) -> str:
    """Put the stored report of (kind, label) in the outbox for ``destinations``; its message key.
    A destination that has it already gets nothing more: a report is posted once per destination,
    unless ``copy`` names another posting of it (``report send --again``). ``AlreadyPosted`` when
    every destination has it, ``LookupError`` when there is no such report."""
    row = conn.execute(sa.select(reports).where(reports.c.kind == kind, reports.c.period == label)).mappings().first()
    if row is None:
        raise LookupError(f"no {kind} report for {label}: materialize {kind}_report for that period first")
    key = f"report|{kind}|{label}" + (f"|{copy}" if copy else "")
    queued = {(r["channel"], r["target"]): r for r in posted(conn, key)}
    if destinations and all(d in queued for d in destinations):
        when = ", ".join(f"{r['channel']} {r['status']}" + (f" at {r['sent_at']}" if r["sent_at"] else "")
                         for r in queued.values())
        raise AlreadyPosted(f"the {kind} report {label} is already in the outbox of every destination ({when}); "
                            "--again posts another copy")
    slack = {"text": f"The {kind} report for {label}", "blocks": row["slack_blocks"], "files": row["chart_paths"]}
    webhook = {"schema": PAYLOAD_SCHEMA, "type": "report", "message_key": key, "kind": kind, "period": label,
               "first_day": str(row["first_day"])[:10], "last_day": str(row["last_day"])[:10],
               "markdown": row["markdown"]}
    enqueue(conn, key, "report", destinations, {SLACK: slack, WEBHOOK: webhook}, now)
    return key


def posted(conn: Connection, message_key: str) -> list[dict[str, Any]]:
    """The outbox rows of a posting (one per destination), with their status."""
    t = notification_outbox
    query = sa.select(t.c.channel, t.c.target, t.c.status, t.c.sent_at).where(t.c.message_key == message_key)
    return [dict(r) for r in conn.execute(query).mappings()]
