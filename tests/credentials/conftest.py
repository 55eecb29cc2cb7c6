"""Fixtures for the credential tests: settings, caches reset, production apps, an identity provider."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.credentials.servers import Answer, ScriptedServer

if TYPE_CHECKING:
    from orchestrator.catalog.models import MicroApp

ISSUER = "http://orchestrator.test"
IDP_ISSUER = "https://idp.test"


def reset_credential_caches() -> None:
    """Forget every per-process cache of the credential code (keys, Redis clients, providers, …)."""
    from orchestrator.config import get_settings
    from orchestrator.credentials import providers as registry
    from orchestrator.credentials import usage
    from orchestrator.credentials.tokens.introspection import forget_verified
    from orchestrator.credentials.tokens.keys import reset_keyring
    from orchestrator.credentials.tokens.revocation import reset_revocation_lists
    from orchestrator.credentials.tokens.subjects import reset_jwks_clients
    from orchestrator.http.oauth import forget_callers

    get_settings.cache_clear()
    reset_keyring()
    forget_verified()
    reset_revocation_lists()
    reset_jwks_clients()
    forget_callers()
    registry._cache.clear()
    usage.throttle.forget()


@pytest.fixture(autouse=True)
def credential_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A sealing key and issuer built at run time, no Redis unless a test asks, fresh caches."""
    monkeypatch.setenv("CREDENTIAL_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("TOKEN_ISSUER", ISSUER)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("CREDENTIAL_PROVIDERS", raising=False)
    reset_credential_caches()
    yield
    reset_credential_caches()


@pytest.fixture
def use_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Configure REDIS_URL (the revocation list goes to Redis)."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_credential_caches()
    return redis_url


@pytest.fixture
def make_app(db_url: str) -> Callable[..., MicroApp]:
    """Create an app directly in the catalog: make_app(id, stage=production, **fields)."""
    from orchestrator.catalog.lifecycle import Stage
    from orchestrator.catalog.models import DataClass, MicroApp
    from orchestrator.clock import utcnow
    from orchestrator.db import session_scope

    def _make(app_id: str = "expense-helper", stage: str = "production", **fields: Any) -> MicroApp:
        values: dict[str, Any] = {
            "name": app_id,
            "owner_email": "maker@example.com",
            "co_owners": ["co@example.com"],
            "data_class": DataClass.internal,
            "requested_scopes": ["sheets:read", "sheets:write", "files:read"],
            "approved_at": utcnow() if stage == "production" else None,
        }
        values.update(fields)
        with session_scope() as session:
            app = MicroApp(id=app_id, stage=Stage(stage), **values)
            session.add(app)
        return app

    return _make


def exchange_form(subject_token: str, audience: str = "expense-helper", **extra: str) -> dict[str, str]:
    """A token-exchange form with an orchestrator API token as subject."""
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": subject_token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": audience,
    }
    form.update(extra)
    return form


class IdentityProvider:
    """A local identity provider: an RSA key served as JWKS over HTTP, and a way to mint its tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "idp-" + secrets.token_hex(4)
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.server = ScriptedServer([Answer(200, {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]})])

    @property
    def jwks_url(self) -> str:
        """Where the keys are served."""
        return self.server.url + "/.well-known/jwks.json"

    def token(self, email: str, *, ttl: int = 300, key: Any = None, **claims: Any) -> str:
        """A signed identity token for `email`."""
        now = int(time.time())
        body = {"iss": IDP_ISSUER, "sub": email, "email": email, "iat": now, "exp": now + ttl, **claims}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityProvider]:
    """A running identity provider configured as IDP_JWKS_URL."""
    provider = IdentityProvider()
    with provider.server:
        monkeypatch.setenv("IDP_JWKS_URL", provider.jwks_url)
        monkeypatch.setenv("IDP_ISSUER", IDP_ISSUER)
        reset_credential_caches()
        yield provider


TTL_INTERNAL = timedelta(minutes=30)
