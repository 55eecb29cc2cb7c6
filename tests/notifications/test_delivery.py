"""Delivery of notification rows: at most one post across retries, and operator errors that stop."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from bench.fake_slack import FakeSlack
from orchestrator.approvals.models import ApprovalRequest
from orchestrator.db import session_scope
from orchestrator.errors import TransientIntegrationError
from orchestrator.notifications.delivery import deliver
from orchestrator.notifications.models import Notification
from tests.helpers.slack import seeded_request

CHANNEL = "C0APPROVAL"


def _row() -> Notification:
    with session_scope(write=False) as session:
        return session.exec(select(Notification).where(Notification.kind == "approval_request")).one()


def test_retry_after_a_lost_answer_finds_the_post(signing_secret: str, slack: FakeSlack) -> None:
    """Slack posted but every answer was lost; the task's retry finds the message by key instead of posting again."""
    _, approval_id = seeded_request()
    slack.fail("chat.postMessage", status=500, after_effect=True)
    slack.fail("conversations.history", times=2, status=503)  # the in-task checks fail too
    with pytest.raises(TransientIntegrationError):
        deliver(_row().id or 0)
    assert (_row().status, _row().attempts) == ("sending", 1)
    assert deliver(_row().id or 0) == "sent"  # what the Celery retry does
    [message] = slack.messages(CHANNEL)
    assert len(slack.calls("chat.postMessage")) == 1
    assert _row().ts == message["ts"]
    with session_scope(write=False) as session:
        assert session.get(ApprovalRequest, approval_id).message_ts == message["ts"]  # type: ignore[union-attr]


def test_bot_not_in_channel_fails_once_with_a_clear_error(signing_secret: str, slack: FakeSlack) -> None:
    """not_in_channel marks the notification failed with what to do, after a single call and no retry."""
    slack.channels["C0APPROVAL"]["member"] = False
    seeded_request()
    assert deliver(_row().id or 0) == "failed"
    assert deliver(_row().id or 0) == "failed"  # a redelivered task does not try again
    assert len(slack.calls("chat.postMessage")) == 1
    assert "not_in_channel" in (_row().last_error or "") and "/invite" in (_row().last_error or "")


def test_sweep_requeues_what_lost_its_message(sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows left pending (broker down at commit) and expired leases are queued again; a digest not yet due is not."""
    import redis

    from orchestrator.clock import utcnow
    from orchestrator.notifications.models import NotificationKind, NotificationStatus
    from orchestrator.notifications.service import notify, sweep
    from tests.helpers.slack import quiet_redis_db
    from tests.helpers.slack_fixtures import configure_slack

    broker = quiet_redis_db(redis_url)
    configure_slack(monkeypatch, None, broker_url=broker)
    queue = redis.Redis.from_url(broker)
    queue.delete("notifications")
    with session_scope() as session:
        notify(session, to="maker@example.com", text="a")
        stuck = notify(session, to="#microapp-approvals", text="b")
        stuck.status, stuck.lease_until = NotificationStatus.sending, utcnow()
        digest = notify(session, to="maker@example.com", text="", kind=NotificationKind.digest)
        digest.due_at = utcnow() + timedelta(minutes=10)
    queue.delete("notifications")  # as if the broker lost what was sent at commit
    assert sweep(now=utcnow() + timedelta(minutes=1)) == {"notifications": 2, "interactions": 0}
    assert queue.llen("notifications") == 2
    queue.delete("notifications")


def test_decided_while_posting_the_post_loses_its_buttons(
    signing_secret: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision committed between rendering the request and recording its post still reaches the message."""
    import json

    from sqlalchemy import update

    from orchestrator.notifications import delivery
    from tests.helpers.slack import deliver_all

    _, approval_id = seeded_request()
    real_send = delivery._send

    def send_then_decide(job, notifier):  # type: ignore[no-untyped-def]
        posted = real_send(job, notifier)
        # The decision's own update found no posted message yet (the race): only the status changes here.
        with session_scope() as session:
            session.execute(
                update(ApprovalRequest).where(ApprovalRequest.id == approval_id).values(status="approved")  # type: ignore[arg-type]
            )
        return posted

    monkeypatch.setattr(delivery, "_send", send_then_decide)
    assert deliver(_row().id or 0) == "sent"
    monkeypatch.setattr(delivery, "_send", real_send)
    deliver_all()
    [message] = slack.messages(CHANNEL)
    blocks = json.dumps(message["blocks"])
    assert '"type": "actions"' not in blocks and "Approved" in blocks


def test_an_approval_update_left_leased_by_a_dead_sender_is_redone_after_the_short_lease(
    signing_secret: str, slack: FakeSlack
) -> None:
    """A worker killed mid-`chat.update` leaves the row `sending`: a redelivered task is told to come back when
    the short lease lapses (not dropped as busy), and then the update is done; the post keeps its long lease."""
    from bench.slack_requests import APPROVER
    from orchestrator.approvals import service as approvals
    from orchestrator.clock import utcnow
    from orchestrator.notifications.models import NotificationKind
    from orchestrator.notifications.service import LEASE, SHORT_LEASE, Leased, lease_for
    from tests.helpers.slack import deliver_all

    _, approval_id = seeded_request()
    assert deliver_all() == ["sent"]
    [message] = slack.messages(CHANNEL)
    with session_scope() as session:
        approvals.decide(session, approval_id, decision=approvals.Decision.approve, actor=APPROVER, via="test")
    with session_scope(write=False) as session:
        update_id = session.exec(
            select(Notification.id).where(Notification.kind == NotificationKind.approval_update)
        ).one()
    assert update_id is not None

    class DiesMidSend:  # the process is SIGKILLed between the claim's commit and the outcome's
        enabled = True

        def update(self, **_: object) -> None:
            raise SystemExit("worker killed")

    with pytest.raises(SystemExit):
        deliver(update_id, notifier=DiesMidSend())  # type: ignore[arg-type]
    with session_scope(write=False) as session:
        left = session.get(Notification, update_id)
        assert left is not None and left.status == "sending" and left.lease_until is not None
    with pytest.raises(Leased) as leased:
        deliver(update_id)  # the broker's redelivery, or the sweep's, while the dead sender's lease holds
    assert 0 < leased.value.retry_in <= SHORT_LEASE.total_seconds() + 1
    assert deliver(update_id, now=utcnow() + SHORT_LEASE + timedelta(seconds=1)) == "sent"
    [update] = slack.calls("chat.update")
    assert update["ts"] == message["ts"] and "Approved" in json.dumps(update["blocks"])
    assert lease_for(NotificationKind.approval_request) == LEASE > SHORT_LEASE  # a post is never repeated so soon
