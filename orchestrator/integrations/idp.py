"""The identity provider's user directory, read for reconciliation: SCIM `GET /Users`, or a JSON export.

`ScimDirectory` pages through `GET {IDP_SCIM_URL}/Users?startIndex=…&count=…` with the bearer
IDP_SCIM_TOKEN until `totalResults` is reached (or a page comes back empty). A 429 waits for its
`Retry-After` (capped) and asks again; network errors and 5xx are retried with backoff a few times
and then raise TransientIntegrationError; 401/403 and anything else raise IntegrationError. A
listing is complete or it is an error: the caller never sees half a directory.

`users_from_file` reads the same users from a file: a SCIM ListResponse, or a JSON list of Users.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from orchestrator import __version__
from orchestrator.errors import IntegrationError, TransientIntegrationError

_ATTEMPTS = 4
_MAX_RETRY_AFTER = 60.0
_MAX_PAGES = 10_000
pause = time.sleep  # the wait between attempts (tests replace it)


@dataclass(frozen=True)
class DirectoryUser:
    """A user as the IdP lists them: their addresses (userName and emails, lower-cased) and status."""

    id: str
    addresses: frozenset[str]
    active: bool


class ScimDirectory:
    """Reads the users of an IdP's SCIM API; one instance per reconciliation."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        page_size: int = 100,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        headers = {"Accept": "application/scim+json", "User-Agent": f"microapp-orchestrator/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.page_size = page_size
        self._sleep = sleep or (lambda seconds: pause(seconds))
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def __enter__(self) -> ScimDirectory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def users(self) -> list[DirectoryUser]:
        """Every user, all pages (an error rather than a partial list)."""
        users: list[DirectoryUser] = []
        start = 1
        for _ in range(_MAX_PAGES):
            page = self._page(start)
            resources = page.get("Resources") or []
            if not isinstance(resources, list):
                raise IntegrationError("the IdP's ListResponse has no Resources list")
            users.extend(_user(item) for item in resources if isinstance(item, dict))
            total = page.get("totalResults")
            if not resources or not isinstance(total, int) or len(users) >= total:
                return users
            start += len(resources)
        raise IntegrationError(f"the IdP listed more than {_MAX_PAGES} pages of users")

    def _page(self, start: int) -> dict[str, Any]:
        params = {"startIndex": start, "count": self.page_size}
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                response = self._http.get("Users", params=params)
            except httpx.TransportError as exc:
                if attempt == _ATTEMPTS:
                    raise TransientIntegrationError(f"the IdP is unreachable: {exc}") from exc
                self._sleep(min(2.0**attempt, 10.0))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == _ATTEMPTS:
                    raise TransientIntegrationError(f"the IdP answered {response.status_code} to GET /Users")
                self._sleep(_retry_after(response, default=min(2.0**attempt, 10.0)))
                continue
            if response.status_code in (401, 403):
                raise IntegrationError(f"the IdP refused the token ({response.status_code}): check IDP_SCIM_TOKEN")
            if not response.is_success:
                raise IntegrationError(f"the IdP answered {response.status_code} to GET /Users: {response.text[:200]}")
            try:
                body = response.json()
            except ValueError:
                raise IntegrationError("the IdP's answer to GET /Users is not JSON") from None
            if not isinstance(body, dict):
                raise IntegrationError("the IdP's answer to GET /Users is not a ListResponse")
            return body
        raise AssertionError("unreachable")  # pragma: no cover


def users_from_file(path: Path) -> list[DirectoryUser]:
    """The users of an export file: a SCIM ListResponse or a JSON list of Users (IntegrationError if neither)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrationError(f"the IdP export {path} cannot be read: {exc}") from None
    items = data.get("Resources") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise IntegrationError(f"the IdP export {path} is neither a ListResponse nor a list of users")
    return [_user(item) for item in items if isinstance(item, dict)]


def _retry_after(response: httpx.Response, *, default: float) -> float:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    return max(0.0, min(seconds, _MAX_RETRY_AFTER))


def _user(item: dict[str, Any]) -> DirectoryUser:
    addresses = {str(item.get("userName") or "").strip().lower()}
    emails = item.get("emails")
    for email in emails if isinstance(emails, list) else []:
        if isinstance(email, dict) and email.get("value"):
            addresses.add(str(email["value"]).strip().lower())
    active = item.get("active", True)
    if isinstance(active, str):  # the same string booleans some IdPs send in PATCH
        active = active.strip().lower() != "false"
    return DirectoryUser(
        id=str(item.get("id") or ""), addresses=frozenset(a for a in addresses if a), active=bool(active)
    )
