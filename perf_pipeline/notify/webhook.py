"""Webhook delivery: a signed POST with an idempotency key, so a receiver can check who sent it and drop repeats.

A webhook URL often carries its secret (a token in the path or the query), so errors name the receiver by
:func:`mask_url` only, and the HTTP client's own exceptions, which may quote the URL, are not chained.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

import httpx2

from perf_pipeline.notify.errors import DeliveryError, parse_retry_after

IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "X-Perf-Signature-256"
PAYLOAD_SCHEMA = "perf_pipeline.notification/v1"  # the ``schema`` field of every JSON body this pipeline sends
USER_AGENT = "perf-pipeline"
_UNPARSEABLE = "<unparseable URL>"

# Failures before the request was sent in full: the receiver cannot have processed it.
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.WriteError, httpx2.WriteTimeout)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 of the exact body bytes, GitHub's ``sha256=<hex>`` scheme."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret``. Receivers copy this function, so it needs nothing else."""
    if header is None:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode())  # bytes: a non-ASCII header is simply wrong


def mask_url(url: str) -> str:
    """``scheme://host[:port]/…``: enough to tell which receiver failed, without the userinfo, path or query."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, a malformed IPv6 address
        return _UNPARSEABLE
    if not parts.scheme or not host:
        return _UNPARSEABLE
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{'' if port is None else f':{port}'}/…"


class WebhookSender:
    """Posts notification bodies to webhook URLs, signing them when a secret is configured."""

    def __init__(self, secret: str | None, timeout: float = 10.0) -> None:
        self._secret = secret
        self._timeout = timeout

    def send(self, url: str, body: bytes, idempotency_key: str) -> int:
        """POST ``body`` to ``url``; returns the 2xx status, raises :class:`DeliveryError` otherwise.

        Redirects are not followed: the body would go to a receiver nobody configured.
        """
        masked = mask_url(url)
        where = f"webhook {masked}"
        if not masked.startswith(("http://", "https://")):  # also a missing or unparseable URL
            raise DeliveryError(f"Cannot deliver to {where}: the URL is missing or not http(s); fix the webhook "
                                "configuration.", retryable=False, configuration=True)
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: idempotency_key, "User-Agent": USER_AGENT}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            # A client per notification: a pooled connection the receiver closed while idle would fail as
            # "disconnected", which reads as ambiguous and costs a needless look-up.
            with httpx2.Client(timeout=self._timeout, follow_redirects=False) as client:
                response = client.post(url, content=body, headers=headers)
        except httpx2.InvalidURL:
            raise DeliveryError(f"Cannot deliver to {where}: the URL is not valid; fix the webhook configuration.",
                                retryable=False, configuration=True) from None
        except _NOT_SENT as exc:
            raise DeliveryError(f"Could not deliver to {where}: {type(exc).__name__} before the request was sent.",
                                retryable=True) from None
        except httpx2.TransportError as exc:
            raise DeliveryError(f"Could not deliver to {where}: {type(exc).__name__} after the request was sent, so "
                                "the receiver may have it.", retryable=True, ambiguous=True) from None
        if response.is_success:
            return response.status_code
        raise _status_error(where, response.status_code, parse_retry_after(response.headers.get("Retry-After")))


def _status_error(where: str, status: int, retry_after: float | None) -> DeliveryError:
    if status == 429:
        return DeliveryError(f"The {where} is rate limiting (HTTP 429); the notification will be sent again later.",
                             retryable=True, retry_after=retry_after)
    if status == 408 or status >= 500:
        return DeliveryError(f"The {where} failed with HTTP {status}; the notification will be sent again later.",
                             retryable=True, retry_after=retry_after)
    not_followed = " (redirects are not followed: configure the final URL)" if 300 <= status < 400 else ""
    # The receiver understood and refused; retried all the same, it is dead-lettered after the last attempt.
    return DeliveryError(f"The {where} rejected the notification with HTTP {status}{not_followed}; it will be "
                         "dead-lettered after the last attempt.", retryable=True)
