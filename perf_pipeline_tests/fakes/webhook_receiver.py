"""A webhook receiver on 127.0.0.1, for tests: it accepts a POST on any path and behaves as a careful receiver
should, keeping every attempt in ``requests`` but each notification once in ``delivered``, by its
``Idempotency-Key``.

Faults for the next requests: ``fail_next(status, count, retry_after, location)`` answers with that status (and
a ``Retry-After`` or ``Location`` header when given); ``drop_response_next(count)`` takes the notification (it is
delivered) and then closes the connection without answering, as when a response is lost.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from perf_pipeline.notify.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from perf_pipeline_tests.fakes.loopback import LoopbackServer


@dataclass
class Received:
    path: str  # with the query string
    headers: dict[str, str]  # names in lower case
    body: bytes
    arrived: float
    status: int | None  # None when the response was dropped


@dataclass
class _Fault:
    status: int | None  # None: drop the response
    count: int
    retry_after: float | None
    location: str | None = None


@dataclass
class FakeWebhookReceiver(LoopbackServer):
    """Start with ``FakeWebhookReceiver.start()``; post to ``url`` + any path."""

    requests: list[Received] = field(default_factory=list)
    delivered: dict[str, bytes] = field(default_factory=dict)  # Idempotency-Key -> body, first delivery only
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @classmethod
    def start(cls) -> FakeWebhookReceiver:
        receiver = cls()
        receiver._serve(_Handler)
        return receiver

    @property
    def url(self) -> str:
        return self.origin

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None,
                  location: str | None = None) -> None:
        """Answer the next ``count`` requests with ``status``, and a ``Location`` header for a redirect."""
        with self._lock:
            self._faults.append(_Fault(status, count, retry_after, location))

    def drop_response_next(self, count: int = 1) -> None:
        with self._lock:
            self._faults.append(_Fault(None, count, None))

    def verify(self, secret: str) -> bool:
        """Whether requests arrived and every one is signed with ``secret``, checked as a receiver would."""
        with self._lock:
            signatures = [(r.body, r.headers.get(SIGNATURE_HEADER.lower())) for r in self.requests]
        return bool(signatures) and all(verify(secret, body, header) for body, header in signatures)

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.count -= 1
            if fault.count <= 0:
                self._faults.pop(0)
            return fault

    def _receive(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)
            key = received.headers.get(IDEMPOTENCY_HEADER.lower())
            if received.status in (None, 200) and key is not None:
                self.delivered.setdefault(key, received.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeWebhookReceiver

    def do_POST(self) -> None:
        arrived = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = self.fake._take_fault()
        status = 200 if fault is None else fault.status
        self.fake._receive(Received(self.path, headers, body, arrived, status))
        if status is None:  # delivered, but the response is lost
            self.close_connection = True
            return
        data = b'{"ok": true}' if status == 200 else b'{"ok": false}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if fault is not None and fault.retry_after is not None:
            self.send_header("Retry-After", f"{fault.retry_after:g}")
        if fault is not None and fault.location is not None:
            self.send_header("Location", fault.location)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
