"""The notification outbox: messages written in the transaction of what caused them (an alert's
state, a failed run, a report), then delivered and retried by the ``notification_sender`` sensor.

Each row is one message to one destination, keyed by its delivery key (the idempotency key a
webhook receives). A row is ``pending`` until delivered (``sent``) or until ``max_attempts``
failures (``dead``: kept, counted, shown by a check). Retries back off exponentially; a
configuration error (a bad token, an unknown channel) does not count as an attempt, so the rows
wait for the fix instead of dying.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from perf_pipeline.warehouse.db import insert_new_rows
from perf_pipeline.warehouse.schema import notification_outbox

PENDING, SENT, DEAD = "pending", "sent", "dead"
SLACK, WEBHOOK = "slack", "webhook"


@dataclass(frozen=True)
class Delivery:
    """A pending row, as the sender reads it."""

    delivery_key: str
    message_key: str
    channel: str
    target: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    ambiguous: bool


def enqueue(conn: Connection, message_key: str, kind: str, destinations: Sequence[tuple[str, str]],
            payloads: dict[str, dict[str, Any]], now: dt.datetime) -> int:
    """Add the message to the outbox for each (channel, target) of ``destinations``, with the
    payload of its channel; a delivery key already there is left as it is (a re-run adds nothing).
    Returns the number of destinations."""
    rows = [{"delivery_key": f"{message_key}|{channel}:{target}", "message_key": message_key, "channel": channel,
             "target": target, "kind": kind, "payload": payloads[channel], "status": PENDING, "attempts": 0,
             "next_attempt_at": now, "last_error": None, "ambiguous": False, "created_at": now, "sent_at": None,
             "receipt": None}
            for channel, target in destinations]
    insert_new_rows(conn, notification_outbox, rows)
    return len(rows)


def due(conn: Connection, now: dt.datetime, limit: int) -> list[Delivery]:
    """Pending rows whose next attempt is due, oldest first."""
    t = notification_outbox
    query = (sa.select(t.c.delivery_key, t.c.message_key, t.c.channel, t.c.target, t.c.kind, t.c.payload,
                       t.c.attempts, t.c.ambiguous)
             .where(t.c.status == PENDING, t.c.next_attempt_at <= now)
             .order_by(t.c.created_at, t.c.delivery_key).limit(limit))
    return [Delivery(*row) for row in conn.execute(query)]


def claim(conn: Connection, delivery: Delivery, now: dt.datetime, lease_seconds: float) -> bool:
    """Take the row for one attempt, before sending: it is not due again for ``lease_seconds``, and
    counts as possibly delivered (``ambiguous``) until the attempt is recorded. So two senders (the
    daemon's sensor and a ``perf-pipeline run``) never send it at once, and after a crash between the
    send and its record the next attempt first looks whether it landed. False: another sender has it."""
    t = notification_outbox
    taken = conn.execute(t.update().where(t.c.delivery_key == delivery.delivery_key, t.c.status == PENDING,
                                          t.c.next_attempt_at <= now)
                         .values(next_attempt_at=now + dt.timedelta(seconds=lease_seconds), ambiguous=True))
    return taken.rowcount == 1


def defer(conn: Connection, channel: str, target: str, until: dt.datetime, error: str) -> int:
    """Hold every pending row of a misconfigured destination until ``until``, attempts untouched (the
    other destinations' rows come first meanwhile); how many."""
    t = notification_outbox
    held = conn.execute(t.update().where(t.c.channel == channel, t.c.target == target, t.c.status == PENDING)
                        .values(next_attempt_at=until, last_error=error[:2000]))
    return held.rowcount


def mark_sent(conn: Connection, delivery_key: str, now: dt.datetime, receipt: str) -> None:
    t = notification_outbox
    conn.execute(t.update().where(t.c.delivery_key == delivery_key).values(
        status=SENT, sent_at=now, receipt=receipt, attempts=t.c.attempts + 1, last_error=None, ambiguous=False))


def backoff(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base, 2 x base, 4 x base, ..."""
    return min(max_seconds, base_seconds * 2 ** max(attempts - 1, 0))


def mark_failed(conn: Connection, delivery: Delivery, now: dt.datetime, error: str, *, counts: bool,
                ambiguous: bool, wait_seconds: float, max_attempts: int) -> str:
    """Record a failed attempt; the row's new status (``dead`` after ``max_attempts`` counted ones)."""
    attempts = delivery.attempts + (1 if counts else 0)
    status = DEAD if attempts >= max_attempts else PENDING
    t = notification_outbox
    conn.execute(t.update().where(t.c.delivery_key == delivery.delivery_key).values(
        status=status, attempts=attempts, last_error=error[:2000], ambiguous=ambiguous or delivery.ambiguous,
        next_attempt_at=now + dt.timedelta(seconds=wait_seconds)))
    return status


def counts(conn: Connection) -> dict[str, int]:
    """Rows per status (pending, sent, dead), zeros included."""
    t = notification_outbox
    found = dict(conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status)).all())
    return {status: int(found.get(status, 0)) for status in (PENDING, SENT, DEAD)}
