"""What the fake servers share: an HTTP server on 127.0.0.1 (a free port), served by a daemon thread
until ``close``; its handler class reaches the fake as ``self.fake``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Mixed into each fake (a dataclass with an ``_httpd`` field)."""

    _httpd: ThreadingHTTPServer | None

    def _serve(self, handler: type[BaseHTTPRequestHandler], request_queue_size: int | None = None) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (handler,), {"fake": self}))
        self._httpd.daemon_threads = True
        if request_queue_size:
            self._httpd.request_queue_size = request_queue_size
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def origin(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
