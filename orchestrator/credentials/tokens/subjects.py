"""Who is asking for a token: the `subject_token` of an exchange, verified.

Three kinds are accepted:
- a JWT from the configured identity provider, verified against its JWKS (IDP_JWKS_URL) or an
  HS256 shared key (IDP_SHARED_KEY), with IDP_ISSUER / IDP_AUDIENCE checked when set; the person
  is the IDP_EMAIL_CLAIM claim (default `email`);
- an orchestrator API token (`mao_…`) that belongs to a person;
- an app's service credential (`mas_…`, see `builtin-service`), live in the ledger.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import jwt
from sqlmodel import Session, select

from orchestrator.auth.service import TOKEN_PREFIX, authenticate
from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.credentials.models import Credential, CredentialStatus
from orchestrator.credentials.tokens.builtin import SERVICE, SERVICE_PREFIX, service_digest
from orchestrator.errors import TransientIntegrationError, Unauthorized

JWT_TYPES = frozenset({"urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"})
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TYPES = JWT_TYPES | {ACCESS_TOKEN}
_IDP_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class BadSubject(Exception):
    """The subject token is not one we accept (→ invalid_grant)."""


@dataclass(frozen=True)
class Subject:
    """A verified requester: a person (by email) or an app's service identity."""

    kind: str  # "person" or "service"
    name: str  # the email, or the app id of the service identity
    via: str  # "idp", "api_token" or "service_credential"
    # A service credential's own scopes: tokens exchanged for it never carry more (RFC 8693 §1.1).
    scopes: tuple[str, ...] | None = None

    @property
    def sub(self) -> str:
        """The `sub` claim of tokens issued to this subject."""
        return self.name if self.kind == "person" else f"service:{self.name}"


_jwks_clients: dict[str, jwt.PyJWKClient] = {}
_jwks_lock = threading.Lock()


def _jwks_client(url: str) -> jwt.PyJWKClient:
    with _jwks_lock:
        client = _jwks_clients.get(url)
        if client is None:
            client = _jwks_clients[url] = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)
        return client


def reset_jwks_clients() -> None:
    """Forget cached JWKS (tests that start a new identity provider)."""
    with _jwks_lock:
        _jwks_clients.clear()


def _idp_claims(token: str) -> dict[str, Any]:
    settings = get_settings()
    options: Any = {"require": ["exp", "iat"], "verify_aud": settings.idp_audience is not None}
    common: dict[str, Any] = {"audience": settings.idp_audience, "issuer": settings.idp_issuer, "leeway": 30}
    try:
        if settings.idp_jwks_url:
            try:
                key: Any = _jwks_client(settings.idp_jwks_url).get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientConnectionError as exc:
                raise TransientIntegrationError(f"identity provider keys unreachable: {exc}") from None
            return jwt.decode(token, key, algorithms=_IDP_ALGORITHMS, options=options, **common)
        if settings.idp_shared_key is not None:
            secret = settings.idp_shared_key.get_secret_value()
            return jwt.decode(token, secret, algorithms=["HS256"], options=options, **common)
    except jwt.PyJWKClientError as exc:
        raise BadSubject(f"subject_token is signed by a key the identity provider does not publish: {exc}") from None
    except jwt.InvalidTokenError as exc:
        raise BadSubject(f"subject_token rejected: {exc}") from None
    raise BadSubject("no identity provider is configured (IDP_JWKS_URL or IDP_SHARED_KEY)")


def _from_idp(token: str) -> Subject:
    claims = _idp_claims(token)
    email = claims.get(get_settings().idp_email_claim)
    if not isinstance(email, str) or "@" not in email:
        raise BadSubject(f"subject_token has no {get_settings().idp_email_claim!r} claim naming a person")
    return Subject(kind="person", name=email.strip().lower(), via="idp")


def _from_service_credential(session: Session, token: str) -> Subject:
    row = session.exec(
        select(Credential).where(Credential.provider == SERVICE, Credential.external_ref == service_digest(token))
    ).first()
    if row is None or row.status is not CredentialStatus.live:
        raise BadSubject("subject_token is not a live service credential")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise BadSubject("subject_token is an expired service credential")
    return Subject(kind="service", name=row.app_id, via="service_credential", scopes=tuple(row.scopes))


def _from_api_token(session: Session, token: str) -> Subject:
    try:
        row = authenticate(session, token)
    except Unauthorized:
        raise BadSubject("subject_token is an unknown or revoked API token") from None
    if not row.person_email:
        raise BadSubject("subject_token is an API token that does not belong to a person")
    return Subject(kind="person", name=row.person_email.lower(), via="api_token")


def verify_subject(session: Session, token: str, token_type: str) -> Subject:
    """The verified subject of `token`; BadSubject when it is not acceptable."""
    if token_type == ACCESS_TOKEN and token.startswith(TOKEN_PREFIX):
        return _from_api_token(session, token)
    if token_type == ACCESS_TOKEN and token.startswith(SERVICE_PREFIX):
        return _from_service_credential(session, token)
    return _from_idp(token)
