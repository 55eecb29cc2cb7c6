"""A local stand-in for an identity provider's SCIM API: `GET /scim/v2/Users` as Okta and Entra serve it.

It speaks RFC 7644 listing: `startIndex` (1-based) and `count`, a ListResponse with `totalResults`,
`itemsPerPage` and `Resources`; 401 with a SCIM Error without the right bearer token; and, on
demand, 429 with `Retry-After` or 500 for the next requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from bench.local_http import QuietHandler, base_url, serve, shut

_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass
class FakeIdp:
    """The server and its state; tests fill `users` and read `requests`."""

    token: str
    users: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    throttle_next: int = 0  # answer 429 (Retry-After: 0) to this many requests first
    fail_next: int = 0  # answer 500 to this many requests first
    fail_always: bool = False
    max_page: int = 2  # a server-side page cap, smaller than what the client asks for
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The SCIM base URL, like IDP_SCIM_URL."""
        assert self._server is not None
        return base_url(self._server) + "/scim/v2"

    def user(self, email: str, *, active: bool | str = True) -> None:
        """Add a user the way the IdP lists one."""
        self.users.append(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": f"u{len(self.users) + 1}",
                "userName": email,
                "active": active,
                "emails": [{"value": email, "type": "work", "primary": True}],
            }
        )

    def start(self) -> None:
        """Listen on a free port in a background thread."""
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake.requests.append(self.path)
                url = urlparse(self.path)
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self.reply_json(401, {"schemas": [_ERROR], "status": "401", "detail": "Unauthorized"})
                    return
                if fake.throttle_next > 0:
                    fake.throttle_next -= 1
                    self.reply_json(429, {"schemas": [_ERROR], "status": "429"}, headers={"Retry-After": "0"})
                    return
                if fake.fail_always or fake.fail_next > 0:
                    fake.fail_next = max(fake.fail_next - 1, 0)
                    self.reply_json(500, {"schemas": [_ERROR], "status": "500", "detail": "boom"})
                    return
                if url.path != "/scim/v2/Users":
                    self.reply_json(404, {"schemas": [_ERROR], "status": "404"})
                    return
                query = parse_qs(url.query)
                start = max(int(query.get("startIndex", ["1"])[0]), 1)
                count = min(int(query.get("count", ["100"])[0]), fake.max_page)
                page = fake.users[start - 1 : start - 1 + count]
                self.reply_json(
                    200,
                    {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                        "totalResults": len(fake.users),
                        "startIndex": start,
                        "itemsPerPage": len(page),
                        "Resources": page,
                    },
                )

        self._server = serve(Handler)

    def stop(self) -> None:
        """Shut the server down."""
        shut(self._server)
