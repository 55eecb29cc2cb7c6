"""A small GitHub REST client: repository contents, and a webhook's deliveries (list, redeliver).

Talks to GITHUB_API_URL (api.github.com, a GHES `/api/v3`, or a test server) with GITHUB_TOKEN.
Reads are retried with tenacity (bounded attempts, exponential backoff with jitter) on network
errors, 5xx and 429; a redelivery POST is not retried, because a repeat asks GitHub for a second
delivery — the job runs again on its next interval anyway. Errors surface as
TransientIntegrationError (worth retrying later) or IntegrationError (not).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from orchestrator import __version__
from orchestrator.config import Settings, get_settings
from orchestrator.errors import IntegrationError, TransientIntegrationError

API_VERSION = "2022-11-28"
_READ_ATTEMPTS = 3


@dataclass(frozen=True)
class Delivery:
    """One attempt at delivering a webhook event, as GitHub lists it."""

    id: int
    guid: str
    delivered_at: str
    redelivery: bool
    status_code: int
    event: str
    action: str | None

    @property
    def ok(self) -> bool:
        """True when our endpoint answered 2xx."""
        return 200 <= self.status_code < 300


class GitHubClient:
    """GitHub REST calls the orchestrator needs; one instance per job or handler run."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        page_size: int = 100,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.page_size = page_size
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"microapp-orchestrator/{__version__}",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> GitHubClient:
        """A client for GITHUB_API_URL with GITHUB_TOKEN."""
        settings = settings or get_settings()
        token = settings.github_token.get_secret_value() if settings.github_token else None
        return cls(settings.github_api_url, token, timeout=settings.github_timeout_seconds)

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls

    def get_file(self, full_name: str, path: str, *, ref: str | None = None) -> bytes | None:
        """The bytes of `path` in repository `owner/name` at `ref` (default branch), None if absent."""
        url = f"repos/{full_name}/contents/{quote(path)}"
        response = self._read("GET", url, params={"ref": ref} if ref else None, missing_ok=True)
        if response is None:
            return None
        body = response.json()
        if not isinstance(body, dict) or body.get("type") != "file":
            return None
        if body.get("encoding") == "base64":
            return base64.b64decode(body.get("content") or "")
        # Files over 1 MB come without content; ask for the raw media type instead.
        raw = self._read("GET", url, params={"ref": ref} if ref else None, accept="application/vnd.github.raw+json")
        return raw.content if raw is not None else None

    def list_deliveries(self, hook_path: str) -> Iterator[list[Delivery]]:
        """Yield pages of a hook's recent deliveries, newest first, following the Link header."""
        url: str | None = f"{hook_path.strip('/')}/deliveries"
        params: dict[str, Any] | None = {"per_page": self.page_size}
        while url:
            response = self._read("GET", url, params=params)
            assert response is not None
            yield [_delivery(item) for item in response.json()]
            url = response.links.get("next", {}).get("url")
            params = None  # the next link carries the cursor and page size

    def redeliver(self, hook_path: str, delivery_id: int) -> None:
        """Ask GitHub to deliver `delivery_id` again (not retried: a repeat is a second delivery)."""
        try:
            response = self._http.post(f"{hook_path.strip('/')}/deliveries/{delivery_id}/attempts")
        except httpx.TransportError as exc:
            raise TransientIntegrationError(f"GitHub unreachable: {exc}") from exc
        _raise_for(response)

    # ------------------------------------------------------------------ plumbing

    def _read(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        missing_ok: bool = False,
        accept: str | None = None,
    ) -> httpx.Response | None:
        headers = {"Accept": accept} if accept else None
        for attempt in Retrying(
            stop=stop_after_attempt(_READ_ATTEMPTS),
            wait=wait_exponential_jitter(multiplier=0.5, max=5, jitter=0.5),
            retry=retry_if_exception_type(TransientIntegrationError),
            reraise=True,
        ):
            with attempt:
                try:
                    response = self._http.request(method, url, params=params, headers=headers)
                except httpx.TransportError as exc:
                    raise TransientIntegrationError(f"GitHub unreachable: {exc}") from exc
                if missing_ok and response.status_code == 404:
                    return None
                _raise_for(response)
                return response
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    where = f"{response.request.method} {response.request.url.path}"
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientIntegrationError(f"GitHub answered {response.status_code} to {where}")
    if response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0":
        raise TransientIntegrationError(f"GitHub rate limit reached on {where}")
    raise IntegrationError(f"GitHub answered {response.status_code} to {where}: {response.text[:200]}")


def _delivery(item: dict[str, Any]) -> Delivery:
    return Delivery(
        id=int(item["id"]),
        guid=str(item.get("guid") or ""),
        delivered_at=str(item.get("delivered_at") or ""),
        redelivery=bool(item.get("redelivery")),
        status_code=int(item.get("status_code") or 0),
        event=str(item.get("event") or ""),
        action=item.get("action"),
    )
