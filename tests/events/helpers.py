"""Builders shared by the pipeline tests: signed GitHub deliveries, fixture payloads, a catalogued app."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

from tests.conftest import FIXTURES

if TYPE_CHECKING:
    from orchestrator.events.models import Event

GITHUB_FIXTURES = FIXTURES / "github"
# The repository of the octokit example payloads (push, repository.*).
HELLO_REPO = "https://github.com/Codertocat/Hello-World"
OCTO_REPO = "https://github.com/Octocoders/Hello-World"


def payload(name: str) -> dict[str, Any]:
    """A real GitHub webhook payload recorded in tests/data/github."""
    loaded: dict[str, Any] = json.loads((GITHUB_FIXTURES / f"{name}.json").read_text())
    return loaded


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 header GitHub would send."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery(event: str, body: dict[str, Any] | bytes, secret: str, *, guid: str | None = None) -> dict[str, Any]:
    """Keyword arguments for an httpx/TestClient POST of a signed delivery."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, raw),
        "Content-Type": "application/json",
    }
    return {"content": raw, "headers": headers}


def catalogue(
    app_id: str,
    *,
    repo: str = HELLO_REPO,
    owner: str = "maker@example.com",
    co_owners: tuple[str, ...] = (),
    data_class: str = "internal",
) -> None:
    """Register an app with the catalog service (in the current DATABASE_URL)."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.manifest import parse_manifest, repo_refusal
    from orchestrator.catalog.policy import get_policy
    from orchestrator.config import get_settings
    from orchestrator.db import session_scope

    # GitHub's recorded GHES payloads name http:// repositories, which a manifest may no longer name:
    # such an app stands for a row catalogued before the rule, so its URL is stored directly.
    stored_before_the_rule = repo_refusal(repo, get_settings()) is not None
    manifest = parse_manifest(
        {
            "id": app_id,
            "name": app_id.replace("-", " ").title(),
            "owner": owner,
            "co_owners": list(co_owners),
            "data_class": data_class,
            "repo": None if stored_before_the_rule else repo,
        }
    )
    with session_scope() as session:
        app, _ = catalog.register_app(session, manifest, actor="test", policy=get_policy(), source="test")
        if stored_before_the_rule:
            app.repo_url = repo
            session.add(app)


def events(**filters: Any) -> list[Event]:
    """Every event row matching `filters` (column=value)."""
    from sqlmodel import select

    from orchestrator.db import session_scope
    from orchestrator.events.models import Event

    with session_scope(write=False) as session:
        query = select(Event)
        for column, value in filters.items():
            query = query.where(getattr(Event, column) == value)
        return list(session.exec(query).all())


def audit_actions(app_id: str | None = None) -> list[Any]:
    """The audit entries (of one app, or all) in chain order."""
    from sqlmodel import col, select

    from orchestrator.audit.models import AuditEntry
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        query = select(AuditEntry).order_by(col(AuditEntry.seq))
        if app_id:
            query = query.where(AuditEntry.app_id == app_id)
        return list(session.exec(query).all())
