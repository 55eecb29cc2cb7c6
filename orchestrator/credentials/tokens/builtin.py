"""The built-in providers: short-lived signed access tokens, and apps' service credentials.

- `builtin`: the token service. `issue` signs a JWT (EdDSA, `kid` header) whose `jti` is the
  ledger's external ref; `revoke` puts the `jti` on the revocation list for the rest of its life
  (the ledger row's status is the list itself when there is no Redis).
- `builtin-service`: an app's service identity, an opaque secret (`mas_…`) the app presents as the
  `subject_token` of an exchange. Only its SHA-256 digest is kept (as the external ref); the
  ledger status is its state, so revoking it needs no outside call.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt

from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.credentials.tokens.keys import ALGORITHM, KeyRing, get_keyring
from orchestrator.credentials.tokens.revocation import RevocationList, get_revocation_list
from orchestrator.errors import IntegrationError
from orchestrator.integrations.credentials.base import IssuedCredential, RevocationResult

BUILTIN = "builtin"
SERVICE = "builtin-service"
SERVICE_PREFIX = "mas_"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def token_issuer() -> str:
    """The `iss` of every token the service signs."""
    settings = get_settings()
    return (settings.token_issuer or settings.public_url).rstrip("/")


def service_subject(app_id: str) -> str:
    """The subject name of an app's service identity."""
    return f"service:{app_id}"


def service_digest(secret: str) -> str:
    """The ledger's external ref of a service credential: its SHA-256 (256-bit secrets need no salt)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class BuiltinTokenProvider:
    """Signs short-lived access tokens and revokes them through the revocation list."""

    def __init__(
        self, name: str = BUILTIN, *, keyring: KeyRing | None = None, revocations: RevocationList | None = None
    ) -> None:
        self.name = name
        self._keyring = keyring
        self._revocations = revocations

    @property
    def keyring(self) -> KeyRing:
        """The key ring in use (the process's by default)."""
        return self._keyring or get_keyring()

    @property
    def revocations(self) -> RevocationList:
        """The revocation list in use (the process's by default)."""
        return self._revocations or get_revocation_list()

    def issue(self, *, app_id: str, subject: str, scopes: list[str], ttl: timedelta | None) -> IssuedCredential:
        """Sign a JWT for `subject` with audience `app_id`, `scopes`, valid for `ttl`."""
        if ttl is None or ttl <= timedelta(0):
            raise IntegrationError("the token service only issues tokens with a positive lifetime")
        key = self.keyring.signing_key()
        if key is None or key.private_key is None:
            raise IntegrationError("no active signing key; ensure_signing_key() must run first")
        now = utcnow().replace(microsecond=0)
        expires_at = now + ttl
        jti = secrets.token_urlsafe(18)
        claims: dict[str, Any] = {
            "iss": token_issuer(),
            "sub": subject,
            "aud": app_id,
            "client_id": app_id,
            "scope": " ".join(scopes),
            "jti": jti,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "at+jwt"})
        return IssuedCredential(
            external_ref=jti, scopes=scopes, expires_at=expires_at, secret=token, details={"kid": key.kid}
        )

    def revoke(
        self, *, external_ref: str, expires_at: datetime | None = None, secret: str | None = None
    ) -> RevocationResult:
        """Put the `jti` on the revocation list until the token would have expired."""
        if expires_at is not None and expires_at <= utcnow():
            return RevocationResult(revoked=True, already_gone=True, note="the token had already expired")
        self.revocations.add(external_ref, expires_at)
        return RevocationResult(revoked=True)

    def list(self, *, app_id: str) -> list[str]:
        """Tokens are not tracked outside the ledger, so there is nothing to reconcile against."""
        return []


class ServiceCredentialProvider:
    """An app's service identity: an opaque secret whose ledger row is its only state."""

    def __init__(self, name: str = SERVICE) -> None:
        self.name = name

    def issue(self, *, app_id: str, subject: str, scopes: list[str], ttl: timedelta | None) -> IssuedCredential:
        """Make a new secret; only its digest goes to the ledger."""
        secret = SERVICE_PREFIX + secrets.token_urlsafe(32)
        expires_at = utcnow() + ttl if ttl else None
        return IssuedCredential(
            external_ref=service_digest(secret), scopes=scopes, expires_at=expires_at, secret=secret
        )

    def revoke(
        self, *, external_ref: str, expires_at: datetime | None = None, secret: str | None = None
    ) -> RevocationResult:
        """Nothing outside the ledger holds it: marking the row revoked is the revocation."""
        return RevocationResult(revoked=True, note="service credential disabled in the ledger")

    def list(self, *, app_id: str) -> list[str]:
        """The ledger is the only record."""
        return []
