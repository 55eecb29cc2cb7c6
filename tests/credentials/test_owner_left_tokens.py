"""A person who leaves keeps no token: exchanged tokens introspect inactive, API tokens are revoked."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.credentials.conftest import IdentityProvider, exchange_form
from tests.factories import auth

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.catalog.models import MicroApp

LEAVER = "maker@example.com"


def _introspect(client: TestClient, gateway: str, token: str) -> bool:
    answer = client.post("/oauth/introspect", data={"token": token}, headers=auth(gateway))
    assert answer.status_code == 200, answer.text
    active: bool = answer.json()["active"]
    return active


def _leave(client: TestClient, admin: str) -> None:
    from orchestrator.events.runner import run_event

    posted = client.post(f"/api/v1/people/{LEAVER}/left", json={"reason": "left"}, headers=auth(admin))
    assert posted.status_code == 202, posted.text
    assert run_event(posted.json()["event_id"]).status == "handled"


@pytest.mark.parametrize("redis", [False, True], ids=["ledger", "redis"])
def test_owner_left_revokes_exchanged_and_api_tokens(
    redis: bool,
    request: pytest.FixtureRequest,
    client: TestClient,
    make_token: Callable[..., str],
    make_app: Callable[..., MicroApp],
    idp: IdentityProvider,
) -> None:
    """Tokens exchanged from an API token and from the IdP die with the departure; other people's live on."""
    from sqlmodel import select

    from orchestrator.auth.models import ApiToken
    from orchestrator.catalog.models import Person
    from orchestrator.credentials.models import Credential, CredentialStatus
    from orchestrator.db import session_scope

    if redis:
        request.getfixturevalue("use_redis")
    with session_scope() as session:
        session.add(Person(email=LEAVER))
        session.add(Person(email="co@example.com"))
    make_app("expense-helper")
    api_token = make_token("maker", LEAVER)
    gateway, admin = make_token("admin", "gw@example.com"), make_token("admin", "it@example.com")
    by_api = client.post("/oauth/token", data=exchange_form(api_token)).json()["access_token"]
    idp_form = exchange_form(idp.token(LEAVER), subject_token_type="urn:ietf:params:oauth:token-type:jwt")
    by_idp = client.post("/oauth/token", data=idp_form).json()["access_token"]
    co_form = exchange_form(idp.token("co@example.com"), subject_token_type="urn:ietf:params:oauth:token-type:jwt")
    co_token = client.post("/oauth/token", data=co_form).json()["access_token"]
    with session_scope(write=False) as session:
        subjects = session.exec(select(Credential.subject).where(Credential.provider == "builtin")).all()
    assert sorted(subjects) == sorted([LEAVER, LEAVER, "co@example.com"])  # the ledger knows whose they are
    assert _introspect(client, gateway, by_api) and _introspect(client, gateway, by_idp)

    _leave(client, admin)

    assert not _introspect(client, gateway, by_api)
    assert not _introspect(client, gateway, by_idp)
    assert _introspect(client, gateway, co_token)  # the co-owner, now owner, keeps theirs
    with session_scope(write=False) as session:
        rows = session.exec(select(Credential).where(Credential.subject == LEAVER)).all()
        assert {row.status for row in rows} == {CredentialStatus.revoked}
        [row] = session.exec(select(ApiToken).where(ApiToken.person_email == LEAVER)).all()
        assert row.revoked_at is not None
    refused = client.post("/oauth/token", data=idp_form)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # A second report of the same departure (Slack, GitHub) finds nothing left to revoke.
    _leave(client, admin)
