"""Signing keys: rotation keeps old tokens verifying, JWKS publishes the set, keys are sealed at rest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import jwt
import pytest
from typer.testing import CliRunner

from tests.credentials.conftest import exchange_form
from tests.factories import auth

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.catalog.models import MicroApp


def _exchange(client: TestClient, subject: str) -> str:
    response = client.post("/oauth/token", data=exchange_form(subject))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _active(client: TestClient, gateway: str, token: str) -> bool:
    answer: bool = client.post("/oauth/introspect", data={"token": token}, headers=auth(gateway)).json()["active"]
    return answer


def _activation_due() -> None:
    """Move the rotated key's activation into the past, as if the publication delay had passed."""
    from sqlalchemy import update

    from orchestrator.clock import utcnow
    from orchestrator.credentials.models import KeyStatus, SigningKey
    from orchestrator.db import session_scope

    with session_scope() as session:
        session.exec(
            update(SigningKey)
            .where(SigningKey.status == KeyStatus.next)  # type: ignore[arg-type]
            .values(activates_at=utcnow() - timedelta(seconds=1))
        )


def test_rotation_keeps_previous_key_verifying(
    client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
) -> None:
    """A rotated key is published at once and signs after the delay; old tokens stay valid, JWKS lists both."""
    from orchestrator.cli import build

    make_app()
    subject, gateway = make_token("maker", "maker@example.com"), make_token("admin", "it@example.com")
    old = _exchange(client, subject)
    old_kid = jwt.get_unverified_header(old)["kid"]
    result = CliRunner().invoke(build(), ["credentials", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert f"previous key {old_kid} signs until then and verifies until" in result.output
    published = [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]]
    assert published[1:] == [old_kid] and published[0] in result.output
    # Pre-publication: until the delay has passed the old key still signs.
    assert jwt.get_unverified_header(_exchange(client, subject))["kid"] == old_kid
    _activation_due()
    new = _exchange(client, subject)
    new_kid = jwt.get_unverified_header(new)["kid"]
    assert new_kid == published[0]
    assert _active(client, gateway, old) and _active(client, gateway, new)
    jwks = client.get("/.well-known/jwks.json").json()["keys"]
    assert [k["kid"] for k in jwks] == [new_kid, old_kid]
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and "d" not in k for k in jwks)
    # Anyone can verify an issued token with the published keys alone.
    public = jwt.PyJWK(next(k for k in jwks if k["kid"] == old_kid)).key
    assert jwt.decode(old, public, algorithms=["EdDSA"], audience="expense-helper")["sub"] == "maker@example.com"


def test_previous_key_retires_after_its_tokens_expire(
    client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
) -> None:
    """Once the longest token lifetime has passed, the next rotation retires the old key and its tokens die."""
    from orchestrator.clock import utcnow
    from orchestrator.credentials.models import KeyStatus, SigningKey
    from orchestrator.credentials.tokens.keys import get_keyring, max_token_lifetime, publish_delay, rotate
    from orchestrator.db import session_scope

    make_app()
    gateway = make_token("admin", "it@example.com")
    old = _exchange(client, make_token("maker", "maker@example.com"))
    old_kid = jwt.get_unverified_header(old)["kid"]
    with session_scope() as session:
        rotate(session, actor="test")
    later = utcnow() + publish_delay() + max_token_lifetime() + timedelta(minutes=6)
    with session_scope() as session:
        rotation = rotate(session, actor="test", now=later)
        assert rotation.retired == [old_kid]
        row = session.get_one(SigningKey, old_kid)
        assert row.status is KeyStatus.retired and row.private_sealed is None
    assert old_kid not in [k.kid for k in get_keyring().published()]
    assert not _active(client, gateway, old)


def test_another_process_rotation_is_picked_up(
    client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
) -> None:
    """A kid this process has not loaded (rotated elsewhere) is fetched once from the database."""
    from orchestrator.clock import utcnow
    from orchestrator.credentials.tokens.keys import get_keyring, publish_delay, reset_keyring, rotate
    from orchestrator.db import session_scope

    make_app()
    gateway = make_token("admin", "it@example.com")
    subject = make_token("maker", "maker@example.com")
    first = _exchange(client, subject)
    ring_before = get_keyring()
    with session_scope() as session:
        rotation = rotate(session, actor="elsewhere", now=utcnow() - publish_delay())  # signs at once
    token = _exchange(client, subject)
    assert jwt.get_unverified_header(token)["kid"] == rotation.new_kid != jwt.get_unverified_header(first)["kid"]
    reset_keyring()  # this process now knows nothing, like a sibling worker
    assert get_keyring() is not ring_before
    assert _active(client, gateway, token)


def test_private_keys_are_sealed_with_the_configured_key(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database holds no private key in clear, and a different CREDENTIAL_KEY cannot unseal it."""
    from orchestrator.config import get_settings
    from orchestrator.credentials.models import SigningKey
    from orchestrator.credentials.tokens.keys import ensure_signing_key, get_keyring
    from orchestrator.db import session_scope
    from orchestrator.errors import ConfigError

    with session_scope() as session:
        kid = ensure_signing_key(session).kid
    with session_scope(write=False) as session:
        row = session.get_one(SigningKey, kid)
        assert row.private_sealed is not None
        assert "PRIVATE KEY" not in row.private_sealed and row.private_sealed.startswith("v1:")
    monkeypatch.setenv("CREDENTIAL_KEY", "another-key-of-enough-length")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="CREDENTIAL_KEY"):
        get_keyring().refresh()
