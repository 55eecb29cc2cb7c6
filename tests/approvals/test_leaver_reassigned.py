"""An approver who leaves (owner.left, through the real API and handlers): their pending requests are
re-announced to the rest of the group in Slack, the message no longer names them — once, audited."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from bench.fake_slack import FakeSlack
from bench.slack_requests import APPROVER, APPROVER_2, SLACK_IDS
from orchestrator.audit.models import AuditEntry
from orchestrator.db import session_scope
from orchestrator.events.runner import run_event
from orchestrator.http.app import create_app
from tests.approvals.test_flow import approval
from tests.factories import auth
from tests.helpers.slack import api_token, deliver_all, seeded_request

CHANNEL = "C0APPROVAL"
GONE, STAYS = f"<@{SLACK_IDS[APPROVER]}>", f"<@{SLACK_IDS[APPROVER_2]}>"


def _context(message: dict[str, Any]) -> str:
    return " ".join(e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"])


def _leave(api: TestClient, admin: str, email: str) -> None:
    posted = api.post(f"/api/v1/people/{email}/left", json={"reason": "left"}, headers=auth(admin))
    assert posted.status_code == 202, posted.text
    assert run_event(posted.json()["event_id"]).status == "handled"


def _reassigned(approval_id: int) -> list[dict[str, Any]]:
    with session_scope(write=False) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.action == "approval.reassigned")).all()
        return [dict(row.data) for row in rows if row.data.get("approval_id") == approval_id]


def test_leavers_pending_request_goes_to_the_rest_of_the_group(signing_secret: str, slack: FakeSlack) -> None:
    """Posted naming both approvers; one leaves: a thread reply asks the other, the message is edited to
    name only them, one audit entry; a second owner.left for the same person changes nothing in Slack."""
    _, approval_id = seeded_request()
    deliver_all()
    [message] = slack.messages(CHANNEL)
    assert GONE in _context(message) and STAYS in _context(message)
    admin = api_token("admin", "it@example.com")

    with TestClient(create_app()) as api:
        _leave(api, admin, APPROVER)
        deliver_all()
        [message] = slack.messages(CHANNEL)
        assert message.get("edited"), "the approval message is updated"
        assert STAYS in _context(message) and GONE not in _context(message)
        assert any(b["type"] == "actions" for b in message["blocks"]), "still pending: the buttons stay"
        [reply] = slack.replies(CHANNEL, message["ts"])
        assert STAYS in reply["text"] and GONE not in reply["text"]
        assert f"request #{approval_id}" in reply["text"]
        assert _reassigned(approval_id) == [{"approval_id": approval_id, "left": APPROVER, "to": [APPROVER_2]}]
        assert approval(approval_id).payload["left_approvers"] == [APPROVER]

        posts, updates = len(slack.calls("chat.postMessage")), len(slack.calls("chat.update"))
        _leave(api, admin, APPROVER)  # the IdP, Slack and GitHub each report the departure
        deliver_all()
        assert (len(slack.calls("chat.postMessage")), len(slack.calls("chat.update"))) == (posts, updates)
        assert len(_reassigned(approval_id)) == 1
    assert approval(approval_id).status == "pending"


def test_someone_outside_the_group_leaving_touches_no_request(signing_secret: str, slack: FakeSlack) -> None:
    """The requester's colleague (not an approver) leaves: no reply, no edit, no audit entry."""
    from bench.slack_requests import OUTSIDER

    _, approval_id = seeded_request()
    deliver_all()
    [message] = slack.messages(CHANNEL)
    with TestClient(create_app()) as api:
        _leave(api, api_token("admin", "it@example.com"), OUTSIDER)
    deliver_all()
    assert slack.replies(CHANNEL, message["ts"]) == []
    assert slack.calls("chat.update") == []
    assert _reassigned(approval_id) == []
