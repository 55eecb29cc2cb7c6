"""The registrant is a party to the app: an approver who registered it may not decide its approvals."""

from __future__ import annotations

from typing import Any

from tests.factories import auth, manifest

APPROVER = "approver@example.com"
OTHER_APPROVER = "it-platform@example.com"


def _open_promotion(app_id: str) -> int:
    """Put the app in review with a pending promotion request, as a finished review would."""
    from orchestrator.approvals.models import ApprovalKind
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.catalog.policy import get_policy
    from orchestrator.db import session_scope

    with session_scope() as session:
        app = catalog.get_app(session, app_id)
        catalog.apply_action(session, app, Action.submit_for_review, actor="policy", policy=get_policy())
        request, _ = catalog.open_approval(session, app, kind=ApprovalKind.promotion, requested_by="policy")
        assert request.id is not None
        return request.id


def test_an_approver_cannot_approve_an_app_they_registered(client: Any, make_token: Any) -> None:
    """Registered under a made-up owner by an approver: their approval is refused; another approver's stands."""
    registrant = make_token("approver", APPROVER)
    body = manifest(owner="made-up@example.com")
    response = client.post("/api/v1/apps", json=body, headers=auth(registrant))
    assert response.status_code == 201, response.text
    app_id = response.json()["app"]["id"]
    approval_id = _open_promotion(app_id)

    refused = client.post(
        f"/api/v1/approvals/{approval_id}/decision", json={"decision": "approve"}, headers=auth(registrant)
    )
    assert refused.status_code == 403, refused.text
    assert "registered" in refused.text
    shown = client.get(f"/api/v1/apps/{app_id}", headers=auth(registrant)).json()
    assert shown["stage"] == "in_review"
    assert "approval.refused" in [e["action"] for e in shown["timeline"]]

    other = make_token("approver", OTHER_APPROVER)
    decided = client.post(
        f"/api/v1/approvals/{approval_id}/decision", json={"decision": "approve"}, headers=auth(other)
    )
    assert decided.status_code == 200, decided.text
    assert client.get(f"/api/v1/apps/{app_id}", headers=auth(other)).json()["stage"] == "production"


def test_the_registrant_is_compared_whatever_the_case(client: Any, make_token: Any) -> None:
    """An approver token with a differently cased email is the same person."""
    from orchestrator.approvals.service import Decision, Result, decide
    from orchestrator.db import session_scope

    registrant = make_token("approver", APPROVER.upper())
    response = client.post("/api/v1/apps", json=manifest(owner="made-up@example.com"), headers=auth(registrant))
    assert response.status_code == 201, response.text
    approval_id = _open_promotion(response.json()["app"]["id"])
    with session_scope() as session:
        outcome = decide(session, approval_id, decision=Decision.approve, actor=APPROVER, via="test")
    assert outcome.result is Result.not_allowed and "registered" in outcome.message
