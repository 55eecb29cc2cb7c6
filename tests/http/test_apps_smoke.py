"""A first walk through the catalog API on both databases."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.factories import auth, manifest


def test_register_then_show(client: TestClient, make_token: Callable[..., str]) -> None:
    """A maker registers their app and sees it with its audit timeline."""
    token = make_token("maker", "maker@example.com")
    created = client.post("/api/v1/apps", json=manifest(), headers=auth(token))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["app"]["id"] == "expense-helper"
    assert body["app"]["stage"] == "registered"
    assert body["duplicate"] is False
    shown = client.get("/api/v1/apps/expense-helper", headers=auth(token))
    assert shown.status_code == 200
    assert [e["action"] for e in shown.json()["timeline"]] == ["app.registered"]


def test_no_token_is_401(client: TestClient) -> None:
    """Without a bearer token the API answers 401 in the error shape."""
    response = client.get("/api/v1/apps")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
