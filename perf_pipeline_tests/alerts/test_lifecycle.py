"""The life of an alert from the days its rule held, and what is announced, by hand-checked days."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from perf_pipeline.alerts.config import Lifecycle, load_alerts_config
from perf_pipeline.alerts.lifecycle import (
    ESCALATION,
    FIRST,
    REPEAT,
    RESOLUTION,
    alert_states,
    announcements,
    group_messages,
)
from perf_pipeline.alerts.rules import CONDITION_COLUMNS, held_conditions

D0 = dt.date(2026, 3, 1)
LIFECYCLE = Lifecycle(resolve_after_days=2, repeat_interval_days=3, escalate_after_days=4, notify_lookback_days=2)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def held(days: list[int], entity: str = "agent-1", rule: str = "low_success_rate") -> pd.DataFrame:
    return pd.DataFrame([{"as_of_date": day(n), "rule": rule, "entity_type": "agent", "entity_id": entity,
                          "severity": "warning", "kind": "threshold", "metric": "success_rate", "window_days": 7,
                          "observed": 0.5 + n / 100, "threshold": 0.8, "baseline": None, "n_tasks": 10 + n,
                          "evidence": {"direction": "below"}} for n in days], columns=CONDITION_COLUMNS)


def states_by_day(conditions: pd.DataFrame, days: range) -> dict[int, dict]:
    states = alert_states(conditions, [day(n) for n in days], LIFECYCLE)
    return {(row["as_of_date"] - D0).days: row for row in states.to_dict("records")}


def test_an_alert_fires_while_held_and_resolves_the_first_day_it_does_not() -> None:
    states = states_by_day(held([2, 3, 4]), range(0, 10))
    assert sorted(states) == [2, 3, 4, 5, 6]  # fired 2..4, resolved 5 and 6 (resolve_after 2), then gone
    assert [states[n]["status"] for n in (2, 4, 5, 6)] == ["firing", "firing", "resolved", "resolved"]
    assert {states[n]["started_on"] for n in states} == {day(2)}
    assert states[5]["resolved_on"] == day(5) and not states[5]["resolution_final"]
    assert states[6]["resolution_final"]
    assert states[4]["observed"] == 0.54 and states[6]["observed"] == 0.54  # the evidence of its last firing day


def test_a_flap_inside_resolve_after_keeps_one_alert_and_a_longer_gap_opens_a_new_one() -> None:
    states = states_by_day(held([1, 2, 4, 5, 9]), range(0, 12))
    assert states[3]["status"] == "resolved" and states[4]["status"] == "firing"
    assert states[5]["started_on"] == day(1)  # one day without the condition: the same alert
    assert states[9]["started_on"] == day(9)  # three days without it: a new alert
    assert states[7]["resolution_final"] and 8 not in states


def test_escalation_after_escalate_after_days_of_firing() -> None:
    states = states_by_day(held(list(range(0, 6))), range(0, 6))
    assert [states[n]["escalated"] for n in range(6)] == [False, False, False, True, True, True]


def test_the_state_of_a_day_only_sees_the_90_days_ending_with_it() -> None:
    states = states_by_day(held(list(range(0, 120))), range(119, 120))
    assert states[119]["started_on"] == day(119 - 89)


def announce_days(conditions: pd.DataFrame, days: range, silence=lambda rule, entity: None,
                  ledger: list | None = None) -> list[tuple[int, str]]:
    """Evaluate day by day as the schedule would, the ledger growing; (day, kind) announced."""
    ledger = [] if ledger is None else ledger
    said = []
    for n in days:
        states = alert_states(conditions, [day(n)], LIFECYCLE)
        found, _ = announcements(states, ledger, LIFECYCLE, silence)
        for a in found:
            said.append((n, a.kind))
            for kind, key in a.entries:
                ledger.append({"notification_key": key, "rule": a.state["rule"], "entity_type": "agent",
                               "entity_id": a.state["entity_id"], "started_on": a.state["started_on"],
                               "kind": kind, "as_of_date": a.as_of_date})
    return said


def test_first_repeat_escalation_and_resolved_at_their_days() -> None:
    # Held on days 0..9 (escalates on day 3, repeats every 3 days after the last announcement),
    # resolved from day 10, final on day 11.
    said = announce_days(held(list(range(0, 10))), range(0, 14))
    assert said == [(0, FIRST), (3, ESCALATION), (6, REPEAT), (9, REPEAT), (11, RESOLUTION)]


def test_a_re_evaluation_announces_nothing_new() -> None:
    ledger: list = []
    first = announce_days(held([0, 1, 2]), range(0, 3), ledger=ledger)
    again = announce_days(held([0, 1, 2]), range(0, 3), ledger=ledger)
    assert first == [(0, FIRST)] and again == []


def test_a_flap_announces_neither_a_resolution_nor_a_new_alert() -> None:
    said = announce_days(held([0, 1, 3, 4]), range(0, 8))
    assert said == [(0, FIRST), (3, ESCALATION), (6, RESOLUTION)]  # escalated: unresolved for 4 days


def test_a_silenced_alert_is_announced_when_its_silence_ends() -> None:
    silenced_until = 2  # silence 7 holds during the evaluations of days 0 and 1
    current = [0]
    ledger: list = []
    said = []
    for n in range(0, 6):
        current[0] = n
        said += announce_days(held(list(range(0, 6))), range(n, n + 1), ledger=ledger,
                              silence=lambda rule, entity: 7 if current[0] < silenced_until else None)
    assert said == [(2, FIRST), (3, ESCALATION)]


def test_an_escalation_first_seen_late_is_announced_once_as_an_escalation() -> None:
    said = announce_days(held(list(range(0, 8))), range(6, 8))
    assert said == [(6, ESCALATION)]


def test_messages_group_one_rule_and_kind_of_one_evaluation() -> None:
    conditions = pd.concat([held([0], "agent-1"), held([0], "agent-2"), held([0], "agent-3", rule="sla")])
    found, _ = announcements(alert_states(conditions, [day(0)], LIFECYCLE), [], LIFECYCLE, lambda r, e: None)
    messages = group_messages(found)
    assert [(m.rule, m.kind, len(m.announcements)) for m in messages] == [("low_success_rate", FIRST, 2),
                                                                         ("sla", FIRST, 1)]
    again, _ = announcements(alert_states(conditions, [day(0)], LIFECYCLE), [], LIFECYCLE, lambda r, e: None)
    assert [m.message_key for m in group_messages(again)] == [m.message_key for m in messages]


def window_row(entity: str, as_of: dt.date, **values) -> dict:
    return {"entity_type": "agent", "entity_id": entity, "as_of_date": as_of, "window_days": 7, "status": "ok",
            "n_tasks": 10, "success_rate": None, "p95_response_time_ms": None, "sla_compliance_rate": None,
            "avg_cost_per_task": None, **values}


@pytest.mark.parametrize("row, fires", [
    (window_row("a", D0, success_rate=0.5), True),
    (window_row("a", D0, success_rate=0.8), False),  # not below the limit
    (window_row("a", D0, success_rate=None), False),  # a null metric is not zero
    (window_row("a", D0, success_rate=0.1, status="insufficient_data", n_tasks=3), False),
    (window_row("a", D0, success_rate=0.1, window_days=30), False),  # another window
])
def test_thresholds_never_fire_on_missing_data(row: dict, fires: bool) -> None:
    rules = [load_alerts_config().rule("low_success_rate")]
    found = held_conditions(rules, pd.DataFrame([row]), pd.DataFrame(), pd.DataFrame())
    assert len(found) == int(fires)
    if fires:
        assert found.iloc[0][["observed", "threshold", "n_tasks", "window_days"]].tolist() == [0.5, 0.8, 10, 7]


def anomaly_row(metric: str, z: float, direction: str = "worse") -> dict:
    return {"entity_type": "provider_task_type", "entity_id": "openai/bug_fix", "date": D0, "metric": metric,
            "observed": 2.0, "baseline_median": 1.0, "baseline_mad": 0.1, "baseline_days": 30, "robust_z": z,
            "is_anomaly": True, "direction": direction}


def test_several_anomalous_metrics_of_an_entity_are_one_alert_led_by_the_furthest() -> None:
    rules = [load_alerts_config().rule("provider_anomaly")]
    anomalies = pd.DataFrame([anomaly_row("avg_cost_per_task", 4.0), anomaly_row("success_rate", -6.5),
                              anomaly_row("p95_response_time_ms", 9.0, direction="better")])
    [row] = held_conditions(rules, pd.DataFrame(), anomalies, pd.DataFrame()).to_dict("records")
    assert row["metric"] == "success_rate" and row["evidence"]["robust_z"] == -6.5
    assert row["evidence"]["metrics"] == {"success_rate": -6.5, "avg_cost_per_task": 4.0}


def test_an_alert_firing_longer_than_the_history_stays_one_alert() -> None:
    """Past 90 days a state's start slides with its window; the announcements still see the alert
    first announced on day 0: repeats every 3 days, never a second first firing or escalation."""
    said = announce_days(held(list(range(0, 130))), range(0, 130))
    assert said[:2] == [(0, FIRST), (3, ESCALATION)]
    assert said[2:] == [(n, REPEAT) for n in range(6, 130, 3)]
