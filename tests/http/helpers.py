"""Helpers for the catalog API tests: the role tokens, and seeding apps directly or over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.factories import auth, manifest


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens of one maker, another maker, an approver and an admin."""

    maker: str
    other: str
    approver: str
    admin: str

    def headers(self, who: str) -> dict[str, str]:
        """Authorization headers for `who` (maker, other, approver, admin)."""
        return auth(getattr(self, who))


MAKER = "maker@example.com"
OTHER = "other@example.com"


def seed_app(**overrides: Any) -> str:
    """Register an app straight through the catalog service (no HTTP); returns its id."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.manifest import parse_manifest
    from orchestrator.catalog.policy import get_policy
    from orchestrator.db import session_scope

    with session_scope() as session:
        app, _ = catalog.register_app(session, parse_manifest(manifest(**overrides)), actor="seed", policy=get_policy())
        return app.id


def register(client: Any, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """Register an app over HTTP and return the created app (asserting 201)."""
    response = client.post("/api/v1/apps", json=manifest(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json()["app"])
