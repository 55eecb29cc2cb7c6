"""Offboarding from the IdP closes access: a SCIM deactivation makes the leaver's exchanged tokens inactive."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.credentials.conftest import exchange_form
from tests.factories import auth
from tests.identity.helpers import owner_left_events, scim_call

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.catalog.models import MicroApp

LEAVER = "maker@example.com"


def _active(client: TestClient, gateway: str, token: str) -> bool:
    answer = client.post("/oauth/introspect", data={"token": token}, headers=auth(gateway))
    assert answer.status_code == 200, answer.text
    active: bool = answer.json()["active"]
    return active


def test_scim_deactivation_revokes_the_leavers_tokens(
    client: TestClient, make_token: Callable[..., str], make_app: Callable[..., MicroApp]
) -> None:
    """Entra's disable ("False") → owner.left handled → API and exchanged tokens inactive; scim cannot exchange."""
    from orchestrator.events.runner import run_event

    scim = make_token("scim", None, "entra")
    user = scim_call(
        client,
        "POST",
        "/Users",
        scim,
        {"userName": LEAVER, "emails": [{"value": LEAVER, "primary": True}], "active": True},
    ).json()
    make_app("expense-helper")
    api_token = make_token("maker", LEAVER)
    gateway = make_token("admin", "gw@example.com")
    exchanged = client.post("/oauth/token", data=exchange_form(api_token)).json()["access_token"]
    assert _active(client, gateway, exchanged)
    # The IdP's credential opens nothing but SCIM: not even a token exchange.
    assert client.post("/oauth/token", data=exchange_form(scim)).status_code in (400, 401)

    patch = {"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    assert scim_call(client, "PATCH", f"/Users/{user['id']}", scim, patch).status_code == 200
    [(event_id, _, _, _)] = owner_left_events()
    assert run_event(event_id).status == "handled"

    assert not _active(client, gateway, exchanged)
    assert client.get("/api/v1/apps", headers=auth(api_token)).status_code == 401
