"""RFC 7662 introspection over HTTP: claims for good tokens, inactive for the rest, revocation at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from bench.harness import wait_until
from tests.credentials.conftest import exchange_form
from tests.factories import auth

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.catalog.models import MicroApp


@pytest.fixture
def issued(client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]) -> dict[str, str]:
    """A production app, an exchanged token for it, and a gateway token to introspect with."""
    make_app()
    subject = make_token("maker", "maker@example.com")
    response = client.post("/oauth/token", data=exchange_form(subject, scope="sheets:read"))
    assert response.status_code == 200, response.text
    return {"token": response.json()["access_token"], "gateway": make_token("approver", None, name="gateway")}


def _introspect(client: TestClient, gateway: str, token: str) -> dict[str, Any]:
    response = client.post("/oauth/introspect", data={"token": token}, headers=auth(gateway))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer: dict[str, Any] = response.json()
    return answer


def _revoke(jti: str) -> None:
    from sqlmodel import select

    from orchestrator.credentials import service
    from orchestrator.credentials.models import Credential
    from orchestrator.db import session_scope

    with session_scope() as session:
        row = session.exec(select(Credential).where(Credential.external_ref == jti)).one()
        assert row.id is not None
        service.revoke_credential(session, row.id, actor="test", reason="compromised")


class TestIntrospection:
    def test_active_token_has_its_claims(self, client: TestClient, issued: dict[str, str]) -> None:
        """A live token is active with sub, aud, scope, exp and jti."""
        body = _introspect(client, issued["gateway"], issued["token"])
        claims = jwt.decode(issued["token"], options={"verify_signature": False})
        assert body["active"] is True
        assert body["sub"] == "maker@example.com" and body["aud"] == "expense-helper"
        assert body["scope"] == "sheets:read" and body["jti"] == claims["jti"] and body["exp"] == claims["exp"]
        assert body["token_type"] == "Bearer" and body["client_id"] == "expense-helper"

    def test_garbage_unknown_and_tampered_are_inactive(self, client: TestClient, issued: dict[str, str]) -> None:
        """Garbage, a token signed by a foreign key, and a tampered payload are all `active: false`."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        header = jwt.get_unverified_header(issued["token"])
        claims = jwt.decode(issued["token"], options={"verify_signature": False})
        foreign = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": header["kid"]})
        unknown_kid = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "zzz"})
        head, payload, sig = issued["token"].split(".")
        tampered = ".".join([head, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1], sig])
        for token in ("not-a-token", foreign, unknown_kid, tampered, "a.b.c"):
            assert _introspect(client, issued["gateway"], token) == {"active": False}

    def test_expired_token_is_inactive(self, client: TestClient, issued: dict[str, str]) -> None:
        """A token past its exp is inactive even though its signature is good."""
        from orchestrator.credentials.tokens.keys import get_keyring

        key = get_keyring().signing_key()
        assert key is not None and key.private_key is not None
        claims = jwt.decode(issued["token"], options={"verify_signature": False})
        claims["exp"] = claims["iat"] - 1
        stale = jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
        assert _introspect(client, issued["gateway"], stale) == {"active": False}

    def test_revocation_is_immediate_without_redis(self, client: TestClient, issued: dict[str, str]) -> None:
        """With the database as the revocation list, a revoked token is inactive on the next call."""
        assert _introspect(client, issued["gateway"], issued["token"])["active"] is True
        _revoke(jwt.decode(issued["token"], options={"verify_signature": False})["jti"])
        assert _introspect(client, issued["gateway"], issued["token"]) == {"active": False}

    def test_caller_must_authenticate(self, client: TestClient, issued: dict[str, str]) -> None:
        """No or a bad Bearer token is 401 invalid_client; a missing `token` is 400 invalid_request."""
        response = client.post("/oauth/introspect", data={"token": issued["token"]})
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
        assert "www-authenticate" in response.headers
        bad = client.post("/oauth/introspect", data={"token": issued["token"]}, headers=auth("mao_nope"))
        assert bad.status_code == 401
        missing = client.post("/oauth/introspect", data={}, headers=auth(issued["gateway"]))
        assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"

    def test_introspection_records_use_at_most_once_a_minute(self, client: TestClient, issued: dict[str, str]) -> None:
        """Introspection writes last_used_at once per interval per app, not on every call."""
        from orchestrator.catalog.models import MicroApp
        from orchestrator.credentials.usage import wait_idle
        from orchestrator.db import session_scope

        with session_scope() as session:
            session.get_one(MicroApp, "expense-helper").last_used_at = None
        for _ in range(5):
            _introspect(client, issued["gateway"], issued["token"])
        wait_idle()
        with session_scope(write=False) as session:
            first = session.get_one(MicroApp, "expense-helper").last_used_at
        assert first is not None
        _introspect(client, issued["gateway"], issued["token"])
        wait_idle()
        with session_scope(write=False) as session:
            assert session.get_one(MicroApp, "expense-helper").last_used_at == first


