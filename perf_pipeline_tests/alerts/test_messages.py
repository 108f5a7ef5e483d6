"""Alert messages: any group of alerts gives a Slack payload within Block Kit's limits and a webhook
document that names every alert."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.alerts.lifecycle import ESCALATION, FIRST, REPEAT, RESOLUTION, Announcement, Message
from perf_pipeline.alerts.messages import slack_payload, webhook_payload
from perf_pipeline.notify import blocks

D = dt.date(2026, 3, 2)
names = st.one_of(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=5).map(lambda s: s * 400))
numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False, width=64))


@st.composite
def states(draw) -> dict:
    kind = draw(st.sampled_from(["threshold", "anomaly", "trend"]))
    status = draw(st.sampled_from(["firing", "resolved"]))
    return {"rule": "rule", "entity_type": draw(st.sampled_from(["agent", "provider_task_type"])),
            "entity_id": draw(names), "severity": draw(st.sampled_from(["warning", "critical"])), "kind": kind,
            "metric": draw(names), "window_days": draw(st.integers(1, 90)), "observed": draw(numbers),
            "threshold": draw(numbers), "baseline": draw(numbers), "n_tasks": draw(st.integers(0, 10**9)),
            "evidence": {"direction": "below", "robust_z": draw(numbers), "slope_low": draw(numbers),
                         "slope_high": draw(numbers)},
            "status": status, "started_on": D, "last_held_on": D,
            "resolved_on": D + dt.timedelta(days=1) if status == "resolved" else None,
            "escalated": draw(st.booleans())}


groups = st.builds(
    lambda kind, members, mentions: (Message(message_key="m", rule="rule", kind=kind, as_of_date=D,
                                             announcements=tuple(Announcement(kind, D, s, ((kind, f"k{i}"),))
                                                                 for i, s in enumerate(members))), mentions),
    st.sampled_from([FIRST, REPEAT, ESCALATION, RESOLUTION]),
    st.integers(min_value=1, max_value=150).flatmap(lambda n: st.lists(states(), min_size=n, max_size=n)),
    st.lists(st.text(min_size=1, max_size=12), max_size=30))


@settings(max_examples=60, deadline=None)
@given(groups)
def test_any_alert_group_fits_in_one_slack_message(group) -> None:
    message, mentions = group
    payload = slack_payload(message, mentions)
    assert len(payload["blocks"]) <= blocks.MAX_BLOCKS
    for block in payload["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= blocks.MAX_HEADER_TEXT
        elif block["type"] == "section":
            assert len(block["text"]["text"]) <= blocks.MAX_SECTION_TEXT
        elif block["type"] == "context":
            assert len(block["elements"]) <= blocks.MAX_CONTEXT_ELEMENTS
    assert 0 < len(payload["text"]) <= blocks.MAX_FALLBACK_TEXT
    wanted = 2 + len(message.announcements) + (message.kind == ESCALATION and bool(mentions))  # + header, context
    assert ("more: `perf-pipeline query alerts" in json.dumps(payload["blocks"])) == (wanted > blocks.MAX_BLOCKS)
    document = webhook_payload(message)
    assert len(document["alerts"]) == len(message.announcements)
    json.dumps(document, allow_nan=False)  # strict JSON: NaN is null
