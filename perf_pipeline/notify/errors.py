"""What went wrong delivering a notification, in the terms the outbox needs to decide what to do next."""

from __future__ import annotations

import math


class DeliveryError(Exception):
    """A notification did not go out; the message is one sentence naming the destination, never a secret.

    The flags tell the outbox what to do with the row:

    - ``configuration``: a bad token, an unknown channel, a missing URL. Only an operator can fix it, so the row
      stays pending and does not spend an attempt (it would otherwise die while nobody had a chance to act).
    - ``retryable``: try again later, spending an attempt; after ``retry_after`` seconds when the receiver said so.
    - ``ambiguous``: the receiver may already have the notification (the connection broke after the request was
      sent), so look before sending again, or the receiver gets it twice.
    """

    def __init__(self, message: str, *, retryable: bool, ambiguous: bool = False, configuration: bool = False,
                 retry_after: float | None = None) -> None:
        # One line, whatever a wrapped exception's text held: the message is stored in the outbox and logged.
        super().__init__(" ".join(message.splitlines()))
        self.retryable = retryable
        self.ambiguous = ambiguous
        self.configuration = configuration
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; None when it is missing or not a number of seconds."""
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
