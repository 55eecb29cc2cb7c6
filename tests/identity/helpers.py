"""Shared by the identity tests: recorded IdP payloads, the SCIM client calls, rows read back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.conftest import FIXTURES
from tests.factories import auth

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


IDP_FIXTURES = FIXTURES / "idp"
SCIM = "/scim/v2"


def idp_payload(name: str) -> dict[str, Any]:
    """A request body as Okta or Entra documents it, recorded in tests/data/idp."""
    loaded: dict[str, Any] = json.loads((IDP_FIXTURES / f"{name}.json").read_text())
    return loaded


def scim_call(client: TestClient, method: str, path: str, token: str, body: Any = None, **params: Any) -> Any:
    """One SCIM request as an IdP sends it (application/scim+json)."""
    headers = {**auth(token), "Content-Type": "application/scim+json"}
    content = json.dumps(body).encode() if body is not None else None
    return client.request(method, SCIM + path, headers=headers, content=content, params=params or None)


def owner_left_events() -> list[Any]:
    """Every owner.left event stored, oldest first."""
    from sqlmodel import col, select

    from orchestrator.db import session_scope
    from orchestrator.events.models import Event

    with session_scope(write=False) as session:
        rows = session.exec(
            select(Event).where(Event.type == "owner.left").order_by(col(Event.received_at), col(Event.id))
        ).all()
        return [(row.id, row.source, dict(row.payload), row.dedup_key) for row in rows]
