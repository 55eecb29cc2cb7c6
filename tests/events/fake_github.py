"""A local stand-in for the GitHub REST API: contents, and a hook's deliveries (list + redeliver).

It speaks the documented shapes: `GET /repos/{o}/{r}/contents/{path}` (base64 file object, 404
otherwise), `GET /repos/{o}/{r}/hooks/{id}/deliveries` and `GET /orgs/{org}/hooks/{id}/deliveries`
(newest first, `per_page`, a `cursor` in the `Link: <…>; rel="next"` header), and
`POST …/deliveries/{delivery_id}/attempts` (202). Every call needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from bench.local_http import QuietHandler, base_url, serve, shut

_CONTENTS = re.compile(r"^/repos/([^/]+/[^/]+)/contents/(.+)$")
_DELIVERIES = re.compile(r"^/((?:repos/[^/]+/[^/]+|orgs/[^/]+)/hooks/\d+)/deliveries$")
_ATTEMPTS = re.compile(r"^/((?:repos/[^/]+/[^/]+|orgs/[^/]+)/hooks/\d+)/deliveries/(\d+)/attempts$")


@dataclass
class FakeGitHub:
    """The server and its state; tests fill `files` and `deliveries` and read `requests`/`redelivered`."""

    token: str
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    deliveries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # hook path → newest first
    redelivered: list[tuple[str, int]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail_next: int = 0  # answer 502 to this many requests first (retry tests)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Base URL, like GITHUB_API_URL."""
        assert self._server is not None
        return base_url(self._server)

    def start(self) -> None:
        """Listen on a free port in a background thread."""
        fake = self

        class Handler(QuietHandler):
            _send = QuietHandler.reply_json

            def _guard(self) -> bool:
                fake.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, {"message": "Bad credentials"})
                    return False
                if fake.fail_next > 0:
                    fake.fail_next -= 1
                    self._send(502, {"message": "Server Error"})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._guard():
                    return
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if match := _CONTENTS.match(url.path):
                    content = fake.files.get((match.group(1), match.group(2)))
                    if content is None:
                        self._send(404, {"message": "Not Found"})
                        return
                    encoded = base64.b64encode(content).decode()
                    self._send(200, {"type": "file", "encoding": "base64", "content": encoded, "path": match.group(2)})
                    return
                if match := _DELIVERIES.match(url.path):
                    self._deliveries(match.group(1), query)
                    return
                self._send(404, {"message": "Not Found"})

            def _deliveries(self, hook: str, query: dict[str, list[str]]) -> None:
                items = fake.deliveries.get(hook)
                if items is None:
                    self._send(404, {"message": "Not Found"})
                    return
                per_page = int((query.get("per_page") or ["30"])[0])
                start = int((query.get("cursor") or ["0"])[0])
                page = items[start : start + per_page]
                headers = {}
                if start + per_page < len(items):
                    nxt = f"{fake.url}/{hook}/deliveries?per_page={per_page}&cursor={start + per_page}"
                    headers["Link"] = f'<{nxt}>; rel="next"'
                self._send(200, page, headers)

            def do_POST(self) -> None:
                if not self._guard():
                    return
                match = _ATTEMPTS.match(urlparse(self.path).path)
                if not match or match.group(1) not in fake.deliveries:
                    self._send(404, {"message": "Not Found"})
                    return
                fake.redelivered.append((match.group(1), int(match.group(2))))
                self._send(202, {})

        self._server = serve(Handler)

    def stop(self) -> None:
        """Shut the server down."""
        shut(self._server)
