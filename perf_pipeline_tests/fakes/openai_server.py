"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for tests and the judge benchmark.

It speaks enough of ``POST /v1/chat/completions`` for the official ``openai`` client, and records
what it received and how many requests were in flight at once. What it answers is steered by
markers in the judged output text (the fenced ``Output`` section of the prompt):

- ``[[score:0.8]]``: every score 0.8 (default: accuracy 0.7, relevance 0.8, completeness 0.6);
- ``[[status:429:2]]``: the first 2 requests for this text get 429 with ``Retry-After: 1``;
- ``[[status:500:2]]``: the first 2 requests for this text get HTTP 500;
- ``[[malformed]]``: the answer's content is not JSON; ``[[refuse]]``: the model refuses;
- ``[[html]]``: a 200 answer whose body is an HTML page (a proxy's error page);
- ``[[no-usage]]``: the answer reports no token usage.

Everything is bounded: the server runs in daemon threads and stops with ``close()``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from perf_pipeline_tests.fakes.loopback import LoopbackServer

DEFAULT_SCORES = {"accuracy": 0.7, "relevance": 0.8, "completeness": 0.6}
OUTPUT_SECTION = re.compile(r"Output:\n<<<UNTRUSTED-(?P<nonce>[0-9a-f]+)\n(?P<text>.*?)\nUNTRUSTED-(?P=nonce)>>>",
                            re.DOTALL)


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]  # names in lower case
    arrived: float
    status: int

    @property
    def output(self) -> str | None:
        match = OUTPUT_SECTION.search(self.body["messages"][-1]["content"])
        return match["text"] if match else None


@dataclass
class FakeOpenAIServer(LoopbackServer):
    """Start with ``FakeOpenAIServer.start(latency_s=...)``; ``url`` is the client's base_url."""

    latency_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    max_in_flight: int = 0
    _in_flight: int = 0
    _seen: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @classmethod
    def start(cls, latency_s: float = 0.0) -> FakeOpenAIServer:
        server = cls(latency_s=latency_s)
        server._serve(_Handler, request_queue_size=128)
        return server

    @property
    def url(self) -> str:
        return f"{self.origin}/v1"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._seen.clear()
            self.max_in_flight = 0

    @property
    def answered(self) -> int:
        """Requests answered with 200 (the ones a provider would bill)."""
        return sum(1 for r in self.requests if r.status == 200)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _respond(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        text = OUTPUT_SECTION.search(body["messages"][-1]["content"])
        output = text["text"] if text else ""
        with self._lock:
            self._seen[output] += 1
            attempt = self._seen[output]
        status = re.search(r"\[\[status:(\d{3}):(\d+)\]\]", output)
        if status and attempt <= int(status[2]):
            code = int(status[1])
            extra = {"Retry-After": "1"} if code == 429 else {}
            return code, extra, {"error": {"message": f"simulated {code}", "type": "server_error", "code": code}}
        if "[[html]]" in output:
            return 200, {"Content-Type": "text/html"}, "<html><body>Bad gateway</body></html>"
        prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if "[[refuse]]" in output:
            message["refusal"] = "I can't help with grading this."
        elif "[[malformed]]" in output:
            message["content"] = "Scores: accuracy high, relevance fine {"
        else:
            score = re.search(r"\[\[score:([0-9.]+)\]\]", output)
            scores = dict.fromkeys(DEFAULT_SCORES, float(score[1])) if score else dict(DEFAULT_SCORES)
            message["content"] = json.dumps({**scores, "rationale": "Graded by the test server."})
        answer = {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 30, "total_tokens": prompt_tokens + 30},
        }
        if "[[no-usage]]" in output:
            del answer["usage"]
        return 200, {}, answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects
    fake: FakeOpenAIServer

    def do_POST(self) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.fake._enter()
        try:
            if self.path.rstrip("/") != "/v1/chat/completions":
                status, extra, payload = 404, {}, {"error": {"message": f"no route {self.path}"}}
            else:
                if self.fake.latency_s:
                    time.sleep(self.fake.latency_s)
                status, extra, payload = self.fake._respond(body, dict(self.headers))
        finally:
            self.fake._leave()
        with self.fake._lock:
            self.fake.requests.append(Received(body, {k.lower(): v for k, v in self.headers.items()}, arrived, status))
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    """Serve until stdin closes (the parent's end): prints the base URL on the first line."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    args = parser.parse_args()
    server = FakeOpenAIServer.start(latency_s=args.latency_ms / 1000)
    print(server.url, flush=True)
    sys.stdin.read()
    print(f"requests {len(server.requests)} max_in_flight {server.max_in_flight}", file=sys.stderr, flush=True)
    server.close()


if __name__ == "__main__":
    main()
