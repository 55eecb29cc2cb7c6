"""Updating a manifest and requesting a review over the API, through to the catalog and the token exchange.

`PUT /api/v1/apps/{id}/manifest` applies what narrows at once and queues a review of the manifest; what
widens becomes the catalog's when an approver approves that review, and the app's service credential
then exchanges for the new scope. `POST /api/v1/apps/{id}/reviews` queues a review without a push.
The review runs in-process (`run_review`), on both databases.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sqlmodel import col, select

from orchestrator.approvals.models import ApprovalRequest
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.models import MicroApp
from orchestrator.credentials.models import Credential
from orchestrator.db import session_scope
from orchestrator.notifications.models import Notification
from orchestrator.reviews.flows import run_review
from orchestrator.reviews.models import Review, ReviewFinding
from tests.factories import auth, manifest
from tests.http.helpers import MAKER, Tokens, seed_app

ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"


@pytest.fixture(autouse=True)
def credential_key(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A sealing key built at run time (service secrets are sealed until claimed), fresh credential caches."""
    from tests.credentials.conftest import reset_credential_caches

    monkeypatch.setenv("CREDENTIAL_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("TOKEN_ISSUER", "http://orchestrator.test")
    monkeypatch.delenv("REDIS_URL", raising=False)
    reset_credential_caches()
    yield
    reset_credential_caches()


def production_app(scopes: list[str], app_id: str = "expense-helper") -> str:
    """An internal app without a repository, approved as an approver would (service credential parked)."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.catalog.policy import get_policy
    from orchestrator.credentials import handover

    seed_app(id=app_id, repo=None, scopes=scopes)
    policy = get_policy()
    with session_scope() as session:
        app = catalog.get_app(session, app_id)
        catalog.apply_action(session, app, Action.submit_for_review, actor="policy", policy=policy)
        catalog.apply_action(session, app, Action.approve, actor="approver@example.com", policy=policy)
        handover.on_app_approved(session, app, policy=policy, actor="approver@example.com")
    return app_id


def claim(client: Any, tokens: Tokens, app_id: str) -> str:
    """The owner claims the app's service secret."""
    response = client.post(f"/api/v1/apps/{app_id}/service-credential", headers=tokens.headers("maker"))
    assert response.status_code == 200, response.text
    return str(response.json()["secret"])


def exchange(client: Any, secret: str, app_id: str, scope: str) -> Any:
    """Exchange the service secret for a token of `scope` on `app_id`."""
    form = {
        "grant_type": GRANT,
        "subject_token": secret,
        "subject_token_type": ACCESS_TOKEN,
        "audience": app_id,
        "scope": scope,
    }
    return client.post("/oauth/token", data=form)


def put_manifest(client: Any, tokens: Tokens, app_id: str, who: str = "maker", **overrides: Any) -> Any:
    """PUT the factory manifest of `app_id` with overrides, as JSON."""
    body = manifest(**{"id": app_id, "repo": None, **overrides})
    return client.put(f"/api/v1/apps/{app_id}/manifest", json=body, headers=tokens.headers(who))


def app_row(app_id: str) -> MicroApp:
    """The catalogued app."""
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        return app


def service_scopes(app_id: str) -> list[list[str]]:
    """The scopes of the app's live service credentials."""
    with session_scope(write=False) as session:
        rows = session.exec(
            select(Credential).where(Credential.app_id == app_id, Credential.provider == "builtin-service")
        ).all()
        return [list(r.scopes) for r in rows if r.status == "live"]


def audit_actions(app_id: str) -> list[AuditEntry]:
    """The app's audit entries, in order."""
    with session_scope(write=False) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.app_id == app_id).order_by(col(AuditEntry.seq))))


def owner_messages(app_id: str) -> list[str]:
    """The texts of the notifications to the owner about the app."""
    with session_scope(write=False) as session:
        rows = session.exec(select(Notification).where(Notification.app_id == app_id, Notification.recipient == MAKER))
        return [n.text for n in rows]


