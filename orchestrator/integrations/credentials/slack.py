"""Slack tokens: revoked with `auth.revoke` through slack-sdk (the token revokes itself).

Slack bot and user tokens are created when someone installs a Slack app, not by us, so `issue`
refuses; such tokens are registered in the ledger with their sealed secret
(`service.register_credential`) and revoked here at sunset. The API base URL comes from
SLACK_API_URL, so tests point it at a local server that speaks the Web API.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from orchestrator.errors import IntegrationError, TransientIntegrationError
from orchestrator.integrations.credentials.base import IssuedCredential, RevocationResult

# Errors meaning the token no longer works: revocation has nothing left to do.
_GONE = frozenset({"invalid_auth", "token_revoked", "token_expired", "account_inactive", "not_authed"})
_TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


class SlackProvider:
    """Revokes Slack tokens registered in the ledger."""

    def __init__(self, name: str = "slack", *, api_url: str, timeout: float = 10.0) -> None:
        self.name = name
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.timeout = timeout

    def issue(self, *, app_id: str, subject: str, scopes: list[str], ttl: timedelta | None) -> IssuedCredential:
        """Slack tokens come from installing a Slack app; register them instead."""
        raise IntegrationError("Slack tokens are created by installing a Slack app; register the token in the ledger")

    def revoke(
        self, *, external_ref: str, expires_at: datetime | None = None, secret: str | None = None
    ) -> RevocationResult:
        """Call auth.revoke with the token itself; a token Slack no longer accepts is already gone."""
        if not secret:
            raise IntegrationError(
                f"no stored token for Slack credential {external_ref}: revoke it in Slack and record it with --force"
            )
        client = WebClient(token=secret, base_url=self.api_url, timeout=int(self.timeout))
        try:
            response = client.auth_revoke()
        except SlackApiError as exc:
            return self._classify(exc)
        except (URLError, OSError, SlackRequestError) as exc:
            raise TransientIntegrationError(f"Slack unreachable: {type(exc).__name__}: {exc}") from None
        if response.get("revoked") is True:
            return RevocationResult(revoked=True)
        return RevocationResult(revoked=True, already_gone=True, note="Slack reported nothing to revoke")

    @staticmethod
    def _classify(exc: SlackApiError) -> RevocationResult:
        status = exc.response.status_code
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        error = str(data.get("error", f"http_{status}"))
        if error in _GONE:
            return RevocationResult(revoked=True, already_gone=True, note=f"Slack says {error}: already unusable")
        if status == 429 or status >= 500 or error in _TRANSIENT:
            raise TransientIntegrationError(f"Slack auth.revoke failed: {error} (HTTP {status})") from None
        raise IntegrationError(f"Slack auth.revoke refused: {error} (HTTP {status})") from None

    def list(self, *, app_id: str) -> list[str]:
        """Slack has no API listing an app's tokens."""
        return []
