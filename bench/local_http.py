"""The plumbing every local stand-in for a remote API shares (GitHub, Slack, identity, revocation).

Each fake keeps its own routes in a `QuietHandler` subclass and its state on its own object; this
module only starts a threaded server on a free loopback port, answers, and stops it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean and answers in one call."""

    def log_message(self, *_: Any) -> None:
        return

    def reply(
        self, status: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        """Send a whole response; a client that already gave up (timeout tests) is ignored."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def reply_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Send `body` as JSON."""
        self.reply(status, json.dumps(body).encode(), "application/json", headers)


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """Serve `handler` on a free 127.0.0.1 port from daemon threads; the server is running on return."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def base_url(server: ThreadingHTTPServer) -> str:
    """http://127.0.0.1:<port> of a running server, without a trailing slash."""
    return f"http://127.0.0.1:{server.server_address[1]}"


def shut(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and close the socket (no-op for a server never started)."""
    if server is not None:
        server.shutdown()
        server.server_close()