def test_a_widened_manifest_waits_for_approval_then_the_new_scope_is_exchanged(client: Any, tokens: Tokens) -> None:
    """An added scope waits for the review and the approver; after approval the same secret exchanges for it."""
    app_id = production_app(["sheets:read"])
    secret = claim(client, tokens, app_id)
    assert exchange(client, secret, app_id, "sheets:read").status_code == 200

    response = put_manifest(client, tokens, app_id, scopes=["sheets:read", "sheets:write"])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["waiting_for_approval"] == ["scopes added: sheets:write"] and body["applied"] == []
    assert body["app"]["requested_scopes"] == ["sheets:read"] and body["app"]["stage"] == "in_review"
    refused = exchange(client, secret, app_id, "sheets:write")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"

    assert run_review(body["review_id"]) == "needs_approval"
    with session_scope(write=False) as session:
        review = session.get(Review, body["review_id"])
        assert review is not None and review.trigger == "manifest.updated"
        assert review.manifest is not None and review.manifest["scopes"] == ["sheets:read", "sheets:write"]
        rules = session.exec(select(ReviewFinding.rule).where(ReviewFinding.review_id == review.id)).all()
        [request] = session.exec(
            select(ApprovalRequest).where(ApprovalRequest.app_id == app_id, ApprovalRequest.status == "pending")
        ).all()
    assert "manifest-widened" in rules and request.review_id == body["review_id"]
    assert app_row(app_id).requested_scopes == ["sheets:read"]  # still waiting

    decided = client.post(
        f"/api/v1/approvals/{request.id}/decision", json={"decision": "approve"}, headers=tokens.headers("approver")
    )
    assert decided.status_code == 200, decided.text
    app = app_row(app_id)
    assert app.stage == "production" and app.requested_scopes == ["sheets:read", "sheets:write"]
    assert app.manifest["scopes"] == ["sheets:read", "sheets:write"]
    assert service_scopes(app_id) == [["sheets:read", "sheets:write"]]
    granted = exchange(client, secret, app_id, "sheets:write")
    assert granted.status_code == 200, granted.text
    assert granted.json()["scope"] == "sheets:write"
    actions = [e.action for e in audit_actions(app_id)]
    assert "app.manifest_updated" in actions and "credential.scopes_changed" in actions
    assert any("now in the catalog: scopes added: sheets:write" in t for t in owner_messages(app_id))


def test_a_narrowed_manifest_applies_at_once(client: Any, tokens: Tokens) -> None:
    """A removed scope leaves the catalog and the service credential at once, before any review or approval."""
    app_id = production_app(["sheets:read", "sheets:write"])
    secret = claim(client, tokens, app_id)
    response = put_manifest(client, tokens, app_id, scopes=["sheets:read"], connectors=[], name="Expenses")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["applied"] == ["scopes removed: sheets:write", "connectors removed: google-sheets", "updated: name"]
    assert body["waiting_for_approval"] == []
    app = app_row(app_id)
    assert (app.requested_scopes, app.connectors, app.name) == (["sheets:read"], [], "Expenses")
    assert service_scopes(app_id) == [["sheets:read"]]
    refused = exchange(client, secret, app_id, "sheets:write")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    assert exchange(client, secret, app_id, "sheets:read").status_code == 200
    [told] = [t for t in owner_messages(app_id) if "Applied now" in t]
    assert "scopes removed: sheets:write" in told and "sent through the API by maker@example.com" in told
    [entry] = [e for e in audit_actions(app_id) if e.action == "app.manifest_updated"]
    assert entry.actor == MAKER and entry.data["removed"]["scopes"] == ["sheets:write"]


