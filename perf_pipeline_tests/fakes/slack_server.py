"""A Slack Web API stand-in on 127.0.0.1, for tests: the real ``slack_sdk`` client talks to it over HTTP.

It speaks the methods the notifier uses: ``chat.postMessage`` (checks the bearer token, the channel and Block
Kit's limits), ``conversations.history`` (newest first, metadata with ``include_all_metadata``), and the three
steps of ``files_upload_v2``: ``files.getUploadURLExternal`` hands back an ``upload_url`` pointing at this
server, ``POST /upload/<file_id>`` takes the bytes, ``files.completeUploadExternal`` shares them in a channel.

Faults for the next API calls: ``fail_next(status=429, retry_after=1)``, ``fail_next(status=500)``, and
``drop_response_next()``, which does the work (a message is stored) and then closes the connection without
answering, as when a response is lost. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from perf_pipeline_tests.fakes.loopback import LoopbackServer

MAX_BLOCKS, MAX_SECTION_TEXT, MAX_HEADER_TEXT, MAX_TEXT = 50, 3000, 150, 40_000


@dataclass
class Received:
    path: str  # "/api/chat.postMessage", "/upload/F000001"
    params: dict[str, Any]  # query, form or JSON body, merged; empty for uploads
    headers: dict[str, str]  # names in lower case
    arrived: float
    status: int | None  # None when the response was dropped

    @property
    def method(self) -> str:
        """The Web API method, e.g. ``chat.postMessage``; the path for anything else."""
        return self.path.removeprefix("/api/")


@dataclass
class Upload:
    file_id: str
    filename: str
    title: str
    data: bytes
    channel: str
    thread_ts: str | None


@dataclass
class _Fault:
    status: int | None  # None: drop the response
    count: int
    retry_after: float | None
    method: str | None


@dataclass
class FakeSlackServer(LoopbackServer):
    """Start with ``FakeSlackServer.start(token=..., channels=...)``; ``url`` is the client's base_url."""

    token: str = "xoxb-test-token"
    channels: frozenset[str] = frozenset({"C0ALERTS"})
    history_readable: bool = True  # False: conversations.history answers missing_scope
    requests: list[Received] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    _messages: list[dict[str, Any]] = field(default_factory=list)
    _pending_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @classmethod
    def start(cls, token: str = "xoxb-test-token", channels: tuple[str, ...] = ("C0ALERTS",),
              history_readable: bool = True) -> FakeSlackServer:
        server = cls(token=token, channels=frozenset(channels), history_readable=history_readable)
        server._serve(_Handler)
        return server

    @property
    def url(self) -> str:
        return f"{self.origin}/api/"

    def fail_next(self, status: int = 500, count: int = 1, retry_after: float | None = None,
                  method: str | None = None) -> None:
        """Answer the next ``count`` API calls (of ``method`` only, if given) with ``status``; a 429 carries
        ``Retry-After`` (1 s unless given)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults.append(_Fault(status, count, retry_after, method))

    def drop_response_next(self, count: int = 1, method: str | None = None) -> None:
        """Process the next ``count`` API calls, then close their connections without a response."""
        with self._lock:
            self._faults.append(_Fault(None, count, None, method))

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Stored messages in the order they were posted: channel, ts, text, blocks, metadata, thread_ts."""
        with self._lock:
            return [dict(m) for m in self._messages if channel is None or m["channel"] == channel]

    def calls(self, method: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _answer(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        token = headers.get("authorization", "").removeprefix("Bearer ") or params.get("token")
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}
        handler = _METHODS.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        channel = params.get("channel") or params.get("channel_id")
        if channel not in self.channels and (channel is not None or method in _NEEDS_CHANNEL):
            return {"ok": False, "error": "channel_not_found"}
        with self._lock:
            return handler(self, params)

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        blocks = _json_param(params.get("blocks")) or []
        sections = [b["text"]["text"] for b in blocks if b.get("type") == "section" and "text" in b]
        headers = [b["text"]["text"] for b in blocks if b.get("type") == "header"]
        if (len(blocks) > MAX_BLOCKS or any(len(t) > MAX_SECTION_TEXT for t in sections)
                or any(len(t) > MAX_HEADER_TEXT for t in headers)):
            return {"ok": False, "error": "invalid_blocks"}
        if len(params.get("text") or "") > MAX_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        ts = f"{int(time.time())}.{len(self._messages) + 1:06d}"
        self._messages.append({"channel": params["channel"], "ts": ts, "text": params.get("text"), "blocks": blocks,
                               "metadata": _json_param(params.get("metadata")), "thread_ts": params.get("thread_ts")})
        return {"ok": True, "channel": params["channel"], "ts": ts, "message": {"text": params.get("text"), "ts": ts}}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.history_readable:
            return {"ok": False, "error": "missing_scope", "needed": "channels:history"}
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        stored = [m for m in reversed(self._messages) if m["channel"] == params["channel"]]
        limit = int(params.get("limit", 100))
        found = [{"type": "message", "ts": m["ts"], "text": m["text"], "blocks": m["blocks"], "bot_id": "B0PERF",
                  **({"metadata": m["metadata"]} if with_metadata and m["metadata"] else {})} for m in stored[:limit]]
        return {"ok": True, "messages": found, "has_more": len(stored) > limit}

    def _upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{len(self._pending_files) + 1:06d}"
        self._pending_files[file_id] = {"filename": params.get("filename"), "length": int(params.get("length", 0)),
                                        "data": None}
        return {"ok": True, "upload_url": f"{self.origin}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = _json_param(params.get("files")) or []
        pending = [self._pending_files.get(f["id"]) for f in files]
        if not files or any(p is None or p["data"] is None for p in pending):
            return {"ok": False, "error": "invalid_arguments"}
        for entry, upload in zip(files, pending, strict=True):
            self.uploads.append(Upload(entry["id"], upload["filename"], entry.get("title") or upload["filename"],
                                       upload["data"], params.get("channel_id"), params.get("thread_ts")))
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    def _store_upload(self, file_id: str, data: bytes) -> int:
        with self._lock:
            pending = self._pending_files.get(file_id)
            if pending is None:
                return 404
            pending["data"] = data
            return 200


_METHODS = {
    "chat.postMessage": FakeSlackServer._post_message,
    "conversations.history": FakeSlackServer._history,
    "files.getUploadURLExternal": FakeSlackServer._upload_url,
    "files.completeUploadExternal": FakeSlackServer._complete_upload,
}


_NEEDS_CHANNEL = ("chat.postMessage", "conversations.history")


def _json_param(value: Any) -> Any:
    """A structured parameter: JSON bodies carry it as is, form bodies as a JSON string."""
    return json.loads(value) if isinstance(value, str) else value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeSlackServer

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        arrived = time.monotonic()
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if url.path.startswith("/upload/"):
            status = self.fake._store_upload(url.path.removeprefix("/upload/"), body)
            self._record(Received(url.path, {}, headers, arrived, status))
            self._send(status, b"OK" if status == 200 else b"no such upload", "text/plain")
            return
        params: dict[str, Any] = dict(parse_qsl(url.query))
        if headers.get("content-type", "").startswith("application/json"):
            params.update(json.loads(body or b"{}"))
        else:
            params.update(parse_qsl(body.decode()))
        method = url.path.removeprefix("/api/")
        fault = self.fake._take_fault(method)
        if fault is not None and fault.status is not None:
            self._record(Received(url.path, params, headers, arrived, fault.status))
            error = "ratelimited" if fault.status == 429 else "fatal_error"
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            self._send(fault.status, json.dumps({"ok": False, "error": error}).encode(), "application/json", extra)
            return
        answer = self.fake._answer(method, params, headers)
        if fault is not None:  # processed, but the response is lost
            self._record(Received(url.path, params, headers, arrived, None))
            self.close_connection = True
            return
        self._record(Received(url.path, params, headers, arrived, 200))
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _record(self, received: Received) -> None:
        with self.fake._lock:
            self.fake.requests.append(received)

    def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
