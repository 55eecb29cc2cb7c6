"""The credential provider interface every issuer/revoker implements.

A provider talks to one system. It never sees the database: the ledger service
(`orchestrator.credentials.service`) records what it issues and revokes. Errors: raise
`TransientIntegrationError` for what a retry may fix (timeouts, 5xx, 429) and `IntegrationError`
for permanent failures (4xx other than "already gone").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class IssuedCredential:
    """What a provider hands back on issue. `secret` goes to the caller once and is never stored."""

    external_ref: str
    scopes: list[str]
    expires_at: datetime | None
    secret: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RevocationResult:
    """The outcome of a revoke call; `already_gone` covers unknown or expired credentials."""

    revoked: bool
    already_gone: bool = False
    note: str = ""


@runtime_checkable
class CredentialProvider(Protocol):
    """Issues, revokes and lists the credentials of one system.

    **Protocol:** `revoke` is idempotent: revoking twice, or revoking something unknown or
    expired, is a success (`already_gone=True`) with a note. A provider that cannot create
    credentials (they are made in the external system and registered in the ledger) raises
    `IntegrationError` from `issue`.
    """

    name: str

    def issue(self, *, app_id: str, subject: str, scopes: list[str], ttl: timedelta | None) -> IssuedCredential:
        """Create a credential for `app_id` with at most `scopes`, valid for `ttl` (None: until revoked)."""
        ...

    def revoke(
        self, *, external_ref: str, expires_at: datetime | None = None, secret: str | None = None
    ) -> RevocationResult:
        """Make sure the credential no longer works.

        `expires_at` is the ledger's expiry (a revocation list keeps the entry that long);
        `secret` is the unsealed credential for systems where a token revokes itself (Slack).
        """
        ...

    def list(self, *, app_id: str) -> list[str]:
        """The external refs the system itself knows for `app_id` (for reconciliation)."""
        ...