def test_a_manifest_sent_as_yaml_by_an_admin(client: Any, tokens: Tokens) -> None:
    """YAML works as for registration, and an admin may update any app's manifest."""
    app_id = production_app(["sheets:read"])
    text = yaml.safe_dump(manifest(id=app_id, repo=None, scopes=[], description="new words"))
    headers = {**tokens.headers("admin"), "Content-Type": "application/yaml"}
    response = client.put(f"/api/v1/apps/{app_id}/manifest", content=text, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["applied"] == ["scopes removed: sheets:read", "updated: description"]
    # No scope left: the service credential has nothing to exchange for and is revoked.
    assert service_scopes(app_id) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scopes": ["not a scope!"]}, "scopes"),
        ({"owner": "someone@example.com"}, "owner"),
        ({"id": "another-app"}, "id"),
        ({"co_owners": ["co@example.com"]}, "co_owners"),
        ({"repo": "https://github.com/example/elsewhere"}, "repo"),
        ({"data_class": "secret"}, "data_class"),
        ({"connectors": "google-sheets"}, "connectors"),
    ],
)
def test_bad_manifests_answer_422_naming_the_field(
    client: Any, tokens: Tokens, overrides: dict[str, Any], field: str
) -> None:
    """A manifest the catalog cannot take is refused with the field and the reason; nothing changes."""
    app_id = production_app(["sheets:read"])
    response = put_manifest(client, tokens, app_id, **overrides)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in [d["field"].split(".")[0] for d in body["detail"]]
    assert app_row(app_id).stage == "production"


def test_who_may_update_a_manifest(client: Any, tokens: Tokens) -> None:
    """Another maker does not see the app (404); an approver who does not own it may not (403); bad bodies."""
    app_id = production_app(["sheets:read"])
    assert put_manifest(client, tokens, app_id, who="other").status_code == 404
    assert put_manifest(client, tokens, app_id, who="approver").status_code == 403
    assert put_manifest(client, tokens, "no-such-app", who="admin").status_code == 404
    url = f"/api/v1/apps/{app_id}/manifest"
    assert (
        client.put(url, content=b"{", headers={**tokens.headers("maker"), "Content-Type": "application/json"}).json()[
            "error"
        ]
        == "malformed_body"
    )
    wrong_type = client.put(url, content=b"x", headers={**tokens.headers("maker"), "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415


def test_a_retired_app_takes_no_manifest_and_no_review(client: Any, tokens: Tokens) -> None:
    """An app on its way out is not reviewed: both routes answer 409 invalid_transition."""
    app_id = production_app(["sheets:read"])
    assert (
        client.post(f"/api/v1/apps/{app_id}/retire", json={"reason": "done"}, headers=auth(tokens.admin)).status_code
        == 202
    )
    response = put_manifest(client, tokens, app_id, scopes=[])
    assert response.status_code == 409 and response.json()["error"] == "invalid_transition"
    assert app_row(app_id).requested_scopes == ["sheets:read"]
    requested = client.post(f"/api/v1/apps/{app_id}/reviews", headers=tokens.headers("maker"))
    assert requested.status_code == 409 and requested.json()["error"] == "invalid_transition"


def test_a_review_requested_without_a_push(client: Any, tokens: Tokens) -> None:
    """The owner asks for a review: one is queued (a second ask joins it), audited under their name."""
    app_id = production_app(["sheets:read"])
    response = client.post(f"/api/v1/apps/{app_id}/reviews", headers=tokens.headers("maker"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["app"]["stage"] == "in_review"
    again = client.post(f"/api/v1/apps/{app_id}/reviews", headers=tokens.headers("admin"))
    assert again.status_code == 202 and again.json()["review_id"] == body["review_id"]
    assert client.post(f"/api/v1/apps/{app_id}/reviews", headers=tokens.headers("other")).status_code == 404
    requested = [e for e in audit_actions(app_id) if e.action == "review.requested"]
    assert [e.actor for e in requested] == [MAKER, "admin@example.com"]
    assert run_review(body["review_id"]) == "needs_approval"  # no repository: a person looks at it
