"""What an alert message says: a Slack Block Kit message and a webhook JSON document for each
grouped ``Message`` (one rule, one kind, one evaluation). Pure: the payloads are stored in the
outbox as they are built here, so every retry sends the same bytes.

The webhook document is versioned (``schema``); fields are only ever added within a version.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from perf_pipeline.alerts.lifecycle import ESCALATION, FIRST, REPEAT, RESOLUTION, Message
from perf_pipeline.notify import blocks
from perf_pipeline.notify.webhook import PAYLOAD_SCHEMA

TITLES = {FIRST: "firing", REPEAT: "still firing", ESCALATION: "escalated", RESOLUTION: "resolved"}
ICONS = {FIRST: ":rotating_light:", REPEAT: ":repeat:", ESCALATION: ":sos:", RESOLUTION: ":white_check_mark:"}
# Where the full list is when a message is cut to Slack's limits.
POINTER = "… and {n} more: `perf-pipeline query alerts --from %s --to %s` lists them all."


def severity(message: Message) -> str:
    """The message's severity: the rule's, raised to critical by an escalation."""
    declared = {a.state["severity"] for a in message.announcements}
    return "critical" if message.kind == ESCALATION or "critical" in declared else "warning"


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    value = float(value)
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def describe(state: dict[str, Any]) -> str:
    """One line of evidence: what was observed against what, over which window, from how many tasks."""
    evidence = state.get("evidence") or {}
    metric = state["metric"]
    if state["kind"] == "threshold":
        text = (f"{metric} {_number(state['observed'])} {evidence.get('direction', 'beyond')} "
                f"{_number(state['threshold'])} over {state['window_days']} days (n = {state['n_tasks']} tasks)")
    elif state["kind"] == "anomaly":
        text = (f"{metric} {_number(state['observed'])} against a baseline median of {_number(state['baseline'])} "
                f"(robust z {_number(evidence.get('robust_z'))}, {state['window_days']} baseline days)")
    else:
        text = (f"{metric} {evidence.get('direction', 'trending')}: {_number(state['observed'])} per day over "
                f"{state['window_days']} days (95 % interval {_number(evidence.get('slope_low'))} to "
                f"{_number(evidence.get('slope_high'))}, {state['n_tasks']} days of data)")
    return text


def _since(state: dict[str, Any]) -> str:
    if state["status"] == "resolved":
        return f"resolved on {state['resolved_on']} (firing {state['started_on']} to {state['last_held_on']})"
    return f"firing since {state['started_on']}"


def slack_payload(message: Message, mentions: list[str]) -> dict[str, Any]:
    """``text``, ``blocks`` (within Block Kit's limits) and no files."""
    level = severity(message)
    count = len(message.announcements)
    entity_types = sorted({a.state["entity_type"] for a in message.announcements})
    title = (f"{ICONS[message.kind]} {level.upper()} {message.rule}: {count} "
             f"{'/'.join(entity_types)}{'s' if count > 1 else ''} {TITLES[message.kind]}")
    body = [blocks.header(title)]
    if mentions and message.kind == ESCALATION:
        body.append(blocks.section("Escalated to " + " ".join(f"<@{m}>" for m in mentions)))
    for announcement in message.announcements:
        state = announcement.state
        body.append(blocks.section(f"*{blocks.escape(state['entity_id'])}* ({state['entity_type']}): "
                                   f"{blocks.escape(describe(state))}; {_since(state)}"))
    body.append(blocks.context(f"as of {message.as_of_date} · rule `{message.rule}` · perf_pipeline"))
    fitted = blocks.fit(body, POINTER % (message.as_of_date, message.as_of_date))
    return {"text": blocks.slack_text(fitted), "blocks": fitted, "files": []}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def webhook_payload(message: Message) -> dict[str, Any]:
    """The versioned JSON document webhook receivers get (README: Webhooks)."""
    fields = ["status", "started_on", "last_held_on", "resolved_on", "escalated", "kind", "metric", "window_days",
              "observed", "threshold", "baseline", "n_tasks", "evidence"]
    return {
        "schema": PAYLOAD_SCHEMA, "type": "alert", "message_key": message.message_key, "notification": message.kind,
        "rule": message.rule, "severity": severity(message), "as_of_date": message.as_of_date.isoformat(),
        "alerts": [{"dedup_key": f"{a.state['rule']}|{a.state['entity_type']}|{a.state['entity_id']}",
                    "entity_type": a.state["entity_type"], "entity_id": a.state["entity_id"],
                    "summary": describe(a.state), **{f: _plain(a.state[f]) for f in fields}}
                   for a in message.announcements],
    }
