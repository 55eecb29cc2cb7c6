"""An approver who left (owner.left) is not asked again and decides nothing: the rest of the group decides."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import select

from bench.fake_slack import FakeSlack
from bench.slack_requests import APPROVER, APPROVER_2, SLACK_IDS, click
from orchestrator.approvals.messages import SlackAction
from orchestrator.catalog.models import Person
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from orchestrator.events.registry import registration_for
from orchestrator.http.app import create_app
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import Deadline
from tests.approvals.test_flow import approval, handle_all, post
from tests.helpers.slack import deliver_all, seeded_request

CHANNEL = "C0APPROVAL"


def _leave(email: str) -> None:
    with session_scope() as session:
        person = session.get(Person, email)
        assert person is not None
        person.active = False
        session.add(person)


def test_leaver_is_not_reminded_and_cannot_decide(signing_secret: str, slack: FakeSlack) -> None:
    """The reminder mentions the remaining approvers only; the leaver's click is refused, another's decides."""
    _, approval_id = seeded_request()
    deliver_all()
    _leave(APPROVER)
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
    deliver_all()
    [message] = slack.messages(CHANNEL)
    [reply] = slack.replies(CHANNEL, message["ts"])
    assert f"<@{SLACK_IDS[APPROVER]}>" not in reply["text"]

    with TestClient(create_app()) as api:
        post(api, click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER]), signing_secret)
        assert handle_all() == ["not_allowed"]
        assert approval(approval_id).status == "pending"
        assert any("you have left" in e["text"] for e in slack.ephemerals)
        post(api, click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER_2]), signing_secret)
        assert "decided" in handle_all()
    assert approval(approval_id).status == "approved"
