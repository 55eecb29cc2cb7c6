"""OIDC sign-in (authorization code + PKCE) against a local provider issuing real signed ID tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.console.fake_idp import CLIENT_ID, FakeIdp, running_idp
from tests.http.helpers import Tokens


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[FakeIdp]:
    """The provider, and the console configured for it."""
    from orchestrator.config import get_settings

    with running_idp() as provider:
        monkeypatch.setenv("OIDC_ISSUER", provider.url)
        monkeypatch.setenv("OIDC_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("OIDC_CLIENT_SECRET", provider.client_secret)
        get_settings.cache_clear()
        yield provider
    get_settings.cache_clear()


@pytest.fixture
def console(idp: FakeIdp) -> Iterator[Any]:
    """A TestClient of the app with OIDC configured."""
    from fastapi.testclient import TestClient

    from orchestrator.http.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def tokens(make_token: Any) -> Tokens:
    """Role tokens of the people the provider may sign in."""
    return Tokens(
        maker=make_token("maker", "maker@example.com"),
        other=make_token("maker", "other@example.com"),
        approver=make_token("approver", "approver@example.com"),
        admin=make_token("admin", "it-platform@example.com"),
    )


def _round_trip(console: Any, *, tamper_state: bool = False) -> Any:
    start = console.get("/console/oidc/login", params={"next": "/console/inbox"}, follow_redirects=False)
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    query = parse_qs(urlparse(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    at_idp = httpx.get(authorize, follow_redirects=False)
    assert at_idp.status_code == 302
    callback = urlparse(at_idp.headers["location"])
    assert callback.path == "/console/oidc/callback"
    target = callback.path + "?" + callback.query
    if tamper_state:
        target = target.replace("state=", "state=x")
    return console.get(target)


def test_sign_in_maps_the_person_by_email_and_acts_with_their_role(console: Any, idp: FakeIdp, tokens: Tokens) -> None:
    """The login page offers the provider; the round trip signs the approver in and lands on the inbox."""
    from orchestrator.catalog import service as catalog
    from orchestrator.db import session_scope

    with session_scope() as session:
        catalog.ensure_person(session, "approver@example.com")
    assert "Sign in with your company account" in console.get("/console/login").text
    answer = _round_trip(console)
    assert answer.status_code == 200, answer.text
    assert "<h1>Approval inbox</h1>" in answer.text and "approver@example.com" in answer.text
    (request,) = idp.token_requests
    assert request["grant_type"] == "authorization_code" and len(request["code_verifier"]) >= 43


def test_unknown_person_is_refused(console: Any, idp: FakeIdp, tokens: Tokens) -> None:
    """An email the catalog does not know signs no one in."""
    idp.email = "stranger@example.com"
    answer = _round_trip(console)
    assert "Sign-in failed: stranger@example.com is not anyone in the catalog." in answer.text
    assert console.get("/console/", follow_redirects=False).status_code == 303


def test_person_without_a_role_sees_nothing(console: Any, idp: FakeIdp, tokens: Tokens) -> None:
    """A person in the catalog with no live maker/approver/admin token has no role: a page (not a traceback)
    says so and what to ask an admin for; no session starts. A revoked token or a scim token gives no role."""
    from sqlmodel import select

    from orchestrator.auth.models import ApiToken, Role
    from orchestrator.auth.service import create_token, revoke_token
    from orchestrator.catalog import service as catalog
    from orchestrator.db import session_scope

    with session_scope() as session:
        catalog.ensure_person(session, "norole@example.com")
        create_token(session, name="provisioning", role=Role.scim, person_email="norole@example.com", actor="t")
        create_token(session, name="old", role=Role.admin, person_email="norole@example.com", actor="t")
    with session_scope() as session:
        old = session.exec(select(ApiToken).where(ApiToken.name == "old")).one()
        assert old.id is not None
        revoke_token(session, old.id, actor="t")
    idp.email = "norole@example.com"
    answer = _round_trip(console)
    assert answer.status_code == 403
    assert "<h1>No role yet</h1>" in answer.text and "Traceback" not in answer.text
    assert "orchestrator token create --role maker" in answer.text and "--email norole@example.com" in answer.text
    assert console.get("/console/", follow_redirects=False).status_code == 303  # still signed out


def test_the_role_is_the_highest_live_token(console: Any, idp: FakeIdp, tokens: Tokens) -> None:
    """With a maker and an approver token, the person signs in as an approver (the inbox is theirs)."""
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token
    from orchestrator.catalog import service as catalog
    from orchestrator.db import session_scope

    with session_scope() as session:
        catalog.ensure_person(session, "both@example.com")
        for role in (Role.maker, Role.approver):
            create_token(session, name=role.value, role=role, person_email="both@example.com", actor="t")
    idp.email = "both@example.com"
    answer = _round_trip(console)
    assert answer.status_code == 200, answer.text
    assert "<h1>Approval inbox</h1>" in answer.text and "both@example.com" in answer.text


def test_wrong_state_is_refused(console: Any, idp: FakeIdp, tokens: Tokens) -> None:
    """An answer whose state is not this browser's is refused (login CSRF)."""
    answer = _round_trip(console, tamper_state=True)
    assert "does not match this browser" in answer.text
    assert idp.token_requests == []


def test_token_for_another_client_is_refused(console: Any, idp: FakeIdp, tokens: Tokens) -> None:
    """An ID token whose audience is another client is not accepted."""
    from orchestrator.catalog import service as catalog
    from orchestrator.db import session_scope

    with session_scope() as session:
        catalog.ensure_person(session, "approver@example.com")
    idp.audience = "someone-else"
    answer = _round_trip(console)
    assert "the ID token is not valid" in answer.text


def test_provider_error_is_shown(console: Any, idp: FakeIdp, tokens: Tokens) -> None:
    """An error sent back by the provider is shown, not a traceback."""
    answer = console.get("/console/oidc/callback", params={"error": "access_denied", "error_description": "denied"})
    assert answer.status_code == 200 and "Sign-in failed: denied." in answer.text
