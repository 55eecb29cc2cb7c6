"""The approval path through the real API route, interaction handler, delivery and local Slack."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from bench.fake_slack import FakeSlack
from bench.slack_requests import APPROVER, APPROVER_2, OUTSIDER, OWNER, SLACK_IDS, click, sign
from orchestrator.approvals import interactions
from orchestrator.approvals.messages import SlackAction
from orchestrator.approvals.models import ApprovalRequest
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from orchestrator.http.app import create_app
from orchestrator.notifications.models import SlackInteraction
from orchestrator.timers.models import Deadline
from tests.helpers.slack import deliver_all, seeded_request

CHANNEL = "C0APPROVAL"
REVIEW = {
    "verdict": "needs_attention",
    "findings": [
        {"check": "secrets", "rule": "aws-access-key", "file": "app.py", "line": 3, "severity": "high",
         "preview": "key = AKIAZZZZEXAMPLE7QWERTY"},
        {"check": "deps", "rule": "blocked-dependency", "file": "requirements.txt", "line": 1, "severity": "medium",
         "preview": "pycrypto==2.6"},
        {"check": "llm", "rule": "unapproved-llm", "file": "llm.py", "line": 9, "severity": "low", "preview": "openai"},
    ],
}  # fmt: skip


def post(api: TestClient, body: bytes, secret: str, **headers: str) -> Any:
    """Send a signed interaction like Slack does."""
    return api.post("/slack/interactions", content=body, headers={**sign(body, secret), **headers})


def handle_all() -> list[str]:
    """Run every recorded interaction through the worker-side handler."""
    with session_scope(write=False) as session:
        ids = session.exec(select(SlackInteraction.id).order_by(col(SlackInteraction.id))).all()
    return [interactions.handle(i) for i in ids if i is not None]


def approval(approval_id: int) -> ApprovalRequest:
    with session_scope(write=False) as session:
        row = session.get(ApprovalRequest, approval_id)
        assert row is not None
        return row


def actions_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_approval_message_posted_once_with_everything(signing_secret: str, slack: FakeSlack) -> None:
    """The approval message has the facts, the redacted review summary and id-only buttons; channel/ts are stored."""
    app_id, approval_id = seeded_request(review=REVIEW)
    assert deliver_all() == ["sent"]
    assert deliver_all() == []  # nothing left: posted exactly once
    [message] = slack.messages(CHANNEL)
    text = json.dumps(message["blocks"])
    for expected in (
        "Expense Helper",
        OWNER,
        "internal",
        "in_review",
        "Expiry",
        "1 high, 1 medium, 1 low",
        "aws-access-key",
    ):
        assert expected in text, expected
    assert "AKIAZZZZEXAMPLE7QWERTY" not in text and "AKIA****" in text
    buttons = actions_of(message)
    assert [b.get("action_id") for b in buttons] == [a.value for a in SlackAction if a != SlackAction.extend]
    assert {b.get("value") for b in buttons if "value" in b} == {str(approval_id)}
    assert "confirm" in next(b for b in buttons if b["action_id"] == SlackAction.reject)
    assert buttons[-1]["url"].endswith(f"/console/apps/{app_id}")
    stored = approval(approval_id)
    assert (stored.channel, stored.message_ts) == (CHANNEL, message["ts"])
    with session_scope(write=False) as session:
        kinds = sorted(d.kind for d in session.exec(select(Deadline).where(Deadline.ref == str(approval_id))))
    assert kinds == ["approval_escalation", "approval_reminder"]


def test_click_approve_decides_updates_and_notifies(signing_secret: str, slack: FakeSlack) -> None:
    """Approve: one decision, production, "Approved by" instead of buttons, owner DM, audit, event, no deadlines."""
    app_id, approval_id = seeded_request()
    deliver_all()
    ts = approval(approval_id).message_ts or ""
    with TestClient(create_app()) as api:
        response = post(
            api, click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER], ts=ts), signing_secret
        )
    assert response.status_code == 200 and response.content == b""
    assert handle_all() == ["decided"]
    # the message update, the owner's DM, and the owner's "service credential ready" DM (the app asks for scopes)
    assert sorted(deliver_all()) == ["sent", "sent", "sent"]
    decided = approval(approval_id)
    assert (decided.status, decided.decided_by) == ("approved", APPROVER)
    [message] = slack.messages(CHANNEL)
    assert actions_of(message) == []
    assert f"Approved* by <@{SLACK_IDS[APPROVER]}>" in json.dumps(message["blocks"])
    dms = [json.dumps(m) for m in slack.messages(slack.dm_channel_of(SLACK_IDS[OWNER]))]
    assert len(dms) == 2 and any("Approved" in dm for dm in dms)
    assert any("claim it once" in dm for dm in dms) and not any("mas_" in dm for dm in dms)  # never the secret
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None and app.stage == Stage.production
        actions = [e.action for e in session.exec(select(AuditEntry).where(AuditEntry.app_id == app_id))]
        assert actions.count("approval.decided") == 1 and actions.count("lifecycle.approve") == 1
        assert (
            session.exec(select(Event).where(Event.type == "approval.decided")).one().payload["decision"] == "approve"
        )
        states = {d.kind: d.status for d in session.exec(select(Deadline).where(Deadline.ref == str(approval_id)))}
        assert states == {"approval_reminder": "cancelled", "approval_escalation": "cancelled"}


def test_double_click_and_slack_retry_yield_one_decision(signing_secret: str, slack: FakeSlack) -> None:
    """A Slack retry of the same request is recorded once; a second click is told who already decided."""
    _, approval_id = seeded_request()
    deliver_all()
    first = click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER])
    with TestClient(create_app()) as api:
        post(api, first, signing_secret)
        post(api, first, signing_secret, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        post(api, click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER_2]), signing_secret)
    assert handle_all() == ["decided", "already_decided"]
    assert approval(approval_id).decided_by == APPROVER
    [ephemeral] = slack.ephemerals
    assert ephemeral["user"] == SLACK_IDS[APPROVER_2]
    assert ephemeral["text"].startswith(f"Already decided by <@{SLACK_IDS[APPROVER]}>")


def test_unauthorised_clickers_are_refused_and_audited(signing_secret: str, slack: FakeSlack) -> None:
    """The owner, a non-approver and an unknown Slack user get "not allowed", an audit entry each, no decision."""
    app_id, approval_id = seeded_request()
    deliver_all()
    with TestClient(create_app()) as api:
        for user in (SLACK_IDS[OWNER], SLACK_IDS[OUTSIDER], "U0STRANGER"):
            post(api, click(SlackAction.approve, str(approval_id), user_id=user), signing_secret)
    assert handle_all() == ["not_allowed"] * 3
    assert approval(approval_id).status == "pending"
    texts = {e["user"]: e["text"] for e in slack.ephemerals}
    assert "not an approver" in texts[SLACK_IDS[OUTSIDER]]
    assert "not linked" in texts["U0STRANGER"]
    with session_scope(write=False) as session:
        refused = session.exec(select(AuditEntry).where(AuditEntry.action == "approval.refused")).all()
    assert len(refused) == 3 and all(e.app_id == app_id for e in refused)


def test_reject_opens_modal_and_submission_records_reason(signing_secret: str, slack: FakeSlack) -> None:
    """Reject opens the reason modal in time; its submission rejects with the reason, shown on the message."""
    app_id, approval_id = seeded_request()
    deliver_all()
    ts = approval(approval_id).message_ts or ""
    with TestClient(create_app()) as api:
        response = post(
            api, click(SlackAction.reject, str(approval_id), user_id=SLACK_IDS[APPROVER], ts=ts), signing_secret
        )
        assert response.status_code == 200
        [opened] = slack.views
        view = opened["view"]
        meta = json.loads(view["private_metadata"])
        assert meta == {"approval_id": approval_id, "decision": "reject", "channel": CHANNEL, "ts": ts}
        from bench.slack_requests import submission

        body = submission(approval_id, "reject", "Uses a personal token", user_id=SLACK_IDS[APPROVER], ts=ts)
        assert post(api, body, signing_secret).status_code == 200
    assert handle_all() == ["decided"]
    deliver_all()
    decided = approval(approval_id)
    assert (decided.status, decided.reason) == ("rejected", "Uses a personal token")
    blocks = json.dumps(slack.messages(CHANNEL)[0]["blocks"])
    assert "Rejected" in blocks and "Uses a personal token" in blocks
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None and app.stage == Stage.rejected


def test_reject_click_on_decided_request_explains(signing_secret: str, slack: FakeSlack) -> None:
    """Clicking Reject on a decided request opens no modal and says who decided."""
    _, approval_id = seeded_request()
    deliver_all()
    with TestClient(create_app()) as api:
        post(api, click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER]), signing_secret)
        handle_all()
        post(api, click(SlackAction.reject, str(approval_id), user_id=SLACK_IDS[APPROVER_2]), signing_secret)
    assert handle_all()[-1] == "already_decided"
    assert slack.views == []
    assert slack.ephemerals[-1]["text"].startswith("Already decided by")


def test_newer_review_rerenders_the_same_message(signing_secret: str, slack: FakeSlack) -> None:
    """Asking again with a newer review updates the posted message in place instead of posting another."""
    from orchestrator.approvals.flows import request_approval

    _, approval_id = seeded_request(review=REVIEW)
    deliver_all()
    with session_scope() as session:
        row = session.get(ApprovalRequest, approval_id)
        assert row is not None
        row.review_id, row.payload = 2, {"review": {"verdict": "clean", "findings": []}}
        session.add(row)
        request_approval(session, approval_id)
        request_approval(session, approval_id)
    assert deliver_all() == ["sent"]
    [message] = slack.messages(CHANNEL)
    assert "clean — no findings" in json.dumps(message["blocks"], ensure_ascii=False)
    assert len(actions_of(message)) == 4


def test_cancelled_request_loses_its_buttons(signing_secret: str, slack: FakeSlack) -> None:
    """A request withdrawn by a later failing review is cancelled once, audited, its timers and buttons gone."""
    from orchestrator.approvals.service import cancel_pending

    app_id, approval_id = seeded_request()
    deliver_all()
    with session_scope() as session:
        assert cancel_pending(session, app_id, reason="superseded by review #9 (verdict fail)") == [approval_id]
        assert cancel_pending(session, app_id, reason="again") == []
    deliver_all()
    cancelled = approval(approval_id)
    assert (cancelled.status, cancelled.decided_by) == ("cancelled", "policy")
    [message] = slack.messages(CHANNEL)
    assert actions_of(message) == [] and "Cancelled" in json.dumps(message["blocks"])
    with session_scope(write=False) as session:
        actions = [e.action for e in session.exec(select(AuditEntry).where(AuditEntry.app_id == app_id))]
        states = {d.status for d in session.exec(select(Deadline).where(Deadline.ref == str(approval_id)))}
    assert actions.count("approval.cancelled") == 1 and states == {"cancelled"}


def test_a_click_whose_handler_died_is_handled_once_its_short_lease_lapses(
    signing_secret: str, slack: FakeSlack, monkeypatch: Any
) -> None:
    """A worker killed while handling a click leaves it `handling`: a redelivered task is told to come back when
    the short lease lapses instead of dropping it, and the click is then decided once."""
    from sqlalchemy import update

    from orchestrator.clock import utcnow
    from orchestrator.notifications.service import SHORT_LEASE, Leased

    _, approval_id = seeded_request()
    deliver_all()
    with TestClient(create_app()) as api:
        post(api, click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[APPROVER]), signing_secret)
    with session_scope(write=False) as session:
        interaction_id = session.exec(select(SlackInteraction.id)).one() or 0

    def killed(*_: Any) -> str:
        raise SystemExit("worker killed mid-handler")

    real_act = interactions._act
    monkeypatch.setattr(interactions, "_act", killed)
    with pytest.raises(SystemExit):
        interactions.handle(interaction_id)
    monkeypatch.setattr(interactions, "_act", real_act)
    with pytest.raises(Leased) as leased:
        interactions.handle(interaction_id)  # the redelivered message, while the dead handler's lease holds
    assert 0 < leased.value.retry_in <= SHORT_LEASE.total_seconds() + 1
    with session_scope() as session:  # as if SHORT_LEASE had passed
        session.execute(
            update(SlackInteraction)
            .where(SlackInteraction.id == interaction_id)  # type: ignore[arg-type]
            .values(lease_until=utcnow() - SHORT_LEASE)
        )
    assert interactions.handle(interaction_id) == "decided"
    assert approval(approval_id).status == "approved"
    assert handle_all() == ["skipped"]  # handled: a later copy of the message does nothing
