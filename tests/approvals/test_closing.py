"""Leaving the active stages closes the app's open approval requests: cancelled, audited, buttons gone."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from bench.fake_slack import FakeSlack
from bench.slack_requests import APPROVER
from orchestrator.approvals.models import ApprovalKind, ApprovalRequest
from orchestrator.audit.models import AuditEntry
from orchestrator.db import session_scope
from orchestrator.http.app import create_app
from orchestrator.timers.models import Deadline
from tests.factories import auth
from tests.helpers.slack import api_token, deliver_all, seeded_request

CHANNEL = "C0APPROVAL"
ADMIN = "admin@example.com"


def _actions_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def _approval(approval_id: int) -> ApprovalRequest:
    with session_scope(write=False) as session:
        row = session.get(ApprovalRequest, approval_id)
        assert row is not None
        return row


def _audit_actions(app_id: str) -> list[str]:
    with session_scope(write=False) as session:
        return [e.action for e in session.exec(select(AuditEntry).where(AuditEntry.app_id == app_id))]


def test_retiring_closes_the_pending_request_and_its_buttons(signing_secret: str, slack: FakeSlack) -> None:
    """Retire an app awaiting approval: the request is cancelled once, its message says so, approving is 409."""
    app_id, approval_id = seeded_request()
    assert deliver_all() == ["sent"]
    [posted] = slack.messages(CHANNEL)
    assert _actions_of(posted)
    with TestClient(create_app()) as api:
        retired = api.post(
            f"/api/v1/apps/{app_id}/retire", json={"reason": "not needed"}, headers=auth(api_token("admin", ADMIN))
        )
        assert retired.status_code == 202, retired.text
        deliver_all()
        closed = _approval(approval_id)
        assert (closed.status, closed.decided_by) == ("cancelled", ADMIN)
        assert "sunsetting" in (closed.reason or "")
        [message] = slack.messages(CHANNEL)
        assert _actions_of(message) == []
        text = json.dumps(message["blocks"])
        assert "Cancelled" in text and "sunsetting" in text
        late = api.post(
            f"/api/v1/approvals/{approval_id}/decision",
            json={"decision": "approve"},
            headers=auth(api_token("approver", APPROVER)),
        )
    assert late.status_code == 409, late.text
    assert late.json()["error"] == "conflict" and late.json()["detail"]["status"] == "cancelled"
    assert _audit_actions(app_id).count("approval.cancelled") == 1
    with session_scope(write=False) as session:
        states = {d.status for d in session.exec(select(Deadline).where(Deadline.ref == str(approval_id)))}
    assert states == {"cancelled"}


def test_a_request_closed_before_its_message_is_posted_is_posted_closed(signing_secret: str, slack: FakeSlack) -> None:
    """Retired before delivery ran: the one message that goes out has no buttons."""
    app_id, approval_id = seeded_request()
    with TestClient(create_app()) as api:
        retired = api.post(f"/api/v1/apps/{app_id}/retire", json={}, headers=auth(api_token("admin", ADMIN)))
    assert retired.status_code == 202, retired.text
    deliver_all()
    assert _approval(approval_id).status == "cancelled"
    assert all(_actions_of(m) == [] for m in slack.messages(CHANNEL))


def test_entering_expiring_keeps_the_extension_request_only(signing_secret: str, slack: FakeSlack) -> None:
    """expiring is left through the extension itself: that request stays open, the promotion closes."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.catalog.policy import get_policy

    app_id, approval_id = seeded_request()
    with session_scope() as session:
        app = catalog.get_app(session, app_id)
        extension, _ = catalog.request_extension(
            session, app, actor=app.owner_email, days=None, reason="more time", policy=get_policy()
        )
        catalog.apply_action(session, app, Action.mark_expiring, actor="policy", policy=get_policy())
        extension_id = extension.id
    assert _approval(approval_id).status == "cancelled"
    assert extension_id is not None and _approval(extension_id).status == "pending"
    assert _approval(extension_id).kind == ApprovalKind.extension
