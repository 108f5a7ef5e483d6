"""The life of an alert, from the days its rule held: when it starts, fires, escalates and resolves,
and which of those are announced. Pure functions over frames and the notification ledger.

An alert is keyed by rule + entity. Its state as of day D depends only on the days its condition
held in the ``MAX_WINDOW_DAYS`` ending with D, so a backfilled range and day-by-day runs store the
same states, and the ``alerts`` asset depends on ``alert_conditions`` through the same 90-day
partition mapping as the windows:

- held on D: ``firing``; it started on the first held day of its run of held days, where a gap of
  fewer than ``resolve_after_days`` days without the condition does not break the run (a flapping
  entity keeps one alert);
- not held on D but within ``resolve_after_days`` of its last held day: ``resolved`` (from the
  first day it no longer holds); on the ``resolve_after_days``-th such day the resolution is final;
- escalated when it has been firing for ``escalate_after_days`` days or more.

Announcements are decided against the ledger of what was already announced (Alertmanager's
notification log): the first firing once per alert, a repeat when the last announcement is
``repeat_interval_days`` old, one escalation, and one resolved notification once the resolution is
final, only for alerts whose firing was announced. Each announcement has a key derived from the
alert, so a re-run or a backfill of the same days finds it in the ledger and announces nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from perf_pipeline.alerts.config import Lifecycle
from perf_pipeline.config import MAX_WINDOW_DAYS

FIRING, RESOLVED = "firing", "resolved"
FIRST, REPEAT, ESCALATION, RESOLUTION = "firing", "repeat", "escalation", "resolved"
KEY = ["rule", "entity_type", "entity_id"]
EVIDENCE = ["severity", "kind", "metric", "window_days", "observed", "threshold", "baseline", "n_tasks", "evidence"]
STATE_COLUMNS = ["as_of_date", *KEY, "status", "started_on", "last_held_on", "resolved_on", "resolution_final",
                 "escalated", "silenced_by", *EVIDENCE]


def alert_states(conditions: pd.DataFrame, days: list[dt.date], lifecycle: Lifecycle,
                 history_days: int = MAX_WINDOW_DAYS) -> pd.DataFrame:
    """The alerts as of each of ``days`` (``STATE_COLUMNS``; ``silenced_by`` left null), from the
    held conditions of the ``history_days`` ending with each day (``rules.held_conditions`` rows)."""
    gap = dt.timedelta(days=lifecycle.resolve_after_days)
    rows: list[dict[str, Any]] = []
    if conditions.empty:
        return pd.DataFrame(rows, columns=STATE_COLUMNS)
    held_rows: dict[tuple[Any, ...], list[dict[str, Any]]] = {}  # the records of each key, in order
    for row in conditions.dropna(subset=KEY).to_dict("records"):  # one conversion, not one per key
        held_rows.setdefault(tuple(row[column] for column in KEY), []).append(row)
    for key in sorted(held_rows):
        by_day = {row["as_of_date"]: row for row in held_rows[key]}
        held_days = sorted(by_day)
        for day in days:
            window_start = day - dt.timedelta(days=history_days - 1)
            in_window = [d for d in held_days if window_start <= d <= day]
            if not in_window or day - in_window[-1] > gap:
                continue
            last = in_window[-1]
            started = last
            for earlier in reversed(in_window[:-1]):
                if started - earlier > gap:
                    break
                started = earlier
            firing = last == day
            rows.append({
                "as_of_date": day, **dict(zip(KEY, key, strict=True)),
                "status": FIRING if firing else RESOLVED, "started_on": started, "last_held_on": last,
                "resolved_on": None if firing else last + dt.timedelta(days=1),
                "resolution_final": not firing and day - last == gap,
                "escalated": firing and (day - started).days + 1 >= lifecycle.escalate_after_days,
                "silenced_by": None,
                **{column: by_day[last][column] for column in EVIDENCE}})
    frame = pd.DataFrame(rows, columns=STATE_COLUMNS)
    return frame.sort_values(["as_of_date", *KEY], ignore_index=True)


@dataclass(frozen=True)
class Announcement:
    """One alert announced in one evaluation: ``entries`` are its ledger entries, (kind, key) (a
    first announcement that is already an escalation also records the firing)."""

    kind: str
    as_of_date: dt.date
    state: dict[str, Any]
    entries: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Message:
    """The announcements of one rule, one kind and one evaluation: one message per destination."""

    message_key: str
    rule: str
    kind: str
    as_of_date: dt.date
    announcements: tuple[Announcement, ...] = field(default_factory=tuple)


def notification_key(state: dict[str, Any], kind: str, day: dt.date | None = None) -> str:
    parts = [state["rule"], state["entity_type"], state["entity_id"], str(state["started_on"]), kind]
    return "|".join(parts + ([str(day)] if day else []))


def announcements(states: pd.DataFrame, ledger: Iterable[dict[str, Any]], lifecycle: Lifecycle,
                  silence_of: Callable[[str, str], int | None],
                  history_days: int = MAX_WINDOW_DAYS) -> tuple[list[Announcement], dict[tuple, int]]:
    """What the latest state of each alert among the evaluated days announces, given the ledger's
    entries for these alerts (``kind``, ``as_of_date``, ``notification_key`` and the alert's key and
    ``started_on``), and which alerts a silence holds back: (announcements, {(day, rule,
    entity_type, entity_id): silence id}). Silenced announcements are not recorded, so an alert
    still firing when its silence ends is announced then."""
    announced: dict[tuple, list[tuple[str, dt.date]]] = defaultdict(list)  # alert -> (kind, day)
    keys: set[str] = set()
    for entry in ledger:
        alert = (entry["rule"], entry["entity_type"], entry["entity_id"], entry["started_on"])
        announced[alert].append((entry["kind"], entry["as_of_date"]))
        keys.add(entry["notification_key"])
    # An alert firing for longer than the history a state sees starts, for that state, on the first
    # day of its window, one day later each day: it is the alert still open in the ledger.
    open_since: dict[tuple, dt.date] = {}
    for (rule, entity_type, entity_id, started), said in announced.items():
        kinds_said = {kind for kind, _ in said}
        if FIRST in kinds_said and RESOLUTION not in kinds_said:
            key = (rule, entity_type, entity_id)
            open_since[key] = min(open_since.get(key, started), started)
    repeat_after = dt.timedelta(days=lifecycle.repeat_interval_days)
    found: list[Announcement] = []
    silenced: dict[tuple, int] = {}
    # Each alert speaks once per evaluation, with its latest state: a run that catches up on several
    # recent days announces what holds now, not each day's step.
    latest = states.sort_values("as_of_date").drop_duplicates([*KEY, "started_on"], keep="last")
    for state in latest.sort_values(["as_of_date", *KEY]).to_dict("records"):
        day = state["as_of_date"]
        alert = (state["rule"], state["entity_type"], state["entity_id"], state["started_on"])
        window_start = day - dt.timedelta(days=history_days - 1)
        if state["started_on"] == window_start and not announced[alert] and alert[:3] in open_since:
            state = {**state, "started_on": open_since[alert[:3]]}
            alert = (*alert[:3], state["started_on"])
        kinds = {kind for kind, _ in announced[alert]}
        kind: str | None = None
        if state["status"] == FIRING:
            if state["escalated"] and ESCALATION not in kinds:
                kind = ESCALATION
            elif FIRST not in kinds:
                kind = FIRST
            elif max(d for k, d in announced[alert] if k != RESOLUTION) <= day - repeat_after:
                kind = REPEAT
        elif state["resolution_final"] and FIRST in kinds and RESOLUTION not in kinds:
            kind = RESOLUTION
        if kind is None:
            continue
        silence = silence_of(state["rule"], state["entity_id"])
        if silence is not None:
            silenced[(day, *alert[:3])] = silence
            continue
        new = [(kind, notification_key(state, kind, day if kind == REPEAT else None))]
        if kind == ESCALATION and FIRST not in kinds:
            new.append((FIRST, notification_key(state, FIRST)))
        if any(key in keys for _, key in new):
            continue
        keys.update(key for _, key in new)
        announced[alert].extend((k, day) for k, _ in new)
        found.append(Announcement(kind=kind, as_of_date=day, state=state, entries=tuple(new)))
    return found, silenced


def overdue_resolutions(open_alerts: list[dict[str, Any]], present: set[tuple], day: dt.date,
                        silence_of: Callable[[str, str], int | None]) -> list[Announcement]:
    """Resolved notifications the day-by-day path missed: an alert whose firing was announced and
    whose resolution was not, with no state on ``day`` (the latest evaluated day), ended more than
    ``resolve_after_days`` ago, on a day no evaluation announced (the pipeline was down, or the
    rule was removed). ``open_alerts`` are their last states, with the ``started_on`` of the ledger."""
    found = []
    for state in open_alerts:
        if (state["rule"], state["entity_type"], state["entity_id"]) in present:
            continue
        if silence_of(state["rule"], state["entity_id"]) is not None:
            continue
        resolved = {**state, "status": RESOLVED, "resolution_final": True, "escalated": False,
                    "resolved_on": state.get("resolved_on") or state["last_held_on"] + dt.timedelta(days=1)}
        found.append(Announcement(kind=RESOLUTION, as_of_date=day, state=resolved,
                                  entries=((RESOLUTION, notification_key(resolved, RESOLUTION)),)))
    return found


def group_messages(found: list[Announcement]) -> list[Message]:
    """One message per (day, rule, kind), its key derived from the announcements it carries."""
    groups: dict[tuple, list[Announcement]] = defaultdict(list)
    for announcement in found:
        groups[(announcement.as_of_date, announcement.state["rule"], announcement.kind)].append(announcement)
    messages = []
    for (day, rule, kind), members in sorted(groups.items()):
        digest = hashlib.sha256("\n".join(key for a in members for _, key in a.entries).encode()).hexdigest()[:16]
        messages.append(Message(message_key=f"alert|{rule}|{kind}|{day}|{digest}", rule=rule, kind=kind,
                                as_of_date=day, announcements=tuple(members)))
    return messages
