"""Reminders in the thread, escalation, and extensions from the expiry notice's "Extend" button."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from bench.fake_slack import FakeSlack
from bench.slack_requests import APPROVER, OUTSIDER, OWNER, REQUESTER, SLACK_IDS, click, seed_app, sign
from orchestrator.approvals.flows import escalate, send_expiry_notice, send_reminder
from orchestrator.approvals.messages import SlackAction
from orchestrator.approvals.models import ApprovalRequest
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.clock import as_utc
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from orchestrator.events.registry import registration_for
from orchestrator.http.app import create_app
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import Deadline
from tests.approvals.test_flow import handle_all
from tests.factories import auth
from tests.helpers.slack import deliver_all, seeded_request

CHANNEL, LEADS = "C0APPROVAL", "C0ITLEADS0"


def test_reminder_is_a_thread_reply_fired_by_the_deadline(signing_secret: str, slack: FakeSlack) -> None:
    """The reminder deadline's event posts one thread reply on the same message, never a new request."""
    _, approval_id = seeded_request()
    deliver_all()
    with session_scope() as session:
        reminder = session.exec(
            select(Deadline).where(Deadline.ref == str(approval_id), Deadline.kind == "approval_reminder")
        ).one()
        assert reminder.id is not None
        deadlines.fire(session, [reminder.id])
    with session_scope() as session:
        event = session.exec(select(Event).where(Event.type == "approval.reminder_due")).one()
        registration = registration_for("approval.reminder_due")
        assert registration is not None
        for handler in registration.handlers:
            handler(session, event)
            handler(session, event)  # a redelivered event changes nothing
    deliver_all()
    [message] = slack.messages(CHANNEL)
    [reply] = slack.replies(CHANNEL, message["ts"])
    assert f"<@{SLACK_IDS[APPROVER]}>" in reply["text"] and f"#{approval_id}" in reply["text"]
    with session_scope(write=False) as session:
        assert len(session.exec(select(ApprovalRequest)).all()) == 1


def test_no_reminder_after_a_decision(signing_secret: str, slack: FakeSlack) -> None:
    """A decided request gets no reminder and no escalation."""
    _, approval_id = seeded_request()
    deliver_all()
    with TestClient(create_app()) as api:
        body = click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER])
        api.post("/slack/interactions", content=body, headers=sign(body, signing_secret))
    handle_all()
    with session_scope() as session:
        assert send_reminder(session, approval_id, deadline_id=1) is None
        assert escalate(session, approval_id) == []


def test_escalation_reaches_leads_and_manager_and_both_messages_update(signing_secret: str, slack: FakeSlack) -> None:
    """Escalation posts to the leads channel, notes it in the thread, DMs the manager; a decision updates both posts."""
    with session_scope() as session:
        session.add(Person(email=REQUESTER, manager_email=OUTSIDER))
    _, approval_id = seeded_request()
    deliver_all()
    with session_scope() as session:
        escalate(session, approval_id, deadline_id=7)
    deliver_all()
    [lead_post] = slack.messages(LEADS)
    assert "Escalated" in json.dumps(lead_post["blocks"])
    [note] = slack.replies(CHANNEL, slack.messages(CHANNEL)[0]["ts"])
    assert "Escalated to #it-platform-leads" in note["text"]
    [manager_dm] = slack.messages(slack.dm_channel_of(SLACK_IDS[OUTSIDER]))
    assert f"#{approval_id}" in manager_dm["text"]
    with TestClient(create_app()) as api:
        body = click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER], channel=LEADS)
        api.post("/slack/interactions", content=body, headers=sign(body, signing_secret))
    assert handle_all() == ["decided"]
    deliver_all()
    for channel in (CHANNEL, LEADS):
        assert "Approved* by" in json.dumps(slack.messages(channel)[0]["blocks"])
    with session_scope(write=False) as session:
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "approval.escalated")).one()


def test_extend_button_asks_and_approval_sets_new_expiry(signing_secret: str, slack: FakeSlack) -> None:
    """Extend on the owner's expiry notice opens an extension request; approving it moves the expiry and its timers."""
    with session_scope() as session:
        app = seed_app(session, in_review=False)
        old_expiry = as_utc(app.expires_at)  # type: ignore[arg-type]
        send_expiry_notice(session, app, days_left=7)
        app_id = app.id
    deliver_all()
    [notice] = slack.messages(slack.dm_channel_of(SLACK_IDS[OWNER]))
    extend = next(
        e
        for b in notice["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id") == "app.extend"
    )
    dm = slack.dm_channel_of(SLACK_IDS[OWNER])
    with TestClient(create_app()) as api:
        for user in (SLACK_IDS[OUTSIDER], SLACK_IDS[OWNER], SLACK_IDS[OWNER]):
            body = click(SlackAction.extend, extend["value"], user_id=user, channel=dm)
            api.post("/slack/interactions", content=body, headers=sign(body, signing_secret))
    assert handle_all() == ["not_allowed", "extension_requested", "extension_pending"]
    deliver_all()
    with session_scope(write=False) as session:
        request = session.exec(select(ApprovalRequest).where(ApprovalRequest.app_id == app_id)).one()
    assert request.kind == "extension" and request.requested_by == OWNER
    [post] = slack.messages(CHANNEL)
    assert "Extension requested" in json.dumps(post["blocks"])
    with TestClient(create_app()) as api:
        body = click(SlackAction.approve, str(request.id), user_id=SLACK_IDS[APPROVER], ts=post["ts"])
        api.post("/slack/interactions", content=body, headers=sign(body, signing_secret))
    assert handle_all()[-1] == "decided"
    deliver_all()
    with session_scope(write=False) as session:
        app = session.get_one(MicroApp, app_id)
        assert as_utc(app.expires_at) - old_expiry == timedelta(days=60)  # type: ignore[arg-type]
        expiry = session.exec(
            select(Deadline).where(Deadline.app_id == app_id, Deadline.kind == "expiry", Deadline.status == "pending")
        ).one()
        assert as_utc(expiry.due_at) == as_utc(app.expires_at)  # type: ignore[arg-type]
    dm_texts = json.dumps([m["blocks"] for m in slack.messages(dm)])
    assert "New expiry" in dm_texts


def test_extension_requested_event_posts_the_approval(signing_secret: str, slack: FakeSlack, client: Any,
                                                      make_token: Any) -> None:  # fmt: skip
    """An extension asked through the API reaches approvers via the extension.requested handler, once."""
    from orchestrator.events.runner import run_event

    with session_scope() as session:
        app_id = seed_app(session, in_review=False).id
    response = client.post(
        f"/api/v1/apps/{app_id}/extension", json={"days": 10, "reason": "quarter end"},
        headers=auth(make_token("maker", OWNER)),
    )  # fmt: skip
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    run_event(event_id)
    run_event(event_id)  # a redelivery is a no-op
    deliver_all()
    [post] = slack.messages(CHANNEL)
    blocks = json.dumps(post["blocks"])
    assert "Extension requested" in blocks and "10 days" in blocks
