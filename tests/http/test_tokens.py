"""`GET /api/v1/tokens` and `DELETE /api/v1/tokens/{id}`: admin only, audited, effective at once."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.events.helpers import audit_actions
from tests.factories import auth


def test_admin_lists_and_revokes_tokens(client: TestClient, make_token: Callable[..., str]) -> None:
    """Only admins list and revoke; a revoked token is refused at once, by the API and by introspection."""
    admin = make_token("admin", "it@example.com", name="it")
    maker = make_token("maker", "maker@example.com", name="maker")
    gateway = make_token("approver", "gw@example.com", name="gateway")
    assert client.get("/api/v1/tokens", headers=auth(maker)).status_code == 403
    assert client.get("/api/v1/tokens", headers=auth(gateway)).status_code == 403
    listed = client.get("/api/v1/tokens", headers=auth(admin))
    assert listed.status_code == 200, listed.text
    by_name = {t["name"]: t for t in listed.json()}
    assert set(by_name) == {"it", "maker", "gateway"}
    assert all("token" not in key and "hash" not in key for key in by_name["it"])

    # The introspection endpoint caches authenticated callers; a revocation must reach that cache too.
    assert client.post("/oauth/introspect", data={"token": "x"}, headers=auth(gateway)).status_code == 200
    assert client.delete(f"/api/v1/tokens/{by_name['gateway']['id']}", headers=auth(maker)).status_code == 403
    revoked = client.delete(f"/api/v1/tokens/{by_name['gateway']['id']}", headers=auth(admin))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert client.post("/oauth/introspect", data={"token": "x"}, headers=auth(gateway)).status_code == 401
    assert client.get("/api/v1/apps", headers=auth(gateway)).status_code == 401
    [entry] = [e for e in audit_actions() if e.action == "token.revoked"]
    assert entry.actor == "it@example.com" and entry.data["name"] == "gateway"
    assert [t["name"] for t in client.get("/api/v1/tokens", headers=auth(admin)).json()] == ["it", "maker"]
    with_revoked = client.get("/api/v1/tokens", params={"include_revoked": "true"}, headers=auth(admin))
    assert len(with_revoked.json()) == 3


def test_unknown_and_out_of_range_ids(client: TestClient, make_token: Callable[..., str]) -> None:
    """An id that names no token is a 404; one beyond 64 bits or below 1 is a 422, never a 500."""
    admin = make_token("admin", "it@example.com")
    assert client.delete("/api/v1/tokens/999999", headers=auth(admin)).status_code == 404
    assert client.delete(f"/api/v1/tokens/{2**64}", headers=auth(admin)).status_code == 422
    assert client.delete("/api/v1/tokens/0", headers=auth(admin)).status_code == 422
