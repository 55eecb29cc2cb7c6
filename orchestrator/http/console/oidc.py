"""OpenID Connect sign-in for the console: authorization code flow with PKCE (S256), Authlib's client.

With OIDC_ISSUER and OIDC_CLIENT_ID set, the sign-in page offers "Sign in with your company account".
The console reads the issuer's discovery document, sends the browser to its authorization endpoint
with a state, a nonce and a PKCE challenge kept in the (signed) session cookie, exchanges the code at
the token endpoint, and checks the ID token (signature against the issuer's JWKS, issuer, audience,
expiry, nonce). The person is the catalog's person with the token's verified email; their role is that
of their highest-ranked live API token, whose rules then apply exactly as for a token sign-in. Someone
unknown to the catalog, who has left, or who holds no token (no role) is refused with the reason.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from sqlmodel import col, select

from orchestrator.auth.models import ApiToken, Role
from orchestrator.catalog.models import Person
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.errors import Unauthorized

CALLBACK = "/console/oidc/callback"
SCOPE = "openid email profile"
TIMEOUT = 10.0
_RANK = {Role.maker: 0, Role.approver: 1, Role.admin: 2}
_lock = threading.Lock()
_metadata: dict[str, tuple[float, dict[str, Any]]] = {}
_METADATA_SECONDS = 3600.0


def configured() -> bool:
    """True when an issuer and a client id are set."""
    settings = get_settings()
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def metadata() -> dict[str, Any]:
    """The issuer's discovery document (cached for an hour)."""
    issuer = (get_settings().oidc_issuer or "").rstrip("/")
    with _lock:
        cached = _metadata.get(issuer)
        if cached and time.monotonic() - cached[0] < _METADATA_SECONDS:
            return cached[1]
    try:
        answer = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
        answer.raise_for_status()
        document = dict(answer.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise Unauthorized(f"the identity provider could not be reached ({type(exc).__name__})") from None
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(key), str):
            raise Unauthorized(f"the identity provider's discovery document has no {key}")
    with _lock:
        _metadata[issuer] = (time.monotonic(), document)
    return document


def _client() -> OAuth2Client:
    settings = get_settings()
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    return OAuth2Client(
        settings.oidc_client_id,
        secret,
        scope=SCOPE,
        redirect_uri=settings.public_url.rstrip("/") + CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        timeout=TIMEOUT,
    )


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and what the session must remember until the callback."""

    url: str
    state: dict[str, str]


def start(next_path: str) -> Started:
    """The authorization URL with a fresh state, nonce and PKCE verifier."""
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), generate_token(64)
    with _client() as client:
        url, _ = client.create_authorization_url(
            metadata()["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
    return Started(url=url, state={"state": state, "nonce": nonce, "verifier": verifier, "next": next_path})


def finish(remembered: dict[str, str], *, code: str, state: str) -> int:
    """Exchange the code, check the ID token, map its email to a person: the id of the token to act as."""
    if not remembered.get("state") or not secrets.compare_digest(remembered["state"], state):
        raise Unauthorized("the sign-in answer does not match this browser's sign-in (state); start again")
    document = metadata()
    try:
        with _client() as client:
            answer = client.fetch_token(
                document["token_endpoint"],
                code=code,
                code_verifier=remembered["verifier"],
                grant_type="authorization_code",
            )
    except Exception as exc:  # Authlib raises OAuthError or httpx errors: the reason, never a traceback
        raise Unauthorized(f"the identity provider refused the sign-in ({str(exc)[:200]})") from None
    id_token = answer.get("id_token")
    if not id_token:
        raise Unauthorized("the identity provider sent no ID token")
    claims = _verified(str(id_token), document, nonce=remembered["nonce"])
    return _token_for(claims)


def _verified(id_token: str, document: dict[str, Any], *, nonce: str) -> dict[str, Any]:
    settings = get_settings()
    issuer = document.get("issuer") or (settings.oidc_issuer or "").rstrip("/")
    try:
        key = jwt.PyJWKClient(document["jwks_uri"], timeout=int(TIMEOUT)).get_signing_key_from_jwt(id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key.key,
            algorithms=["RS256", "ES256", "PS256", "EdDSA"],
            audience=settings.oidc_client_id,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"the ID token is not valid ({exc})") from None
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise Unauthorized("the ID token's nonce does not match this sign-in")
    return claims


class NoRole(Unauthorized):
    """The person is in the catalog and active, but holds no live maker, approver or admin token."""

    def __init__(self, email: str) -> None:
        super().__init__(f"{email} has no role here (no API token): ask an admin")
        self.email = email


def _token_for(claims: dict[str, Any]) -> int:
    email = str(claims.get("email") or "").strip().lower()
    if not email or claims.get("email_verified") is False:
        raise Unauthorized("the identity provider gave no verified email for you")
    with session_scope(write=False) as session:
        person = session.get(Person, email)
        if person is None:
            raise Unauthorized(f"{email} is not anyone in the catalog")
        if not person.active:
            raise Unauthorized(f"{email} has left")
        tokens = session.exec(
            select(ApiToken).where(
                ApiToken.person_email == email,
                col(ApiToken.revoked_at).is_(None),
                col(ApiToken.role).in_([r.value for r in _RANK]),  # a scim token is the IdP's, not a person's role
            )
        ).all()
        if not tokens:
            raise NoRole(email)
        best = max(tokens, key=lambda t: (_RANK[Role(t.role)], t.id or 0))
        assert best.id is not None
        return best.id
