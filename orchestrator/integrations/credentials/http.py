"""A generic revocation webhook for systems we have no adapter for.

`revoke` POSTs a JSON body naming the credential to the configured URL, signed with
HMAC-SHA256 over `"{timestamp}.{body}"` (headers `X-Orchestrator-Timestamp` and
`X-Orchestrator-Signature: sha256=<hex>`), and retries with tenacity (bounded attempts,
exponential back-off with jitter). Answers: 2xx revoked, 404 already gone, 408/429 and 5xx and
timeouts retried, any other 4xx a permanent failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from orchestrator.clock import utcnow
from orchestrator.errors import IntegrationError, TransientIntegrationError
from orchestrator.integrations.credentials.base import IssuedCredential, RevocationResult

_RETRY_STATUS = frozenset({408, 425, 429})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _Retry(Exception):
    """An answer worth another attempt."""


class HttpProvider:
    """Revokes credentials by calling a signed webhook."""

    def __init__(
        self,
        name: str,
        *,
        url: str,
        secret: bytes,
        timeout: float = 5.0,
        max_attempts: int = 4,
        max_wait: float = 5.0,
    ) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait

    def issue(self, *, app_id: str, subject: str, scopes: list[str], ttl: timedelta | None) -> IssuedCredential:
        """The external system issues its own credentials; register them in the ledger instead."""
        raise IntegrationError(f"provider {self.name} only revokes; register its credentials in the ledger")

    def _post(self, client: httpx.Client, payload: dict[str, object]) -> httpx.Response:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Orchestrator-Timestamp": timestamp,
            "X-Orchestrator-Signature": sign(self._secret, timestamp, body),
        }
        try:
            response = client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc or 'no answer'}") from None
        if response.status_code >= 500 or response.status_code in _RETRY_STATUS:
            raise _Retry(f"HTTP {response.status_code}")
        return response

    def revoke(
        self, *, external_ref: str, expires_at: datetime | None = None, secret: str | None = None
    ) -> RevocationResult:
        """POST the signed revocation request; retried until it is answered or attempts run out."""
        payload: dict[str, object] = {
            "action": "revoke",
            "provider": self.name,
            "credential": external_ref,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "request_id": uuid.uuid4().hex,
            "requested_at": utcnow().isoformat(),
        }
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=0.1, max=self.max_wait),
            retry=retry_if_exception_type(_Retry),
            reraise=True,
        )
        try:
            with httpx.Client(timeout=self.timeout) as client:
                response = retrying(self._post, client, payload)
        except _Retry as exc:
            raise TransientIntegrationError(
                f"{self.name}: revocation not confirmed after {self.max_attempts} attempts: {exc}"
            ) from None
        if response.is_success:
            return RevocationResult(revoked=True)
        if response.status_code == 404:
            return RevocationResult(revoked=True, already_gone=True, note=f"{self.name} does not know it (404)")
        raise IntegrationError(f"{self.name}: revocation refused with HTTP {response.status_code}")

    def list(self, *, app_id: str) -> list[str]:
        """The webhook protocol has no listing."""
        return []