class TestWithRedis:
    @pytest.fixture(autouse=True)
    def _redis(self, use_redis: str) -> None:
        pass

    def test_revocation_is_immediate_and_needs_no_database(
        self, client: TestClient, issued: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With Redis, introspection never reads the ledger, and a revocation shows on the next call."""
        import redis

        from orchestrator.credentials.tokens import introspection
        from orchestrator.credentials.tokens.revocation import KEY_PREFIX, get_revocation_list

        assert _introspect(client, issued["gateway"], issued["token"])["active"] is True  # loads the list
        calls: list[str] = []
        original = introspection._revoked_from_ledger

        def counted(jti: str) -> bool:
            calls.append(jti)
            return original(jti)

        monkeypatch.setattr(introspection, "_revoked_from_ledger", counted)
        assert _introspect(client, issued["gateway"], issued["token"])["active"] is True
        jti = jwt.decode(issued["token"], options={"verify_signature": False})["jti"]
        _revoke(jti)
        assert _introspect(client, issued["gateway"], issued["token"]) == {"active": False}
        assert calls == []
        redis_url = get_revocation_list().redis_url
        assert redis_url is not None
        ttl = redis.Redis.from_url(redis_url).ttl(KEY_PREFIX + jti)
        assert 0 < ttl <= timedelta(minutes=30).total_seconds() + 1

    def test_lost_redis_list_is_rebuilt_from_the_ledger(self, client: TestClient, issued: dict[str, str]) -> None:
        """When Redis loses the list, the process's copy still answers, and the subscriber's next
        (re)connect reloads the list into Redis from the ledger."""
        import redis

        from orchestrator.credentials.tokens.revocation import KEY_PREFIX, MARKER_KEY, get_revocation_list
        from orchestrator.credentials.tokens.revocation_feed import current_feed

        feed = current_feed()
        assert feed is not None and feed.wait_current()
        jti = jwt.decode(issued["token"], options={"verify_signature": False})["jti"]
        _revoke(jti)
        redis_url = get_revocation_list().redis_url
        assert redis_url is not None
        r = redis.Redis.from_url(redis_url)
        r.delete(KEY_PREFIX + jti, MARKER_KEY)
        assert _introspect(client, issued["gateway"], issued["token"]) == {"active": False}
        resyncs = feed.resyncs
        kill_feed_connection(r, feed.connection_name)
        wait_until(lambda: feed.resyncs > resyncs and feed.current, timeout=10, what="the feed resynced")
        assert r.exists(KEY_PREFIX + jti) and r.exists(MARKER_KEY)
        assert _introspect(client, issued["gateway"], issued["token"]) == {"active": False}


def kill_feed_connection(r: Any, name: str) -> None:
    """CLIENT KILL the revocation feed's own subscriber connection (only that one: Redis is shared)."""
    ids = [c["id"] for c in r.client_list() if c.get("name") == name]
    assert ids, f"no Redis connection named {name}"
    for client_id in ids:
        r.client_kill_filter(_id=client_id)


def test_unreachable_redis_falls_back_and_refuses_to_lose_revocations(
    client: TestClient, issued: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis down, introspection answers from the ledger and a revocation fails transiently (stays live)."""
    from bench.harness import free_port
    from orchestrator.errors import TransientIntegrationError
    from tests.credentials.conftest import reset_credential_caches

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    reset_credential_caches()
    assert _introspect(client, issued["gateway"], issued["token"])["active"] is True
    jti = jwt.decode(issued["token"], options={"verify_signature": False})["jti"]
    with pytest.raises(TransientIntegrationError, match="revocation list unreachable"):
        _revoke(jti)
    assert _introspect(client, issued["gateway"], issued["token"])["active"] is True
