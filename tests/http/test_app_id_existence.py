"""Registering an id another maker's app holds tells the caller nothing about that app."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from tests.factories import manifest
from tests.http.helpers import MAKER, OTHER, Tokens, register


def _apps_named(app_id: str) -> list[Any]:
    from orchestrator.catalog.models import MicroApp
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        return list(session.exec(select(MicroApp).where(MicroApp.id == app_id)).all())


def test_another_makers_id_is_refused_without_a_trace_of_the_app(client: Any, tokens: Tokens) -> None:
    """A 403 "not available" that names no owner or stage, and does not say the app exists."""
    register(client, tokens.headers("maker"))  # expense-helper, owned by MAKER
    response = client.post("/api/v1/apps", json=manifest(owner=OTHER), headers=tokens.headers("other"))
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "forbidden"
    text = response.text.lower()
    for leak in (MAKER, "exist", "registered", "conflict", "in_review", "production"):
        assert leak not in text, leak
    [app] = _apps_named("expense-helper")
    assert app.owner_email == MAKER  # and nothing changed


def test_the_same_refusal_with_an_idempotency_key(client: Any, tokens: Tokens) -> None:
    """The idempotent path answers the same, and a retry of the key still does not reveal the app."""
    register(client, tokens.headers("maker"))
    headers = {"Idempotency-Key": "k-1", **tokens.headers("other")}
    first = client.post("/api/v1/apps", json=manifest(owner=OTHER), headers=headers)
    again = client.post("/api/v1/apps", json=manifest(owner=OTHER), headers=headers)
    assert first.status_code == again.status_code == 403
    assert first.json() == again.json()


def test_callers_who_may_see_the_app_still_get_the_conflict(client: Any, tokens: Tokens) -> None:
    """The owner, an approver and an admin see the app anyway: for them it is the 409 it always was."""
    register(client, tokens.headers("maker"))
    for who in ("maker", "approver", "admin"):
        response = client.post("/api/v1/apps", json=manifest(), headers=tokens.headers(who))
        assert response.status_code == 409, (who, response.text)
        assert response.json()["error"] == "conflict"
