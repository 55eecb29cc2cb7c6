"""RFC 8693 token exchange over HTTP: the good path, scope narrowing, lifetime and every error."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from sqlmodel import select

from tests.credentials.conftest import ISSUER, IdentityProvider, exchange_form
from tests.factories import Response

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.catalog.models import MicroApp
    from orchestrator.credentials.models import Credential


def _ledger() -> list[Credential]:
    from orchestrator.credentials.models import Credential
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        return list(session.exec(select(Credential)).all())


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


class TestGoodExchange:
    def test_owner_gets_scoped_short_lived_token(
        self, client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
    ) -> None:
        """An owner's API token is exchanged for a signed JWT for the app, recorded in the ledger without the secret."""
        make_app()
        subject = make_token("maker", "maker@example.com")
        response = client.post("/oauth/token", data=exchange_form(subject, scope="sheets:read files:read"))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
        assert body["expires_in"] == 30 * 60  # internal data class: token_ttl_minutes 30
        assert body["scope"] == "sheets:read files:read"
        header = jwt.get_unverified_header(body["access_token"])
        assert header["alg"] == "EdDSA" and header["kid"]
        claims = _claims(body["access_token"])
        assert claims["sub"] == "maker@example.com" and claims["aud"] == "expense-helper"
        assert claims["iss"] == ISSUER and claims["exp"] - claims["iat"] == 30 * 60
        [row] = _ledger()
        assert row.external_ref == claims["jti"] and row.provider == "builtin" and row.status == "live"
        assert row.scopes == ["sheets:read", "files:read"]
        assert body["access_token"] not in repr(row.model_dump())

    def test_exchange_marks_the_app_used(
        self, client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
    ) -> None:
        """A successful exchange records the app's last-used time."""
        from orchestrator.catalog.models import MicroApp
        from orchestrator.db import session_scope

        make_app()
        subject = make_token("maker", "co@example.com")
        assert client.post("/oauth/token", data=exchange_form(subject)).status_code == 200
        with session_scope(write=False) as session:
            assert session.get_one(MicroApp, "expense-helper").last_used_at is not None

    def test_scope_is_narrowed_to_approved_and_allowed(
        self, client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
    ) -> None:
        """Requested ∩ approved ∩ the data class's allowed scopes; unasked means everything permitted."""
        make_app(data_class="restricted", requested_scopes=["sheets:read", "sheets:write", "repo:read"])
        subject = make_token("maker", "maker@example.com")
        asked = client.post("/oauth/token", data=exchange_form(subject, scope="sheets:write sheets:read chat:write"))
        assert asked.status_code == 200, asked.text
        assert asked.json()["scope"] == "sheets:read"  # sheets:write not allowed for restricted
        assert asked.json()["expires_in"] == 15 * 60
        everything = client.post("/oauth/token", data=exchange_form(subject))
        assert everything.json()["scope"] == "sheets:read repo:read"

    def test_identity_provider_jwt_via_jwks(
        self, client: TestClient, make_app: Callable[..., MicroApp], idp: IdentityProvider
    ) -> None:
        """A JWT from the identity provider, verified against its JWKS over HTTP, is a valid subject."""
        make_app()
        form = exchange_form(idp.token("Maker@Example.com"), resource="urn:microapp:expense-helper")
        form["subject_token_type"] = "urn:ietf:params:oauth:token-type:jwt"
        del form["audience"]
        response = client.post("/oauth/token", data=form)
        assert response.status_code == 200, response.text
        assert _claims(response.json()["access_token"])["sub"] == "maker@example.com"
        assert idp.server.seen and idp.server.seen[0].path.endswith("jwks.json")

    def test_identity_provider_shared_key(
        self, client: TestClient, make_app: Callable[..., MicroApp], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With IDP_SHARED_KEY an HS256 identity token is accepted."""
        from tests.credentials.conftest import reset_credential_caches

        key = "k" * 40
        monkeypatch.setenv("IDP_SHARED_KEY", key)
        reset_credential_caches()
        make_app()
        now = int(time.time())
        token = jwt.encode({"email": "maker@example.com", "iat": now, "exp": now + 60}, key, algorithm="HS256")
        form = exchange_form(token, subject_token_type="urn:ietf:params:oauth:token-type:id_token")
        assert client.post("/oauth/token", data=form).status_code == 200


def _error(response: Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["error_description"]
    assert set(body) == {"error", "error_description"}


class TestErrors:
    @pytest.fixture
    def subject(self, make_token: Callable[..., str], make_app: Callable[..., MicroApp]) -> str:
        make_app()
        return make_token("maker", "maker@example.com")

    def test_request_shape(self, client: TestClient, subject: str) -> None:
        """Missing or wrong parameters and a JSON body are invalid_request; another grant is unsupported."""
        form = exchange_form(subject)
        _error(client.post("/oauth/token", json=form), 400, "invalid_request")
        _error(client.post("/oauth/token", data={**form, "grant_type": "password"}), 400, "unsupported_grant_type")
        for missing in ("grant_type", "subject_token", "subject_token_type", "audience"):
            _error(client.post("/oauth/token", data={k: v for k, v in form.items() if k != missing}), 400,
                   "invalid_request")  # fmt: skip
        _error(client.post("/oauth/token", data={**form, "subject_token_type": "urn:x"}), 400, "invalid_request")

    def test_bad_subject_tokens(self, client: TestClient, subject: str, idp: IdentityProvider) -> None:
        """Unknown API tokens, forged, expired or foreign-key IdP tokens are invalid_grant."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        _error(client.post("/oauth/token", data=exchange_form("mao_" + "x" * 43)), 400, "invalid_grant")
        jwt_type = {"subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
        expired = idp.token("maker@example.com", ttl=-120)
        _error(client.post("/oauth/token", data=exchange_form(expired, **jwt_type)), 400, "invalid_grant")
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = idp.token("maker@example.com", key=other_key)
        _error(client.post("/oauth/token", data=exchange_form(forged, **jwt_type)), 400, "invalid_grant")
        wrong_issuer = idp.token("maker@example.com", iss="https://evil.test")
        _error(client.post("/oauth/token", data=exchange_form(wrong_issuer, **jwt_type)), 400, "invalid_grant")

    def test_targets(self, client: TestClient, subject: str, make_app: Callable[..., MicroApp]) -> None:
        """Unknown apps, apps not running, and two different targets are invalid_target."""
        _error(client.post("/oauth/token", data=exchange_form(subject, audience="nope")), 400, "invalid_target")
        for stage in ("registered", "rejected", "suspended", "sunsetting", "retired", "orphaned"):
            make_app(f"app-{stage}", stage=stage)
            _error(client.post("/oauth/token", data=exchange_form(subject, audience=f"app-{stage}")), 400,
                   "invalid_target")  # fmt: skip
        two = exchange_form(subject, resource="https://x.test/apps/other-app")
        _error(client.post("/oauth/token", data=two), 400, "invalid_target")

    def test_rereview_of_an_approved_app_keeps_tokens_flowing(
        self, client: TestClient, subject: str, make_app: Callable[..., MicroApp]
    ) -> None:
        """An approved app under periodic re-review (in_review, approved before) still gets tokens."""
        from orchestrator.clock import utcnow

        make_app("rereviewed", stage="in_review", approved_at=utcnow())
        assert client.post("/oauth/token", data=exchange_form(subject, audience="rereviewed")).status_code == 200
        make_app("never-approved", stage="in_review")
        _error(client.post("/oauth/token", data=exchange_form(subject, audience="never-approved")), 400,
               "invalid_target")  # fmt: skip

    def test_not_an_owner(self, client: TestClient, subject: str, make_token: Callable[..., str]) -> None:
        """Someone who neither owns nor co-owns the app is answered as for a missing app, whatever their role."""
        stranger = make_token("admin", "boss@example.com")
        _error(client.post("/oauth/token", data=exchange_form(stranger)), 400, "invalid_target")

    def test_no_permitted_scope(self, client: TestClient, subject: str) -> None:
        """Asking only for scopes the app may not have is invalid_scope."""
        _error(client.post("/oauth/token", data=exchange_form(subject, scope="chat:write admin")), 400, "invalid_scope")
        assert _ledger() == []
